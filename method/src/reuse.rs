//! Model reuse (docs/method.md, "Reuse"): per class y, the ensemble score
//! q_y(x) = Σ_{m ∈ F_y} w_m(x) · P_m(y|x), prediction argmax_y q_y(x).

use super::{first_max, shape_err, MethodError};
use crate::options::EnsembleWeight;
use ndarray::ArrayView2;
use std::borrow::Cow;
use std::cell::OnceCell;

pub use crate::prob::{entropy, PROB_FLOOR};

/// `p.max(PROB_FLOOR)` (NaN becomes the floor too) in a form the compiler
/// vectorises; the ensemble loops are the report's hot spot.
#[inline(always)]
fn floored(p: f32) -> f64 {
    (if p > PROB_FLOOR { p } else { PROB_FLOOR }) as f64
}

/// One model's term w_m(x) · P_m(y|x) of q_y(x), exactly as the ensembles add it.
#[inline(always)]
pub(crate) fn term(wx: f64, p: f32) -> f64 {
    wx * floored(p)
}

/// q += wx · floored(row), the ensemble's inner loop over classes.
#[inline(always)]
fn add_weighted(q: &mut [f64], wx: f64, row: &[f32]) {
    for (qy, &py) in q.iter_mut().zip(row) {
        *qy += wx * floored(py);
    }
}

/// The matrix as one row-major slice, copied only if it is not laid out so.
fn row_major<'b>(p: &ArrayView2<'b, f32>) -> Cow<'b, [f32]> {
    match p.to_slice() {
        Some(v) => Cow::Borrowed(v),
        None => Cow::Owned(p.iter().copied().collect()),
    }
}

/// The ensemble weight w_m(x) of a model with entropy `h` on a sample
/// (docs/method.md, "Reuse").
pub(crate) fn weight(h: f64, kind: EnsembleWeight) -> f64 {
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

/// One model's probabilities (borrowed or converted) and its per-sample weights.
type ModelTable<'a> = (Cow<'a, [f32]>, &'a [f64]);

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
    pub fn new(probs: Vec<Option<ArrayView2<'a, f32>>>, weighting: EnsembleWeight) -> Result<Self, MethodError> {
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
        Ok(ReusePool { probs, weights, weighting })
    }

    /// Uses `h` (one entropy per sample, as the worker stored it) for model
    /// m's weights instead of computing them from its probabilities.
    pub fn set_entropy(&mut self, m: usize, h: &[f64]) -> Result<(), MethodError> {
        let Some(Some(p)) = self.probs.get(m) else {
            return Err(MethodError::MissingProbabilities { model: m });
        };
        if h.len() != p.nrows() {
            return Err(shape_err(format!("model {m}: stored entropies (samples)"), p.nrows(), h.len()));
        }
        let w: Vec<f64> = h.iter().map(|&h| weight(h, self.weighting)).collect();
        self.weights[m] = OnceCell::from(w);
        Ok(())
    }

    fn model(&self, m: usize) -> Result<(ArrayView2<'a, f32>, &[f64]), MethodError> {
        let p = self.probs.get(m).and_then(|p| *p).ok_or(MethodError::MissingProbabilities { model: m })?;
        let w =
            self.weights[m].get_or_init(|| p.rows().into_iter().map(|row| weight(entropy(row.iter().copied()), self.weighting)).collect());
        Ok((p, w))
    }

    /// Model m's probabilities as one row-major slice (n × C) and its
    /// per-sample weights (computed once).
    pub fn table(&self, m: usize) -> Result<(Cow<'a, [f32]>, &[f64]), MethodError> {
        let (p, w) = self.model(m)?;
        Ok((row_major(&p), w))
    }

    /// Ensemble predictions for `class_models[y]` = F_y; ties in the argmax go to
    /// the lower class index.
    pub fn predict(&self, class_models: &[Vec<usize>]) -> Result<Vec<usize>, MethodError> {
        let c = class_models.len();
        if c == 0 {
            return Err(MethodError::Input("reuse needs at least one class".into()));
        }
        if class_models.iter().all(|f| f.is_empty()) {
            return Err(MethodError::Input("reuse: no class has a selected model".into()));
        }
        // Every model some class uses, once, with its row-major probabilities.
        let mut used: Vec<usize> = class_models.iter().flatten().copied().collect();
        used.sort_unstable();
        used.dedup();
        let mut slot = vec![usize::MAX; self.probs.len()];
        let mut tables: Vec<(Cow<[f32]>, &[f64])> = Vec::with_capacity(used.len());
        let mut n = None;
        for (s, &m) in used.iter().enumerate() {
            let (p, w) = self.model(m)?;
            if p.ncols() != c {
                return Err(shape_err("reuse: probability columns (classes)", c, p.ncols()));
            }
            n = Some(p.nrows());
            let flat = row_major(&p);
            tables.push((flat, w));
            slot[m] = s;
        }
        let n = n.expect("some class has a model");
        let same_for_all = class_models.windows(2).all(|w| w[0] == w[1]);
        // Per rank r: (slot of F_y[r], y) for every class with an r-th model,
        // grouped by model so one sample's row of each model is read in one go.
        // Each q_y still sums its models in F_y's order (rank by rank).
        let depth = class_models.iter().map(Vec::len).max().unwrap_or(0);
        let ranked: Vec<Vec<(usize, Vec<usize>)>> = (0..depth)
            .map(|r| {
                let mut by_slot: Vec<(usize, Vec<usize>)> = Vec::new();
                let mut pairs: Vec<(usize, usize)> =
                    class_models.iter().enumerate().filter_map(|(y, f)| f.get(r).map(|&m| (slot[m], y))).collect();
                pairs.sort_unstable();
                for (s, y) in pairs {
                    match by_slot.last_mut() {
                        Some((last, ys)) if *last == s => ys.push(y),
                        _ => by_slot.push((s, vec![y])),
                    }
                }
                by_slot
            })
            .collect();
        let mut preds = Vec::with_capacity(n);
        let mut q = vec![0f64; c];
        for x in 0..n {
            let row = x * c..(x + 1) * c;
            q.fill(0.0);
            if same_for_all {
                // One model list for every class (INB, random): add whole rows,
                // in F's order, so each q_y sums in the same order as below.
                for &m in &class_models[0] {
                    let (p, w) = &tables[slot[m]];
                    add_weighted(&mut q, w[x], &p[row.clone()]);
                }
            } else {
                for groups in &ranked {
                    for (s, ys) in groups {
                        let (p, w) = &tables[*s];
                        let (wx, prow) = (w[x], &p[row.clone()]);
                        for &y in ys {
                            q[y] += wx * floored(prow[y]);
                        }
                    }
                }
            }
            preds.push(first_max(&q));
        }
        Ok(preds)
    }

    /// Per sample x with prediction ŷ = `preds[x]`: the weighted mean of
    /// P_m(ŷ|x) over the models that voted for ŷ (F_ŷ), i.e.
    /// q_ŷ(x) / Σ_{m∈F_ŷ} w_m(x), with the same weights and floored terms the
    /// ensemble adds (0 where the weights sum to 0).
    pub fn confidences(&self, preds: &[usize], class_models: &[Vec<usize>]) -> Result<Vec<f64>, MethodError> {
        preds
            .iter()
            .enumerate()
            .map(|(x, &y)| {
                let f = class_models
                    .get(y)
                    .ok_or_else(|| MethodError::Input(format!("prediction {y} is not one of the {} classes", class_models.len())))?;
                let (mut q, mut w) = (0.0, 0.0);
                for &m in f {
                    let (p, wm) = self.model(m)?;
                    q += term(wm[x], p[[x, y]]);
                    w += wm[x];
                }
                Ok(if w > 0.0 { q / w } else { 0.0 })
            })
            .collect()
    }

    /// Predictions where sample x uses `models_per_sample[x·k..(x+1)·k]` for
    /// every class (the random baseline's per-sample subsets); same sums and
    /// ties as [`Self::predict`].
    pub fn predict_per_sample(&self, models_per_sample: &[usize], k: usize, classes: usize) -> Result<Vec<usize>, MethodError> {
        if k == 0 || !models_per_sample.len().is_multiple_of(k) {
            return Err(MethodError::Input(format!(
                "reuse: {} per-sample model entries are not a whole number of {k}-subsets",
                models_per_sample.len()
            )));
        }
        let n = models_per_sample.len() / k;
        let mut used: Vec<usize> = models_per_sample.to_vec();
        used.sort_unstable();
        used.dedup();
        let mut tables: Vec<Option<ModelTable>> = vec![None; self.probs.len()];
        for &m in &used {
            let (p, w) = self.model(m)?;
            if p.ncols() != classes || p.nrows() != n {
                return Err(shape_err(
                    format!("reuse: model {m}'s probabilities (samples, classes)"),
                    format!("({n}, {classes})"),
                    format!("{:?}", p.dim()),
                ));
            }
            let flat = row_major(&p);
            tables[m] = Some((flat, w));
        }
        let mut q = vec![0f64; classes];
        let mut preds = Vec::with_capacity(n);
        for (x, models) in models_per_sample.chunks_exact(k).enumerate() {
            q.fill(0.0);
            for &m in models {
                let (p, w) = tables[m].as_ref().expect("collected above");
                let wx = w[x];
                add_weighted(&mut q, wx, &p[x * classes..(x + 1) * classes]);
            }
            preds.push(first_max(&q));
        }
        Ok(preds)
    }

    /// Top-1 accuracy of the ensemble against `labels` (NaN when there are no samples).
    pub fn accuracy(&self, labels: &[usize], class_models: &[Vec<usize>]) -> Result<f64, MethodError> {
        let preds = self.predict(class_models)?;
        if preds.len() != labels.len() {
            return Err(shape_err("reuse: labels per sample", preds.len(), labels.len()));
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
