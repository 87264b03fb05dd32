//! Deterministic identifiers: the same spec always plans the same ids, so a
//! resubmitted or resumed run finds its finished jobs and republishes only the rest.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// A run is named by its benchmark spec's `name` (validated to be key-safe).
/// Submitting the same name again continues the same run: new models or
/// datasets add jobs, finished jobs are kept.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RunId(String);

impl RunId {
    /// Accepts 1..=64 characters of `[a-z0-9._-]`, so the id can sit inside
    /// Redis keys, file names and Kubernetes labels without escaping.
    pub fn new(name: &str) -> Result<Self, String> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.');
        if ok {
            Ok(RunId(name.to_string()))
        } else {
            Err(format!("run name '{name}' is not valid: use 1 to 64 characters of a-z, 0-9, '.', '_' or '-'"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
            Err(format!("'{s}' is not a job id (32 lowercase hex characters)"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
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
    }
}
