//! A model's tokenizer: cleaned text to fixed-length id rows, as open_clip
//! makes them (CLIP BPE with start/end tokens, or a Hugging Face tokenizer
//! with its own truncation and padding).

use super::artifact::{ModelMeta, TextClean, TokenizerKind};
use super::error::EngineError;
use super::text_clean::{clean_text, EOT, SOT};
use std::path::Path;
use tch::Tensor;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// A model's tokenizer: text → `context_length` ids, as open_clip makes them.
pub struct TextTokenizer {
    inner: Tokenizer,
    kind: TokenizerKind,
    clean: TextClean,
    context_length: usize,
    pad_id: i64,
    sot_eot: Option<(i64, i64)>,
}

impl TextTokenizer {
    pub fn from_file(path: &Path, meta: &ModelMeta) -> Result<Self, EngineError> {
        let mut inner = Tokenizer::from_file(path).map_err(|source| EngineError::TokenizerFile { path: path.to_path_buf(), source })?;
        let ctx = meta.context_length;
        let sot_eot = match meta.tokenizer {
            TokenizerKind::ClipBpe => {
                // open_clip truncates then forces the last id to <end_of_text>; done by hand below.
                inner.with_truncation(None).map_err(|source| EngineError::Tokenizer { doing: "turning truncation off".into(), source })?;
                inner.with_padding(None);
                let id = |t: &str| {
                    inner
                        .token_to_id(t)
                        .map(i64::from)
                        .ok_or_else(|| EngineError::artifact(path, format!("has no '{t}' token; is it a CLIP BPE tokenizer?")))
                };
                Some((id(SOT)?, id(EOT)?))
            }
            TokenizerKind::Hf => {
                inner
                    .with_truncation(Some(TruncationParams { max_length: ctx, ..Default::default() }))
                    .map_err(|source| EngineError::Tokenizer { doing: format!("truncating to {ctx} tokens"), source })?;
                let pad_token = inner.id_to_token(meta.pad_id as u32).unwrap_or_default();
                inner.with_padding(Some(PaddingParams {
                    strategy: PaddingStrategy::Fixed(ctx),
                    pad_id: meta.pad_id as u32,
                    pad_token,
                    ..Default::default()
                }));
                None
            }
        };
        Ok(TextTokenizer { inner, kind: meta.tokenizer, clean: meta.text_clean(), context_length: ctx, pad_id: meta.pad_id, sot_eot })
    }

    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// One row of exactly `context_length` ids.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>, EngineError> {
        let cleaned = clean_text(text, self.clean);
        let ctx = self.context_length;
        let mut ids: Vec<i64> = match (self.kind, self.sot_eot) {
            (TokenizerKind::ClipBpe, Some((sot, eot))) => {
                let enc = self
                    .inner
                    .encode(cleaned.as_str(), false)
                    .map_err(|source| EngineError::Tokenizer { doing: format!("cannot tokenize {text:?}"), source })?;
                let mut ids = Vec::with_capacity(enc.get_ids().len() + 2);
                ids.push(sot);
                ids.extend(enc.get_ids().iter().map(|&i| i64::from(i)));
                ids.push(eot);
                if ids.len() > ctx {
                    ids.truncate(ctx);
                    ids[ctx - 1] = eot;
                }
                ids
            }
            _ => self
                .inner
                .encode(cleaned.as_str(), true)
                .map_err(|source| EngineError::Tokenizer { doing: format!("cannot tokenize {text:?}"), source })?
                .get_ids()
                .iter()
                .map(|&i| i64::from(i))
                .collect(),
        };
        ids.truncate(ctx);
        ids.resize(ctx, self.pad_id);
        Ok(ids)
    }

    /// `[B, context_length]` int64 on the CPU.
    pub fn tokenize<S: AsRef<str>>(&self, texts: &[S]) -> Result<Tensor, EngineError> {
        let mut flat = Vec::with_capacity(texts.len() * self.context_length);
        for t in texts {
            flat.extend(self.encode(t.as_ref())?);
        }
        Ok(Tensor::from_slice(&flat).view([texts.len() as i64, self.context_length as i64]))
    }
}
