//! What the evaluate and label executors need from a loaded CLIP-family model,
//! as two small traits. The engine's model cache implements [`ModelProvider`];
//! tests can substitute a fake.

use crate::engine::image::PreprocessConfig;
use crate::executor::ExecError;
use mll_common::job::PromptProtocol;
use std::path::Path;
use tch::Tensor;

/// A loaded model artifact (module.pt + model.json + tokenizer.json).
pub trait ClipModel {
    /// Image preprocessing from model.json.
    fn preprocess(&self) -> PreprocessConfig;
    /// The factor zero-shot logits use (model.json `logit_scale`).
    fn logit_scale(&self) -> f64;
    /// `[B, 3, S, S]` normalised CPU images → `[B, D]` L2-normalised embeddings
    /// (on the model's device).
    fn encode_images(&self, images: &Tensor) -> Result<Tensor, ExecError>;
    /// Texts → `[n, D]` L2-normalised embeddings.
    fn encode_texts(&self, texts: &[String]) -> Result<Tensor, ExecError>;
    /// The zero-shot classifier `[C, D]` (rows L2-normalised) for `protocol`.
    fn classifier(&self, classnames: &[String], templates: &[String], protocol: PromptProtocol) -> Result<Tensor, ExecError>;
}

/// Loads (or finds in a cache) the model at a folder and lends it to `f`.
/// Errors: a missing or corrupt artifact is Permanent, naming the path.
pub trait ModelProvider: Send + Sync {
    fn with_model(&self, dir: &Path, f: &mut dyn FnMut(&dyn ClipModel) -> Result<(), ExecError>) -> Result<(), ExecError>;
}

// --- the engine's implementation -------------------------------------------

use crate::engine::{build_classifier, ClassifierProtocol, LoadedModel, ModelCache};

impl ClipModel for LoadedModel {
    fn preprocess(&self) -> PreprocessConfig {
        PreprocessConfig::from_meta(self.meta())
    }

    fn logit_scale(&self) -> f64 {
        self.meta().logit_scale
    }

    fn encode_images(&self, images: &Tensor) -> Result<Tensor, ExecError> {
        Ok(LoadedModel::encode_images(self, images)?)
    }

    fn encode_texts(&self, texts: &[String]) -> Result<Tensor, ExecError> {
        Ok(LoadedModel::encode_texts(self, texts)?)
    }

    fn classifier(&self, classnames: &[String], templates: &[String], protocol: PromptProtocol) -> Result<Tensor, ExecError> {
        let protocol = match protocol {
            PromptProtocol::ClipBenchmark => ClassifierProtocol::ClipBenchmark,
            PromptProtocol::Mll => ClassifierProtocol::Mll,
            PromptProtocol::Bare => ClassifierProtocol::Bare,
        };
        Ok(build_classifier(self, classnames, templates, protocol)?)
    }
}

impl ModelProvider for ModelCache {
    fn with_model(&self, dir: &Path, f: &mut dyn FnMut(&dyn ClipModel) -> Result<(), ExecError>) -> Result<(), ExecError> {
        let model = self.get(dir)?;
        f(model.as_ref())
    }
}
