//! A safetensors file read in pieces: its header, then only the byte ranges
//! of the rows asked for. The hub index (`coordinator select`) reads a few
//! thousand rows out of files of hundreds of megabytes this way instead of
//! reading and decoding them whole. No memory map: the workspace forbids
//! `unsafe`, and positioned reads of the rows a caller needs cost the same
//! page-cache traffic.
//!
//! These reads do not verify the file's checksum (that needs every byte):
//! callers use them on files they verified when they wrote or indexed them.

use safetensors::tensor::{Dtype, Metadata, TensorInfo};
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Headers larger than this are refused (safetensors' own bound).
const MAX_HEADER: u64 = 100_000_000;

#[derive(Debug, thiserror::Error)]
pub enum TensorFileError {
    #[error("cannot read {path}: {source} (was the artifact root changed or cleaned?)")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a readable safetensors file: {reason}")]
    Format { path: PathBuf, reason: String },
}

/// An open safetensors file and its parsed header.
#[derive(Debug)]
pub struct TensorFile {
    file: File,
    path: PathBuf,
    /// Byte position of the data section (8 + header length).
    data_start: u64,
    metadata: Metadata,
}

impl TensorFile {
    /// Opens `path` and parses its header; every tensor must lie inside the file.
    pub fn open(path: &Path) -> Result<TensorFile, TensorFileError> {
        let io = |source| TensorFileError::Io { path: path.to_path_buf(), source };
        let format = |reason: String| TensorFileError::Format { path: path.to_path_buf(), reason };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut n = [0u8; 8];
        file.read_exact_at(&mut n, 0).map_err(io)?;
        let n = u64::from_le_bytes(n);
        if n > MAX_HEADER || 8 + n > len {
            return Err(format(format!("header length {n} does not fit a file of {len} bytes")));
        }
        let mut header = vec![0u8; n as usize];
        file.read_exact_at(&mut header, 8).map_err(io)?;
        let metadata: Metadata = serde_json::from_slice(&header).map_err(|e| format(format!("header: {e}")))?;
        let data_len = len - 8 - n;
        if let Some((name, info)) = metadata.tensors().into_iter().find(|(_, i)| i.data_offsets.1 as u64 > data_len) {
            return Err(format(format!("tensor '{name}' ends at byte {} of a data section of {data_len} bytes", info.data_offsets.1)));
        }
        Ok(TensorFile { file, path: path.to_path_buf(), data_start: 8 + n, metadata })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The header's `__metadata__` entry `key`.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.metadata().as_ref().and_then(|m| m.get(key)).map(String::as_str)
    }

    /// Tensor `name`, which must have `dtype`; its shape is returned.
    pub fn shape(&self, name: &str, dtype: Dtype) -> Result<&[usize], TensorFileError> {
        Ok(&self.info(name, dtype)?.shape)
    }

    fn info(&self, name: &str, dtype: Dtype) -> Result<&TensorInfo, TensorFileError> {
        let info = self
            .metadata
            .info(name)
            .ok_or_else(|| TensorFileError::Format { path: self.path.clone(), reason: format!("no tensor '{name}'") })?;
        if info.dtype != dtype {
            return Err(TensorFileError::Format {
                path: self.path.clone(),
                reason: format!("tensor '{name}' is {:?}, expected {dtype:?}", info.dtype),
            });
        }
        Ok(info)
    }

    /// The raw little-endian bytes of rows `rows` of tensor `name` (its first
    /// dimension; a 1-D tensor has rows of one element).
    pub fn rows(&self, name: &str, dtype: Dtype, rows: Range<usize>) -> Result<Vec<u8>, TensorFileError> {
        let info = self.info(name, dtype)?;
        let n = info.shape.first().copied().unwrap_or(1);
        if rows.start > rows.end || rows.end > n {
            return Err(TensorFileError::Format {
                path: self.path.clone(),
                reason: format!("rows {}..{} asked of tensor '{name}' with {n} rows", rows.start, rows.end),
            });
        }
        let row_bytes = info.shape.iter().skip(1).product::<usize>() * dtype.bitsize() / 8;
        let mut buf = vec![0u8; rows.len() * row_bytes];
        let at = self.data_start + (info.data_offsets.0 + rows.start * row_bytes) as u64;
        self.file.read_exact_at(&mut buf, at).map_err(|source| TensorFileError::Io { path: self.path.clone(), source })?;
        Ok(buf)
    }

    /// Rows of a U32 tensor.
    pub fn u32_rows(&self, name: &str, rows: Range<usize>) -> Result<Vec<u32>, TensorFileError> {
        Ok(self.rows(name, Dtype::U32, rows)?.chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))).collect())
    }

    /// Rows of a U64 tensor.
    pub fn u64_rows(&self, name: &str, rows: Range<usize>) -> Result<Vec<u64>, TensorFileError> {
        Ok(self.rows(name, Dtype::U64, rows)?.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))).collect())
    }

    /// Rows of an F32 tensor, flattened.
    pub fn f32_rows(&self, name: &str, rows: Range<usize>) -> Result<Vec<f32>, TensorFileError> {
        Ok(self.rows(name, Dtype::F32, rows)?.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    #[test]
    fn reads_rows_of_each_tensor_and_refuses_bad_requests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let a: Vec<u8> = (0..12u32).flat_map(|x| (x as f32).to_le_bytes()).collect();
        let b: Vec<u8> = (0..5u64).flat_map(|x| (x * 10).to_le_bytes()).collect();
        let meta = std::collections::HashMap::from([("format".to_string(), "test/1".to_string())]);
        let bytes = safetensors::serialize(
            [("a", TensorView::new(Dtype::F32, vec![4, 3], &a).unwrap()), ("b", TensorView::new(Dtype::U64, vec![5], &b).unwrap())],
            Some(meta),
        )
        .unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let f = TensorFile::open(&path).unwrap();
        assert_eq!(f.meta("format"), Some("test/1"));
        assert_eq!(f.shape("a", Dtype::F32).unwrap(), [4, 3]);
        assert_eq!(f.f32_rows("a", 1..3).unwrap(), [3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        assert_eq!(f.u64_rows("b", 4..5).unwrap(), [40]);
        assert!(f.u64_rows("b", 0..0).unwrap().is_empty());
        assert!(matches!(f.f32_rows("a", 3..5), Err(TensorFileError::Format { .. })));
        assert!(matches!(f.u32_rows("a", 0..1), Err(TensorFileError::Format { .. })));
        assert!(matches!(f.u32_rows("c", 0..1), Err(TensorFileError::Format { .. })));
        // A truncated file is refused at open.
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(matches!(TensorFile::open(&path), Err(TensorFileError::Format { .. })));
    }
}
