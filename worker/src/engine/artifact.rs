//! The model artifact folder of docs/formats.md: `module.pt`, `model.json`,
//! `tokenizer.json`. Opening one reads and validates the metadata and checks
//! the files are there; loading the module is `model.rs`'s job.

use super::error::EngineError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const FORMAT_VERSION: u32 = 1;
pub const MODULE_FILE: &str = "module.pt";
pub const META_FILE: &str = "model.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMode {
    /// Resize the short side to the image size, then centre-crop.
    Shortest,
    /// Resize to image size × image size, no crop.
    Squash,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    Bicubic,
    Bilinear,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenizerKind {
    #[serde(rename = "clip_bpe")]
    ClipBpe,
    #[serde(rename = "hf")]
    Hf,
}

/// open_clip's text cleaning before tokenisation (its `clean` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextClean {
    /// ftfy-like fixes, html unescape, whitespace collapse, lower-case (SimpleTokenizer).
    Lower,
    /// The same without lower-casing (HFTokenizer's default).
    Whitespace,
}

/// `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    pub format_version: u32,
    pub model_key: String,
    pub image_size: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub resize_mode: ResizeMode,
    pub interpolation: Interpolation,
    pub context_length: usize,
    pub pad_id: i64,
    pub tokenizer: TokenizerKind,
    /// Absent in hand-written files: the tokenizer kind's open_clip default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_clean: Option<TextClean>,
    pub logit_scale: f64,
    pub embed_dim: usize,
    #[serde(default)]
    pub exporter: serde_json::Value,
}

impl ModelMeta {
    pub fn text_clean(&self) -> TextClean {
        self.text_clean.unwrap_or(match self.tokenizer {
            TokenizerKind::ClipBpe => TextClean::Lower,
            TokenizerKind::Hf => TextClean::Whitespace,
        })
    }

    /// Whether the export used random weights (test artifacts).
    pub fn random_weights(&self) -> bool {
        self.exporter.get("random_weights").and_then(|v| v.as_bool()).unwrap_or(false)
    }

    /// Parses and validates model.json text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, EngineError> {
        let meta: ModelMeta = serde_json::from_str(text).map_err(|source| EngineError::Meta { path: path.to_path_buf(), source })?;
        meta.validate().map_err(|reason| EngineError::artifact(path, reason))?;
        Ok(meta)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.format_version != FORMAT_VERSION {
            return Err(format!(
                "format_version {} is not supported (this worker reads {FORMAT_VERSION}); re-export the model",
                self.format_version
            ));
        }
        if self.model_key.trim().is_empty() {
            return Err("model_key is empty".into());
        }
        if self.image_size == 0 || self.image_size > 4096 {
            return Err(format!("image_size {} is not in 1..=4096", self.image_size));
        }
        if self.mean.iter().any(|m| !m.is_finite()) {
            return Err(format!("mean {:?} has a non-finite value", self.mean));
        }
        if self.std.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(format!("std {:?} must be positive and finite", self.std));
        }
        if self.context_length == 0 || self.context_length > 4096 {
            return Err(format!("context_length {} is not in 1..=4096", self.context_length));
        }
        if self.pad_id < 0 {
            return Err(format!("pad_id {} is negative", self.pad_id));
        }
        if !self.logit_scale.is_finite() || self.logit_scale <= 0.0 {
            return Err(format!("logit_scale {} must be positive and finite", self.logit_scale));
        }
        if self.embed_dim == 0 {
            return Err("embed_dim is 0".into());
        }
        Ok(())
    }
}

/// An artifact folder whose metadata is valid and whose files exist.
#[derive(Debug, Clone)]
pub struct ModelArtifact {
    pub dir: PathBuf,
    pub meta: ModelMeta,
    pub module_path: PathBuf,
    pub tokenizer_path: PathBuf,
    /// Size of module.pt: the cache's estimate of the memory a loaded model holds.
    pub module_bytes: u64,
}

impl ModelArtifact {
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, EngineError> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(EngineError::artifact(dir, "is not a directory (expected an export of scripts/export-open-clip)"));
        }
        let meta_path = dir.join(META_FILE);
        let text = std::fs::read_to_string(&meta_path).map_err(|source| EngineError::ArtifactRead { path: meta_path.clone(), source })?;
        let meta = ModelMeta::parse(&text, &meta_path)?;
        let module_path = dir.join(MODULE_FILE);
        let module_bytes =
            std::fs::metadata(&module_path).map_err(|source| EngineError::ArtifactRead { path: module_path.clone(), source })?.len();
        if module_bytes == 0 {
            return Err(EngineError::artifact(&module_path, "is empty; re-export the model"));
        }
        let tokenizer_path = dir.join(TOKENIZER_FILE);
        if !tokenizer_path.is_file() {
            return Err(EngineError::artifact(
                &tokenizer_path,
                "is missing (HF text towers need their tokenizer.json provided beside the module)",
            ));
        }
        Ok(ModelArtifact { dir: dir.to_path_buf(), meta, module_path, tokenizer_path, module_bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
      "format_version": 1, "model_key": "ViT-B-32/openai", "image_size": 224,
      "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
      "resize_mode": "shortest", "interpolation": "bicubic", "context_length": 77, "pad_id": 0,
      "tokenizer": "clip_bpe", "logit_scale": 100.0, "embed_dim": 512,
      "exporter": {"torch": "2.13.0", "open_clip": "3.3.0", "random_weights": true}
    }"#;

    fn parse(s: &str) -> Result<ModelMeta, String> {
        ModelMeta::parse(s, Path::new("x/model.json")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_documented_example_parses() {
        let m = parse(GOOD).unwrap();
        assert_eq!(m.image_size, 224);
        assert_eq!(m.resize_mode, ResizeMode::Shortest);
        assert_eq!(m.tokenizer, TokenizerKind::ClipBpe);
        assert_eq!(m.text_clean(), TextClean::Lower);
        assert!(m.random_weights());
    }

    #[test]
    fn bad_metadata_is_refused_with_the_reason() {
        let e = parse(&GOOD.replace("\"shortest\"", "\"longest\"")).unwrap_err();
        assert!(e.contains("unknown variant `longest`") && e.contains("x/model.json"), "{e}");
        let e = parse(&GOOD.replace("\"image_size\": 224", "\"image_size\": 0")).unwrap_err();
        assert!(e.contains("image_size 0"), "{e}");
        let e = parse(&GOOD.replace("0.26862954", "0.0")).unwrap_err();
        assert!(e.contains("std"), "{e}");
        let e = parse(&GOOD.replace("\"format_version\": 1", "\"format_version\": 2")).unwrap_err();
        assert!(e.contains("format_version 2"), "{e}");
        let e = parse(&GOOD[..40]).unwrap_err();
        assert!(e.contains("invalid model.json"), "{e}");
    }

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = ModelArtifact::open(dir.path().join("nope")).unwrap_err().to_string();
        assert!(e.contains("is not a directory"), "{e}");
        let e = ModelArtifact::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("model.json") && e.contains("cannot read"), "{e}");
        std::fs::write(dir.path().join(META_FILE), GOOD).unwrap();
        let e = ModelArtifact::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("module.pt"), "{e}");
        std::fs::write(dir.path().join(MODULE_FILE), b"x").unwrap();
        let e = ModelArtifact::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("tokenizer.json"), "{e}");
        std::fs::write(dir.path().join(TOKENIZER_FILE), b"{}").unwrap();
        let a = ModelArtifact::open(dir.path()).unwrap();
        assert_eq!(a.module_bytes, 1);
    }
}
