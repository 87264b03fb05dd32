//! Content-addressed artifact store for large tensors. Redis holds only an
//! [`ArtifactRef`] (address, size, checksum); the bytes live under a root folder
//! (a shared filesystem or PVC in the cluster, the output folder locally).
//!
//! Writes are atomic (temp file + rename), so a worker killed mid-write leaves
//! no half file under a real address, and writing the same bytes twice is a no-op.

pub mod safetensors_io;
pub mod tensors;

use crate::ids::sha256_hex;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// Hex SHA-256 of the bytes; also the address.
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("artifact store: cannot write {path}: {source} (check that the artifact root is writable and has space)")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("artifact store: cannot read artifact {sha256} at {path}: {source} (was the artifact root changed or cleaned?)")]
    Read { sha256: String, path: PathBuf, source: std::io::Error },
    #[error("artifact store: artifact {sha256} is corrupt: expected {expected} bytes with that checksum, found {found} bytes hashing to {actual}")]
    Corrupt { sha256: String, expected: u64, found: u64, actual: String },
}

impl ArtifactError {
    /// A write that failed because the disk (or the quota) is full: no retry
    /// can help until space is freed.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, ArtifactError::Write { source, .. } if crate::store::is_disk_full(source))
    }
}

#[derive(Debug, Clone)]
pub struct ArtifactStore {
    root: PathBuf,
}

impl ArtifactStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ArtifactStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path_of(&self, sha256: &str) -> PathBuf {
        self.root.join("sha256").join(&sha256[..2]).join(sha256)
    }

    pub fn put(&self, bytes: &[u8]) -> Result<ArtifactRef, ArtifactError> {
        let sha256 = sha256_hex(bytes);
        let path = self.path_of(&sha256);
        let aref = ArtifactRef { sha256, size: bytes.len() as u64 };
        if path.metadata().map(|m| m.len() == aref.size).unwrap_or(false) {
            return Ok(aref);
        }
        let dir = path.parent().expect("artifact path has a parent");
        let werr = |source| ArtifactError::Write { path: path.clone(), source };
        std::fs::create_dir_all(dir).map_err(werr)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(werr)?;
        tmp.write_all(bytes).map_err(werr)?;
        tmp.as_file().sync_all().map_err(werr)?;
        tmp.persist(&path).map_err(|e| werr(e.error))?;
        Ok(aref)
    }

    /// Reads an artifact and verifies its size and checksum.
    pub fn get(&self, aref: &ArtifactRef) -> Result<Vec<u8>, ArtifactError> {
        let path = self.path_of(&aref.sha256);
        let bytes =
            std::fs::read(&path).map_err(|source| ArtifactError::Read { sha256: aref.sha256.clone(), path: path.clone(), source })?;
        let actual = sha256_hex(&bytes);
        if bytes.len() as u64 != aref.size || actual != aref.sha256 {
            return Err(ArtifactError::Corrupt { sha256: aref.sha256.clone(), expected: aref.size, found: bytes.len() as u64, actual });
        }
        Ok(bytes)
    }

    /// Stores a named file (such as a run's spec) outside the content-addressed
    /// space, atomically.
    pub fn put_named(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, ArtifactError> {
        let path = self.root.join(name);
        let werr = |source| ArtifactError::Write { path: path.clone(), source };
        let dir = path.parent().expect("named artifact has a parent");
        std::fs::create_dir_all(dir).map_err(werr)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(werr)?;
        tmp.write_all(bytes).map_err(werr)?;
        tmp.persist(&path).map_err(|e| werr(e.error))?;
        Ok(path)
    }

    pub fn get_named(&self, name: &str) -> Result<Option<Vec<u8>>, ArtifactError> {
        let path = self.root.join(name);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ArtifactError::Read { sha256: name.to_string(), path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_roundtrip_and_corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path());
        let a = store.put(b"hello").unwrap();
        assert_eq!(a, store.put(b"hello").unwrap());
        assert_eq!(store.get(&a).unwrap(), b"hello");
        std::fs::write(store.path_of(&a.sha256), b"HELLO").unwrap();
        assert!(matches!(store.get(&a), Err(ArtifactError::Corrupt { .. })));
    }
}
