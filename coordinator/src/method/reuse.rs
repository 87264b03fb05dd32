//! Model reuse (SPEC §4.4): per class y, the ensemble score
//! q_y(x) = Σ_{m ∈ F_y} w_m(x) · P_m(y|x), prediction argmax_y q_y(x).

use super::{shape_err, MethodError};
use mll_common::spec::EnsembleWeight;
use ndarray::ArrayView2;
use std::cell::OnceCell;

/// Probabilities are clamped to at least this before logs and products.
pub const PROB_FLOOR: f32 = 1e-12;

/// Shannon entropy (nats) of one probability row, each entry clamped ≥ 1e-12.
pub fn entropy(row: impl IntoIterator<Item = f32>) -> f64 {
    row.into_iter()
        .map(|p| {
            let p = p.max(PROB_FLOOR) as f64;
            -p * p.ln()
        })
        .sum()
}

fn weight(h: f64, kind: EnsembleWeight) -> f64 {
    match kind {
        EnsembleWeight::Entropy => h,
        // A one-hot row has entropy ~0 after clamping; cap the weight instead of dividing by 0.
        EnsembleWeight::InverseEntropy => 1.0 / h.max(1e-12),
    }
}

/// The same model list for every class (INB k, random subsets).
pub fn same_models_for_all_classes(models: &[usize], classes: usize) -> Vec<Vec<usize>> {
    vec![models.to_vec(); classes]
}

/// The probability matrices of one dataset with each model's per-sample weight
/// computed at most once, so many ensembles (MLL k=1,3, INB, random subsets)
/// over the same models share the entropy work.
pub struct ReusePool<'a> {
    probs: Vec<Option<ArrayView2<'a, f32>>>,
    weights: Vec<OnceCell<Vec<f64>>>,
    weighting: EnsembleWeight,
}

impl<'a> ReusePool<'a> {
    /// `probs[m]`: model m's n × C probability matrix, None where absent (only
    /// models some class selects are needed). All present matrices must agree in shape.
    pub fn new(
        probs: Vec<Option<ArrayView2<'a, f32>>>,
        weighting: EnsembleWeight,
    ) -> Result<Self, MethodError> {
        let mut shape = None;
        for (m, p) in probs.iter().enumerate() {
            if let Some(p) = p {
                match shape {
                    None => shape = Some(p.dim()),
                    Some(s) if s != p.dim() => {
                        return Err(shape_err(
                            format!("model {m}: probability matrix (samples, classes)"),
                            format!("{s:?}"),
                            format!("{:?}", p.dim()),
                        ))
                    }
                    _ => {}
                }
            }
        }
        let weights = probs.iter().map(|_| OnceCell::new()).collect();
        Ok(ReusePool {
            probs,
            weights,
            weighting,
        })
    }

    fn model(&self, m: usize) -> Result<(ArrayView2<'a, f32>, &[f64]), MethodError> {
        let p = self
            .probs
            .get(m)
            .and_then(|p| p.clone())
            .ok_or(MethodError::MissingProbabilities { model: m })?;
        let w = self.weights[m].get_or_init(|| {
            p.rows()
                .into_iter()
                .map(|row| weight(entropy(row.iter().copied()), self.weighting))
                .collect()
        });
        Ok((p, w))
    }

    /// Ensemble predictions for `class_models[y]` = F_y; ties in the argmax go to
    /// the lower class index.
    pub fn predict(&self, class_models: &[Vec<usize>]) -> Result<Vec<usize>, MethodError> {
        let c = class_models.len();
        if c == 0 {
            return Err(MethodError::Input("reuse needs at least one class".into()));
        }
        if class_models.iter().all(|f| f.is_empty()) {
            return Err(MethodError::Input(
                "reuse: no class has a selected model".into(),
            ));
        }
        let per_class: Vec<Vec<(ArrayView2<f32>, &[f64])>> = class_models
            .iter()
            .map(|f| {
                f.iter()
                    .map(|&m| self.model(m))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<_, _>>()?;
        let (n, cols) = per_class
            .iter()
            .flatten()
            .next()
            .expect("some class has a model")
            .0
            .dim();
        if cols != c {
            return Err(shape_err("reuse: probability columns (classes)", c, cols));
        }
        let mut preds = Vec::with_capacity(n);
        for x in 0..n {
            let mut best = 0;
            let mut best_q = f64::NEG_INFINITY;
            for (y, models) in per_class.iter().enumerate() {
                let q: f64 = models
                    .iter()
                    .map(|(p, w)| w[x] * p[[x, y]].max(PROB_FLOOR) as f64)
                    .sum();
                if q > best_q {
                    best_q = q;
                    best = y;
                }
            }
            preds.push(best);
        }
        Ok(preds)
    }

    /// Top-1 accuracy of the ensemble against `labels` (NaN when there are no samples).
    pub fn accuracy(
        &self,
        labels: &[usize],
        class_models: &[Vec<usize>],
    ) -> Result<f64, MethodError> {
        let preds = self.predict(class_models)?;
        if preds.len() != labels.len() {
            return Err(shape_err(
                "reuse: labels per sample",
                preds.len(),
                labels.len(),
            ));
        }
        if labels.is_empty() {
            return Ok(f64::NAN);
        }
        let right = preds.iter().zip(labels).filter(|(p, l)| p == l).count();
        Ok(right as f64 / labels.len() as f64)
    }
}

/// Ensemble predictions (see [`ReusePool::predict`]) for a single ensemble.
pub fn ensemble_predict(
    probs: &[Option<ArrayView2<f32>>],
    class_models: &[Vec<usize>],
    weighting: EnsembleWeight,
) -> Result<Vec<usize>, MethodError> {
    ReusePool::new(probs.to_vec(), weighting)?.predict(class_models)
}

/// Top-1 accuracy of a single ensemble against `labels` (NaN when there are no samples).
pub fn ensemble_accuracy(
    probs: &[Option<ArrayView2<f32>>],
    labels: &[usize],
    class_models: &[Vec<usize>],
    weighting: EnsembleWeight,
) -> Result<f64, MethodError> {
    ReusePool::new(probs.to_vec(), weighting)?.accuracy(labels, class_models)
}
