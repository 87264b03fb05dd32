//! The wire envelope: what travels in a queue message.
//!
//! Layout: 4 magic bytes `MLLJ`, a u16 protocol version (little endian), then
//! the bincode-encoded [`Job`]. The size is checked before anything is decoded,
//! and the version before the body, so a malformed, foreign or oversized
//! message is rejected with a reason instead of a panic or a huge allocation.

use crate::job::Job;

pub const MAGIC: &[u8; 4] = b"MLLJ";
/// 3: jobs carry what their id is derived from (a label job's graph digest,
/// an evaluate job's dataset size), and run and job ids are validated.
/// 4: embed jobs may name a hosted embedder.
pub const PROTOCOL_VERSION: u16 = 4;
const HEADER: usize = 6;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("message of {size} bytes exceeds the limit of {limit} bytes (broker.max_message_bytes)")]
    TooLarge { size: usize, limit: usize },
    #[error("message is not an MLL job envelope (missing magic bytes; {size} bytes)")]
    NotAnEnvelope { size: usize },
    #[error(
        "message uses protocol version {found}, this binary speaks version {expected}: run coordinator and workers of the same release"
    )]
    Version { found: u16, expected: u16 },
    #[error("message body cannot be decoded as a job: {0}")]
    Decode(String),
    #[error("job cannot be encoded: {0}")]
    Encode(String),
}

fn bincode_config() -> bincode::config::Configuration<bincode::config::LittleEndian, bincode::config::Fixint> {
    bincode::config::standard().with_fixed_int_encoding()
}

pub fn encode(job: &Job) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    let body = bincode::serde::encode_to_vec(job, bincode_config()).map_err(|e| WireError::Encode(e.to_string()))?;
    out.extend_from_slice(&body);
    Ok(out)
}

pub fn decode(bytes: &[u8], limit: usize) -> Result<Job, WireError> {
    if bytes.len() > limit {
        return Err(WireError::TooLarge { size: bytes.len(), limit });
    }
    if bytes.len() < HEADER || &bytes[..4] != MAGIC {
        return Err(WireError::NotAnEnvelope { size: bytes.len() });
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != PROTOCOL_VERSION {
        return Err(WireError::Version { found: version, expected: PROTOCOL_VERSION });
    }
    // The limit also bounds what bincode may allocate for one message.
    let cfg = bincode_config().with_limit::<{ 64 * 1024 * 1024 }>();
    let (job, used) = bincode::serde::decode_from_slice::<Job, _>(&bytes[HEADER..], cfg).map_err(|e| WireError::Decode(e.to_string()))?;
    if used != bytes.len() - HEADER {
        return Err(WireError::Decode(format!("{} trailing bytes after the job", bytes.len() - HEADER - used)));
    }
    Ok(job)
}

/// Encodes any serde value (job outputs in the store) with the same settings.
pub fn encode_value<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, WireError> {
    bincode::serde::encode_to_vec(v, bincode_config()).map_err(|e| WireError::Encode(e.to_string()))
}

pub fn decode_value<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let cfg = bincode_config().with_limit::<{ 256 * 1024 * 1024 }>();
    bincode::serde::decode_from_slice::<T, _>(bytes, cfg).map(|(v, _)| v).map_err(|e| WireError::Decode(e.to_string()))
}

/// Encodes a value with variable-length integers: small counts take one
/// byte instead of eight (results kept in Redis for every job of a run).
pub fn encode_compact<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, WireError> {
    bincode::serde::encode_to_vec(v, bincode::config::standard()).map_err(|e| WireError::Encode(e.to_string()))
}

pub fn decode_compact<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let cfg = bincode::config::standard().with_limit::<{ 256 * 1024 * 1024 }>();
    bincode::serde::decode_from_slice::<T, _>(bytes, cfg).map(|(v, _)| v).map_err(|e| WireError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::RunId;
    use crate::job::{DiagnosticBehavior, DiagnosticJob, JobPayload};

    fn job() -> Job {
        let run = RunId::new("t").unwrap();
        Job::new(run, JobPayload::Diagnostic(DiagnosticJob { index: 3, work_ms: 0, behavior: DiagnosticBehavior::Succeed }))
    }

    #[test]
    fn run_ids_are_checked_on_the_wire_too() {
        // The wire's encoding (bincode) is the same as a plain string's, and checked the same way.
        let bytes = encode_value(&"../../etc".to_string()).unwrap();
        assert!(decode_value::<RunId>(&bytes).is_err());
        let run = RunId::new("r").unwrap();
        assert_eq!(decode_value::<RunId>(&encode_value(&run).unwrap()).unwrap(), run);
    }

    #[test]
    fn roundtrip() {
        let bytes = encode(&job()).unwrap();
        assert_eq!(decode(&bytes, 1 << 20).unwrap(), job());
    }

    #[test]
    fn malformed_messages_are_rejected_with_reasons() {
        let bytes = encode(&job()).unwrap();
        assert!(matches!(decode(&bytes, 10), Err(WireError::TooLarge { .. })));
        assert!(matches!(decode(b"garbage bytes here", 1 << 20), Err(WireError::NotAnEnvelope { .. })));
        let mut v2 = bytes.clone();
        v2[4] = 9;
        assert!(matches!(decode(&v2, 1 << 20), Err(WireError::Version { found: 9, .. })));
        let mut trunc = bytes.clone();
        trunc.truncate(bytes.len() - 3);
        assert!(matches!(decode(&trunc, 1 << 20), Err(WireError::Decode(_))));
        // Random bytes after a valid header must not panic or allocate wildly.
        let mut junk = b"MLLJ\x01\x00".to_vec();
        junk.extend((0..200u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
        assert!(decode(&junk, 1 << 20).is_err());
    }
}
