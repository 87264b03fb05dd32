//! Checksummed framing of every record a store keeps (a journal record of the
//! embedded store, a result value in Redis), so a flipped byte is found when
//! the record is read back instead of turning into wrong numbers or a panic.
//!
//! Layout: a format byte ([`FORMAT`]), the first 8 bytes of the SHA-256 of the
//! payload, then the payload. The one place that knows it is this module.

use sha2::{Digest, Sha256};

/// Version of the framing; a record with another first byte is refused.
pub const FORMAT: u8 = 0xA1;
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
}
