//! Whole safetensors artifacts in memory: decode a named tensor of a known
//! dtype into typed values (its shape checked where the caller needs one),
//! and encode named tensors into an artifact. Every artifact the workers write
//! (probabilities, labels, embeddings) and the coordinator reads goes through
//! here, so the dtype checks and the messages are the same everywhere.
//! [`super::tensors`] reads pieces of large files instead.

pub use safetensors::Dtype;
use safetensors::{SafeTensorError, SafeTensors};
use std::collections::HashMap;

/// What went wrong with one artifact; each names the tensor and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    #[error("not a safetensors file: {source}")]
    Parse {
        #[source]
        source: SafeTensorError,
    },
    /// The tensor is missing (or its entry is unreadable).
    #[error("tensor '{name}': {source}")]
    Tensor {
        name: String,
        #[source]
        source: SafeTensorError,
    },
    #[error("tensor '{name}' is {found:?}, expected {expected}")]
    Dtype { name: String, found: Dtype, expected: String },
    #[error("tensor '{name}' has shape {found:?}, expected {expected}")]
    Shape { name: String, found: Vec<usize>, expected: String },
    /// A tensor handed to [`encode`] whose bytes do not fit its dtype and shape.
    #[error("building the safetensors artifact failed: tensor '{name}': {source}")]
    Build {
        name: String,
        #[source]
        source: SafeTensorError,
    },
    #[error("serialising the safetensors artifact failed: {source}")]
    Serialize {
        #[source]
        source: SafeTensorError,
    },
}

/// A value type a tensor can hold, read and written little-endian.
pub trait Element: Copy {
    const DTYPE: Dtype;
    const SIZE: usize;
    fn from_le(bytes: &[u8]) -> Self;
    fn put_le(self, out: &mut Vec<u8>);
}

macro_rules! element {
    ($t:ty, $d:ident) => {
        impl Element for $t {
            const DTYPE: Dtype = Dtype::$d;
            const SIZE: usize = std::mem::size_of::<$t>();
            fn from_le(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("chunks of the element size"))
            }
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}
element!(f32, F32);
element!(f64, F64);
element!(i32, I32);
element!(i64, I64);
element!(u32, U32);
element!(u64, U64);
element!(u8, U8);

/// Parses a safetensors file (header and every tensor's extent).
pub fn parse(bytes: &[u8]) -> Result<SafeTensors<'_>, TensorError> {
    SafeTensors::deserialize(bytes).map_err(|source| TensorError::Parse { source })
}

/// Whether the file has tensor `name` (optional tensors, absent in older artifacts).
pub fn has(st: &SafeTensors, name: &str) -> bool {
    st.names().contains(&name)
}

/// The dtype and shape of tensor `name`.
pub fn layout(st: &SafeTensors, name: &str) -> Result<(Dtype, Vec<usize>), TensorError> {
    let t = st.tensor(name).map_err(|source| TensorError::Tensor { name: name.into(), source })?;
    Ok((t.dtype(), t.shape().to_vec()))
}

/// Tensor `name`, which must have `dtype` and, dimension by dimension, the
/// sizes given (`None`: any size); its shape is returned.
pub fn check(st: &SafeTensors, name: &str, dtype: Dtype, shape: &[Option<usize>]) -> Result<Vec<usize>, TensorError> {
    let (found, dims) = layout(st, name)?;
    let want: Vec<String> = shape.iter().map(|d| d.map_or("*".into(), |d| d.to_string())).collect();
    if found != dtype {
        return Err(TensorError::Dtype { name: name.into(), found, expected: format!("{dtype:?} [{}]", want.join(", ")) });
    }
    if dims.len() != shape.len() || dims.iter().zip(shape).any(|(a, b)| b.is_some_and(|b| *a != b)) {
        return Err(TensorError::Shape { name: name.into(), found: dims, expected: format!("[{}]", want.join(", ")) });
    }
    Ok(dims)
}

/// Tensor `name` as values of type `T` (its dtype checked), with its shape.
pub fn decode<T: Element>(st: &SafeTensors, name: &str) -> Result<(Vec<usize>, Vec<T>), TensorError> {
    let t = st.tensor(name).map_err(|source| TensorError::Tensor { name: name.into(), source })?;
    if t.dtype() != T::DTYPE {
        return Err(TensorError::Dtype { name: name.into(), found: t.dtype(), expected: format!("{:?}", T::DTYPE) });
    }
    // The parser checked that the data is exactly shape × element size.
    Ok((t.shape().to_vec(), t.data().chunks_exact(T::SIZE).map(T::from_le).collect()))
}

/// Tensor `name` as a flat list of `T`, whatever its shape.
pub fn values<T: Element>(st: &SafeTensors, name: &str) -> Result<Vec<T>, TensorError> {
    Ok(decode(st, name)?.1)
}

/// Tensor `name`, which must be 2-D: (rows, columns) and the values row by row.
pub fn matrix<T: Element>(st: &SafeTensors, name: &str) -> Result<((usize, usize), Vec<T>), TensorError> {
    let (shape, v) = decode(st, name)?;
    match shape.as_slice() {
        [r, c] => Ok(((*r, *c), v)),
        _ => Err(TensorError::Shape { name: name.into(), found: shape, expected: "2-D".into() }),
    }
}

/// One tensor to [`encode`]: its name, dtype, shape and little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Named<'a> {
    pub name: &'a str,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl<'a> Named<'a> {
    pub fn new<T: Element>(name: &'a str, shape: Vec<usize>, values: &[T]) -> Self {
        let mut bytes = Vec::with_capacity(values.len() * T::SIZE);
        for v in values {
            v.put_le(&mut bytes);
        }
        Named { name, dtype: T::DTYPE, shape, bytes }
    }
}

/// Serialises named tensors as one safetensors file (no metadata).
pub fn encode(tensors: &[Named]) -> Result<Vec<u8>, TensorError> {
    encode_with_metadata(tensors, None)
}

/// Serialises named tensors with a `__metadata__` map (string to string).
pub fn encode_with_metadata(tensors: &[Named], metadata: Option<HashMap<String, String>>) -> Result<Vec<u8>, TensorError> {
    let views = tensors
        .iter()
        .map(|t| {
            safetensors::tensor::TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                .map(|v| (t.name.to_string(), v))
                .map_err(|source| TensorError::Build { name: t.name.into(), source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::tensor::serialize(views, metadata).map_err(|source| TensorError::Serialize { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_each_dtype_and_names_what_is_wrong() {
        let bytes = encode(&[
            Named::new("p", vec![2, 3], &[0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0]),
            Named::new("l", vec![2], &[7i64, -1]),
            Named::new("h", vec![2], &[0.5f64, 1.5]),
            Named::new("t", vec![2, 1], &[3i32, 4]),
        ])
        .unwrap();
        let st = parse(&bytes).unwrap();
        assert_eq!(matrix::<f32>(&st, "p").unwrap(), ((2, 3), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]));
        assert_eq!(values::<i64>(&st, "l").unwrap(), [7, -1]);
        assert_eq!(values::<f64>(&st, "h").unwrap(), [0.5, 1.5]);
        assert_eq!(decode::<i32>(&st, "t").unwrap(), (vec![2, 1], vec![3, 4]));
        assert!(has(&st, "h") && !has(&st, "x"));
        let meta = HashMap::from([("format".to_string(), "x/1".to_string())]);
        let with_meta = encode_with_metadata(&[Named::new("l", vec![1], &[1u32])], Some(meta.clone())).unwrap();
        assert_eq!(SafeTensors::read_metadata(&with_meta).unwrap().1.metadata().as_ref(), Some(&meta));
        assert_eq!(check(&st, "p", Dtype::F32, &[Some(2), None]).unwrap(), [2, 3]);

        let msg = |e: TensorError| e.to_string();
        assert_eq!(msg(values::<f32>(&st, "l").unwrap_err()), "tensor 'l' is I64, expected F32");
        assert_eq!(msg(matrix::<i64>(&st, "l").unwrap_err()), "tensor 'l' has shape [2], expected 2-D");
        assert!(msg(values::<f32>(&st, "x").unwrap_err()).starts_with("tensor 'x': "));
        assert_eq!(msg(check(&st, "p", Dtype::F32, &[Some(3), None]).unwrap_err()), "tensor 'p' has shape [2, 3], expected [3, *]");
        assert_eq!(msg(check(&st, "l", Dtype::F32, &[Some(2)]).unwrap_err()), "tensor 'l' is I64, expected F32 [2]");
        assert!(msg(parse(b"garbage").unwrap_err()).starts_with("not a safetensors file: "));
        // Bytes that do not fit the shape are refused when encoding, naming the tensor.
        let e = encode(&[Named::new("bad", vec![3], &[1.0f32])]).unwrap_err();
        assert!(matches!(&e, TensorError::Build { name, .. } if name == "bad"), "{e}");
        assert!(std::error::Error::source(&e).is_some());
    }
}
