//! Checksummed framing of every record a store keeps (a journal record of the
//! embedded store, a result value in Redis), so a flipped byte is found when
//! the record is read back instead of turning into wrong numbers or a panic.
//!
//! Layout: a format byte, the first 8 bytes of a SHA-256, then the payload.
//! The one place that knows it is this module.
//! - [`FORMAT`] (journal records, whose payload names its job itself): the
//!   digest is of the payload;
//! - [`BOUND_FORMAT`] (a job's result kept under a key of its own): the
//!   digest is of the run id, the job id and the payload, so a valid result
//!   copied or moved under another job's key fails its check there like a
//!   damaged one ([`seal_result`], [`open_result`]).
//!
//! A checksum, not a signature: it finds damage and misplaced bytes, not a
//! forger who can write to the store.

use crate::ids::{JobId, RunId};
use sha2::{Digest, Sha256};

/// The framing of a record checked against its payload alone; a record with
/// another first byte is refused by [`open`].
pub const FORMAT: u8 = 0xA1;
/// The framing of a result bound to its run and job.
pub const BOUND_FORMAT: u8 = 0xA2;
const DIGEST: usize = 8;
pub const OVERHEAD: usize = 1 + DIGEST;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("record of {0} bytes is shorter than its {OVERHEAD}-byte frame")]
    Short(usize),
    #[error("record has format byte {found:#04x}, expected {FORMAT:#04x} (written by another release, or damaged)")]
    Format { found: u8 },
    #[error("record of {size} bytes fails its checksum (damaged in storage)")]
    Checksum { size: usize },
    #[error(
        "result of {size} bytes fails its checksum for job {job} of run {run}: damaged in storage, \
         or the result of another job copied or moved under this job's key"
    )]
    NotThisJob { size: usize, run: String, job: String },
}

fn digest(payload: &[u8]) -> [u8; DIGEST] {
    let mut out = [0u8; DIGEST];
    out.copy_from_slice(&Sha256::digest(payload)[..DIGEST]);
    out
}

/// Frames `payload` with the format byte and its checksum.
pub fn seal(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(OVERHEAD + payload.len());
    out.push(FORMAT);
    out.extend_from_slice(&digest(payload));
    out.extend_from_slice(payload);
    out
}

/// The payload of a sealed record, after checking its format and checksum.
pub fn open(record: &[u8]) -> Result<&[u8], SealError> {
    if record.len() < OVERHEAD {
        return Err(SealError::Short(record.len()));
    }
    if record[0] != FORMAT {
        return Err(SealError::Format { found: record[0] });
    }
    let payload = &record[OVERHEAD..];
    if record[1..OVERHEAD] != digest(payload) {
        return Err(SealError::Checksum { size: record.len() });
    }
    Ok(payload)
}

/// The digest of a result bound to its run and job (each length-prefixed,
/// so no two (run, job) pairs share the bytes hashed before the payload).
fn bound_digest(run: &RunId, job: &JobId, payload: &[u8]) -> [u8; DIGEST] {
    let mut h = Sha256::new();
    for part in [run.as_str(), job.as_str()] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.update(payload);
    let mut out = [0u8; DIGEST];
    out.copy_from_slice(&h.finalize()[..DIGEST]);
    out
}

/// Frames job `job`'s result of run `run`, bound to both ([`BOUND_FORMAT`]).
pub fn seal_result(run: &RunId, job: &JobId, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(OVERHEAD + payload.len());
    out.push(BOUND_FORMAT);
    out.extend_from_slice(&bound_digest(run, job, payload));
    out.extend_from_slice(payload);
    out
}

/// The payload of job `job`'s result of run `run`, after checking that it
/// was sealed for that job. A result sealed by a release before the binding
/// ([`FORMAT`], checked against its payload alone) is still read: results
/// are not recomputed on upgrade (docs/formats.md, "Results").
pub fn open_result<'a>(run: &RunId, job: &JobId, record: &'a [u8]) -> Result<&'a [u8], SealError> {
    if record.len() < OVERHEAD {
        return Err(SealError::Short(record.len()));
    }
    match record[0] {
        FORMAT => open(record),
        BOUND_FORMAT => {
            let payload = &record[OVERHEAD..];
            if record[1..OVERHEAD] != bound_digest(run, job, payload) {
                return Err(SealError::NotThisJob { size: record.len(), run: run.to_string(), job: job.to_string() });
            }
            Ok(payload)
        }
        found => Err(SealError::Format { found }),
    }
}

/// A 4-byte check of a journal length field, so a damaged length is told
/// apart from a record cut short by a crash.
pub fn length_check(len: u32) -> [u8; 4] {
    let d = digest(&len.to_le_bytes());
    [d[0], d[1], d[2], d[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flipped_byte_is_found() {
        let sealed = seal(b"counts 1 2 3");
        assert_eq!(open(&sealed).unwrap(), b"counts 1 2 3");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x40;
            assert!(open(&bad).is_err(), "flip at byte {i} went unnoticed");
        }
        assert_eq!(open(&sealed[..4]), Err(SealError::Short(4)));
        assert_ne!(length_check(7), length_check(7 | 1 << 24));
    }

    #[test]
    fn a_result_opens_only_for_its_own_run_and_job() {
        let run = RunId::new("r").unwrap();
        let (a, b) = (JobId::derive(&run, &["a"]), JobId::derive(&run, &["b"]));
        let sealed = seal_result(&run, &a, b"top-1 of shard 0");
        assert_eq!(open_result(&run, &a, &sealed).unwrap(), b"top-1 of shard 0");
        let e = open_result(&run, &b, &sealed).unwrap_err();
        assert!(matches!(e, SealError::NotThisJob { .. }) && e.to_string().contains(b.as_str()), "{e}");
        let other = RunId::new("r2").unwrap();
        assert!(open_result(&other, &a, &sealed).is_err(), "bound to the run too");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x40;
            assert!(open_result(&run, &a, &bad).is_err(), "flip at byte {i} went unnoticed");
        }
        // A result of an older release (not bound) is still read.
        assert_eq!(open_result(&run, &b, &seal(b"old")).unwrap(), b"old");
    }
}
