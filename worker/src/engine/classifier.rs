//! Zero-shot classifiers: class names and templates through a model's text
//! tower, one unit row per class.

use super::error::EngineError;
use super::model::{l2_normalize, LoadedModel};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// How class names become a zero-shot classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassifierProtocol {
    /// CLIP_benchmark: every template per class, L2-normalise, mean, re-normalise.
    #[default]
    ClipBenchmark,
    /// One prompt per class, the first template.
    Mll,
    /// The class name alone (the released MLL reuse.py); templates are ignored.
    Bare,
}

/// How many prompts go through the text tower at once.
const TEXT_BATCH: usize = 256;

/// `template` with `{c}` replaced by the class name (CLIP_benchmark's
/// `template.format(c=classname)`).
pub fn fill_template(template: &str, classname: &str) -> String {
    template.replace("{c}", classname)
}

/// A `C × D` f32 CPU tensor of unit rows: class `i`'s text embedding.
pub fn build_classifier<S: AsRef<str>, T: AsRef<str>>(
    model: &LoadedModel,
    classnames: &[S],
    templates: &[T],
    protocol: ClassifierProtocol,
) -> Result<Tensor, EngineError> {
    if classnames.is_empty() {
        return Err(EngineError::InvalidInput("no class names to build a classifier from".into()));
    }
    if templates.is_empty() && protocol != ClassifierProtocol::Bare {
        return Err(EngineError::InvalidInput("no prompt templates (give at least one, e.g. \"a photo of a {c}.\")".into()));
    }
    let templates: Vec<&str> = match protocol {
        ClassifierProtocol::ClipBenchmark => templates.iter().map(|t| t.as_ref()).collect(),
        ClassifierProtocol::Mll => vec![templates[0].as_ref()],
        ClassifierProtocol::Bare => vec!["{c}"],
    };
    let prompts: Vec<String> = classnames.iter().flat_map(|c| templates.iter().map(move |t| fill_template(t, c.as_ref()))).collect();
    let mut parts = Vec::with_capacity(prompts.len().div_ceil(TEXT_BATCH));
    for chunk in prompts.chunks(TEXT_BATCH) {
        parts.push(model.encode_texts(chunk)?);
    }
    let emb = Tensor::f_cat(&parts, 0).map_err(|e| EngineError::torch("joining the class embeddings", e))?;
    let (c, t) = (classnames.len() as i64, templates.len() as i64);
    let d = emb.size()[1];
    let mean = emb.view([c, t, d]).mean_dim(1, false, Kind::Float);
    Ok(l2_normalize(&mean))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_take_the_class_name() {
        assert_eq!(fill_template("a photo of a {c}.", "dog"), "a photo of a dog.");
        assert_eq!(fill_template("itap of the {c}, {c}", "cat"), "itap of the cat, cat");
    }
}
