//! Deterministic identifiers: the same spec always plans the same ids, so a
//! resubmitted or resumed run finds its finished jobs and republishes only the rest.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// A run is named by its benchmark spec's `name` (validated to be key-safe).
/// Submitting the same name again continues the same run: new models or
/// datasets add jobs, finished jobs are kept.
///
/// Deserialising validates too (a queue message or a stored record naming
/// `../../etc` is refused, not turned into keys and folders).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

impl RunId {
    /// Accepts 1..=64 characters of `[a-z0-9._-]` not starting with '.', so
    /// the id can sit inside Redis keys, file names and Kubernetes labels
    /// without escaping, and is never `.`, `..` or a hidden folder
    /// (`run --local` writes into `out/<run>`).
    pub fn new(name: &str) -> Result<Self, String> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with('.')
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.');
        if ok {
            Ok(RunId(name.to_string()))
        } else {
            Err(format!(
                "run name '{}' is not valid: use 1 to 64 characters of a-z, 0-9, '.', '_' or '-', not starting with '.'",
                name.escape_debug()
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RunId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        RunId::new(&s)
    }
}

impl From<RunId> for String {
    fn from(r: RunId) -> String {
        r.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A job id is the first 128 bits of SHA-256 over the run id and the job's
/// identity parts (stage, model, dataset, shard, options that change the
/// result), as 32 lowercase hex characters.
///
/// Deserialising validates the form ([`JobId::parse`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

impl JobId {
    pub fn derive(run: &RunId, parts: &[&str]) -> Self {
        let mut h = Sha256::new();
        h.update(run.as_str().as_bytes());
        for p in parts {
            // Length-prefix every part so ("ab","c") and ("a","bc") differ.
            h.update((p.len() as u64).to_le_bytes());
            h.update(p.as_bytes());
        }
        JobId(hex::encode(&h.finalize()[..16]))
    }

    /// Parses an id read back from a store; rejects anything not 32 hex chars.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(JobId(s.to_string()))
        } else {
            Err(format!("'{}' is not a job id (32 lowercase hex characters)", s.escape_debug()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for JobId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        JobId::parse(&s)
    }
}

impl From<JobId> for String {
    fn from(j: JobId) -> String {
        j.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hex SHA-256 of bytes, used for artifact addresses and spec digests.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_deterministic_and_part_boundaries_matter() {
        let run = RunId::new("toy").unwrap();
        let a = JobId::derive(&run, &["evaluate", "m", "d", "0"]);
        assert_eq!(a, JobId::derive(&run, &["evaluate", "m", "d", "0"]));
        assert_ne!(a, JobId::derive(&run, &["evaluate", "md", "", "0"]));
        assert_ne!(a, JobId::derive(&RunId::new("other").unwrap(), &["evaluate", "m", "d", "0"]));
        assert_eq!(JobId::parse(a.as_str()).unwrap(), a);
        assert_eq!(a.as_str().len(), 32);
    }

    #[test]
    fn run_names_are_validated() {
        assert!(RunId::new("mll-49x17").is_ok());
        assert!(RunId::new("Has Space").is_err());
        assert!(RunId::new("").is_err());
        assert!(RunId::new("{tag}").is_err());
        // Never the current or parent folder, nor a hidden one: `run --local` writes into out/<run>.
        for bad in [".", "..", "...", ".hidden", "../../etc"] {
            assert!(RunId::new(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(RunId::new("hub.embed-0123").is_ok(), "dots inside a name stay allowed");
    }

    #[test]
    fn ids_are_validated_when_deserialised() {
        let ok: RunId = serde_json::from_str("\"mll-49x17\"").unwrap();
        assert_eq!(ok.as_str(), "mll-49x17");
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"mll-49x17\"", "serialised as a plain string");
        for bad in ["\"../../etc\"", "\"..\"", "\"A B\"", "\"\""] {
            let e = serde_json::from_str::<RunId>(bad).unwrap_err().to_string();
            assert!(e.contains("is not valid"), "{bad}: {e}");
        }
        let run = RunId::new("r").unwrap();
        let id = JobId::derive(&run, &["x"]);
        let back: JobId = serde_json::from_str(&serde_json::to_string(&id).unwrap()).unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<JobId>("\"../x\"").is_err());
        // (The wire's encoding checks them the same way: wire::tests.)
    }
}
