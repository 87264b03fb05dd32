//! A loaded model: the TorchScript module on its device, its metadata and
//! tokenizer. All tch calls for running open_clip models stay behind this API.
//!
//! - inference runs under `no_grad` (thread-local: set on every call);
//! - fp16 is CUDA autocast around the fp32 traced module (tracing baked fp32
//!   in; casting the module itself would break it);
//! - an out-of-memory error splits the batch in half and retries, down to one
//!   sample, before it is reported;
//! - outputs come back as f32 on the CPU, re-normalised (fp16 rounding).

use super::artifact::{ModelArtifact, ModelMeta};
use super::device::Precision;
use super::error::{first_line, is_oom_message, EngineError};
use super::tokenizer::TextTokenizer;
use std::path::Path;
use tch::{CModule, Device, Kind, Tensor};

pub struct LoadedModel {
    artifact: ModelArtifact,
    module: CModule,
    tokenizer: TextTokenizer,
    device: Device,
    precision: Precision,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("model_key", &self.artifact.meta.model_key)
            .field("dir", &self.artifact.dir)
            .field("device", &self.device)
            .field("precision", &self.precision)
            .finish()
    }
}

impl LoadedModel {
    /// Opens the artifact folder and loads it. Errors (missing files, bad
    /// metadata, a truncated or corrupt module.pt) are `Err`, never panics.
    pub fn load(dir: impl AsRef<Path>, device: Device, precision: Precision) -> Result<Self, EngineError> {
        Self::load_artifact(ModelArtifact::open(dir)?, device, precision)
    }

    pub fn load_artifact(artifact: ModelArtifact, device: Device, precision: Precision) -> Result<Self, EngineError> {
        let precision = precision.effective(device)?;
        let tokenizer = TextTokenizer::from_file(&artifact.tokenizer_path, &artifact.meta)?;
        let path = artifact.module_path.clone();
        // libtorch throws on a bad archive and tch turns that into Err; the
        // catch_unwind is for the odd panic inside tch's own wrappers.
        let loaded = std::panic::catch_unwind(|| CModule::load_on_device(&path, device));
        let mut module = match loaded {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => return Err(EngineError::Load { path, reason: first_line(&e), source: Some(e) }),
            Err(_) => return Err(EngineError::Load { path, reason: "libtorch panicked while loading".into(), source: None }),
        };
        module.set_eval();
        for method in ["encode_image", "encode_text"] {
            // A traced module without the method fails only when called; check now.
            if !has_method(&module, method) {
                return Err(EngineError::Load {
                    path,
                    reason: format!("the module has no `{method}` method (export with scripts/export-open-clip)"),
                    source: None,
                });
            }
        }
        Ok(LoadedModel { artifact, module, tokenizer, device, precision })
    }

    pub fn meta(&self) -> &ModelMeta {
        &self.artifact.meta
    }

    pub fn artifact(&self) -> &ModelArtifact {
        &self.artifact
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn embed_dim(&self) -> usize {
        self.artifact.meta.embed_dim
    }

    /// `images`: f32 `[B, 3, S, S]`, already resized, cropped and normalised
    /// (any device). Returns unit rows, f32 `[B, D]` on the CPU.
    pub fn encode_images(&self, images: &Tensor) -> Result<Tensor, EngineError> {
        let s = self.artifact.meta.image_size as i64;
        let size = images.size();
        if size.len() != 4 || size[1] != 3 || size[2] != s || size[3] != s {
            return Err(EngineError::InvalidInput(format!(
                "images have shape {size:?}; {} takes [B, 3, {s}, {s}]",
                self.artifact.meta.model_key
            )));
        }
        if !images.is_floating_point() {
            return Err(EngineError::InvalidInput(format!("images are {:?}; the model takes normalised float tensors", images.kind())));
        }
        self.run("encode_image", images)
    }

    /// `tokens`: int64 `[B, context_length]`. Returns unit rows, f32 `[B, D]` on the CPU.
    pub fn encode_tokens(&self, tokens: &Tensor) -> Result<Tensor, EngineError> {
        let ctx = self.artifact.meta.context_length as i64;
        let size = tokens.size();
        if size.len() != 2 || size[1] != ctx {
            return Err(EngineError::InvalidInput(format!(
                "tokens have shape {size:?}; {} takes [B, {ctx}]",
                self.artifact.meta.model_key
            )));
        }
        let tokens = match tokens.kind() {
            Kind::Int64 => tokens.shallow_clone(),
            Kind::Int | Kind::Int16 | Kind::Int8 | Kind::Uint8 => tokens.to_kind(Kind::Int64),
            k => return Err(EngineError::InvalidInput(format!("tokens are {k:?}; they must be integers"))),
        };
        self.run("encode_text", &tokens)
    }

    /// Cleans, tokenises and encodes texts: unit rows, f32 `[B, D]` on the CPU.
    pub fn encode_texts<S: AsRef<str>>(&self, texts: &[S]) -> Result<Tensor, EngineError> {
        let tokens = self.tokenizer.tokenize(texts)?;
        self.encode_tokens(&tokens)
    }

    fn run(&self, method: &str, input: &Tensor) -> Result<Tensor, EngineError> {
        let n = input.size()[0];
        if n == 0 {
            return Ok(Tensor::zeros([0, self.embed_dim() as i64], (Kind::Float, Device::Cpu)));
        }
        let parts = split_on_oom(0, n, &mut |start, len| self.forward(method, &input.narrow(0, start, len)))?;
        let out = if parts.len() == 1 {
            parts.into_iter().next().unwrap()
        } else {
            Tensor::f_cat(&parts, 0).map_err(|e| EngineError::torch(format!("{method}: joining the outputs of split batches"), e))?
        };
        let d = out.size().get(1).copied().unwrap_or(-1);
        if out.dim() != 2 || d != self.embed_dim() as i64 {
            return Err(EngineError::Torch(format!(
                "{method} returned shape {:?} but model.json says embed_dim {}; re-export the model",
                out.size(),
                self.embed_dim()
            )));
        }
        Ok(out)
    }

    fn forward(&self, method: &str, input: &Tensor) -> Result<Tensor, EngineError> {
        let _guard = tch::no_grad_guard();
        let wrap = |e: tch::TchError| {
            if is_oom_message(&e.to_string()) {
                EngineError::OutOfMemory { doing: format!("{method} on a batch of {}", input.size()[0]), source: e }
            } else {
                EngineError::TorchCall { doing: method.to_string(), source: e }
            }
        };
        let x = input.f_to_device(self.device).map_err(wrap)?;
        let x = if x.kind() == Kind::Int64 { x } else { x.f_to_kind(Kind::Float).map_err(wrap)? };
        let out = if self.precision.autocast() {
            tch::autocast(true, || self.module.method_ts(method, &[x]))
        } else {
            self.module.method_ts(method, &[x])
        }
        .map_err(wrap)?;
        let out = out.f_to_kind(Kind::Float).map_err(wrap)?.f_to_device(Device::Cpu).map_err(wrap)?;
        Ok(if self.precision.autocast() { l2_normalize(&out) } else { out })
    }
}

fn has_method(module: &CModule, name: &str) -> bool {
    // CModule has no "list methods"; calling with no argument fails with an
    // argument error when the method exists and a "not found" error when not.
    match module.method_is::<tch::IValue>(name, &[]) {
        Ok(_) => true,
        Err(e) => {
            let m = e.to_string();
            !(m.contains("not defined") || m.contains("not found") || m.contains("has no attribute"))
        }
    }
}

/// Runs `run(start, len)` over `[start, start + n)`, halving a range whenever
/// it fails with out-of-memory, until a single sample does.
pub(crate) fn split_on_oom<F>(start: i64, n: i64, run: &mut F) -> Result<Vec<Tensor>, EngineError>
where
    F: FnMut(i64, i64) -> Result<Tensor, EngineError>,
{
    match run(start, n) {
        Ok(t) => Ok(vec![t]),
        Err(e @ EngineError::OutOfMemory { .. }) if n > 1 => {
            tracing::warn!(batch = n, "retrying in two halves: {e}");
            let half = n / 2;
            let mut parts = split_on_oom(start, half, run)?;
            parts.extend(split_on_oom(start + half, n - half, run)?);
            Ok(parts)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oom() -> EngineError {
        EngineError::OutOfMemory { doing: "a test batch".into(), source: tch::TchError::Torch("CUDA out of memory".into()) }
    }

    #[test]
    fn oom_splits_the_batch_until_it_fits() {
        let mut calls = vec![];
        let parts = split_on_oom(0, 10, &mut |s, n| {
            calls.push((s, n));
            if n > 3 {
                Err(oom())
            } else {
                Ok(Tensor::arange_start(s, s + n, (Kind::Int64, Device::Cpu)))
            }
        })
        .unwrap();
        let all = Tensor::cat(&parts, 0);
        assert_eq!(Vec::<i64>::try_from(all).unwrap(), (0..10).collect::<Vec<_>>());
        assert_eq!(calls[0], (0, 10));
        assert!(calls.iter().all(|&(_, n)| n >= 1));
    }

    #[test]
    fn oom_on_one_sample_and_other_errors_are_reported() {
        let e = split_on_oom(0, 4, &mut |_, _| Err(oom())).unwrap_err();
        assert!(matches!(e, EngineError::OutOfMemory { .. }));
        let mut calls = 0;
        let e = split_on_oom(0, 4, &mut |_, _| {
            calls += 1;
            Err(EngineError::Torch("shape".into()))
        })
        .unwrap_err();
        assert!(matches!(e, EngineError::Torch(_)));
        assert_eq!(calls, 1, "only out-of-memory is retried");
    }
}

/// Rows divided by their L2 norm (zero rows stay zero).
pub fn l2_normalize(x: &Tensor) -> Tensor {
    let norm = x.norm_scalaropt_dim(2, 1, true).clamp_min(1e-12);
    x / norm
}

#[cfg(test)]
mod l2_tests {
    use super::*;

    #[test]
    fn normalisation_gives_unit_rows() {
        let x = tch::Tensor::from_slice(&[3.0f32, 4.0, 0.0, 0.0]).view([2, 2]);
        let n = l2_normalize(&x);
        assert_eq!(Vec::<f32>::try_from(n.flatten(0, -1)).unwrap(), vec![0.6, 0.8, 0.0, 0.0]);
    }
}
