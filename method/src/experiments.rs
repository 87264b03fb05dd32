//! The paper's experiments (docs/method.md, "Experiments") from committed
//! results, no GPU work:
//!
//! - **α sweep**: steps f–h again with each α ([`mix`]) and reuse of the new
//!   picks; at the method's α this is exactly the main report's MLL.
//! - **k sweep**: MLL's and INB's picks for k = 1…6, their reuse accuracy and
//!   cost: the distinct models a dataset needs (a fraction of the hub) and the
//!   recorded GPU-seconds of those models' evaluate jobs on it.
//! - **hub growth**: seeded random orders of the hub; for each prefix (a hub of
//!   1…M models) MLL k = 1 (its per-class best model among the prefix), INB
//!   k = 1 and the oracle, averaged over the datasets.
//!
//! Datasets are processed one at a time ([`dataset_experiments`], while their
//! probabilities are in memory) and combined at the end ([`combine`]).
//! Everything is deterministic: fixed orders from the seed, ties by hub order.

use super::reuse::term;
use super::{first_max, inb_models, mix, pick_top_k, same_models_for_all_classes, MethodError, Selection, SplitMix64};
use crate::input::{mean_finite, DatasetData};
use crate::options::MethodOptions;
use crate::outcome::*;
use std::collections::BTreeMap;

/// What the experiments sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentOptions {
    pub alphas: Vec<f64>,
    pub ks: Vec<usize>,
    /// Random hub orders of the hub-growth study.
    pub orders: usize,
}

impl Default for ExperimentOptions {
    fn default() -> Self {
        ExperimentOptions { alphas: vec![0.5, 0.6, 0.7, 0.8, 0.9], ks: (1..=6).collect(), orders: 30 }
    }
}

/// One dataset's experiment results, before they are combined.
#[derive(Debug, Clone)]
pub struct DatasetExperiments {
    pub dataset: String,
    pub alpha: Option<Vec<AlphaPoint>>,
    pub k: Option<Vec<KPoint>>,
    pub hub_gpu_seconds: Option<f64>,
    /// Per method: accuracy[order][size − 1].
    pub growth: BTreeMap<String, Vec<Vec<f64>>>,
}

/// `orders` seeded permutations of 0..m (Fisher–Yates on SplitMix64), the
/// same for every dataset of a run.
pub fn hub_orders(m: usize, orders: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = SplitMix64::new(seed);
    (0..orders)
        .map(|_| {
            let mut o: Vec<usize> = (0..m).collect();
            for i in (1..m).rev() {
                o.swap(i, rng.below(i + 1));
            }
            o
        })
        .collect()
}

fn ranking_point(r: &RankingReport) -> RankingPoint {
    RankingPoint { r5: r.r5, tau5: r.tau5, kendall_tau_b: r.kendall_tau_b, weighted_tau: r.weighted_tau }
}

/// Distinct models used by per-class lists, ascending.
pub fn distinct_models(class_models: &[Vec<usize>]) -> Vec<usize> {
    let mut used: Vec<usize> = class_models.iter().flatten().copied().collect();
    used.sort_unstable();
    used.dedup();
    used
}

/// Summed evaluate seconds of `models` on the dataset; None if one is unknown.
pub fn gpu_seconds(models: &[usize], seconds: &[Option<f64>]) -> Option<f64> {
    models.iter().map(|&m| seconds.get(m).copied().flatten()).sum()
}

/// The experiments of one complete dataset. `selection`: MLL's when it ran;
/// `seconds[m]`: model m's recorded evaluate seconds on this dataset.
pub fn dataset_experiments(
    data: &DatasetData,
    options: &MethodOptions,
    selection: Option<&Selection>,
    seconds: &[Option<f64>],
    exp: &ExperimentOptions,
) -> Result<DatasetExperiments, ReportError> {
    let name = data.input.name.clone();
    let method_err = |source: MethodError| ReportError::Method { dataset: name.clone(), source };
    let pool = data.pool(options.ensemble_weight)?;
    let mut notes = Vec::new();
    let m = data.models.len();
    let imagenet = data.imagenet();

    let alpha = selection.map(|sel| -> Result<Vec<AlphaPoint>, ReportError> {
        exp.alphas
            .iter()
            .map(|&alpha| {
                let mixed = mix(&sel.class_scores, &MethodOptions { alpha, ..options.clone() });
                let mut accuracy = BTreeMap::new();
                for &k in &options.k {
                    accuracy.insert(format!("mll_k{k}"), data.reuse(&pool, &mixed.top_k[&k], "alpha sweep", &mut notes)?);
                }
                Ok(AlphaPoint { alpha, accuracy, ranking: ranking_point(&data.rank(&mixed.model_scores)) })
            })
            .collect()
    });
    let alpha = alpha.transpose()?;

    let k = selection.map(|sel| -> Result<Vec<KPoint>, ReportError> {
        let picks = pick_top_k(&sel.mixed_scores, &exp.ks);
        exp.ks
            .iter()
            .map(|&k| {
                let set = &picks[&k];
                let used = distinct_models(set);
                let inb = inb_models(&imagenet, k).unwrap_or_default();
                let inb_acc = match inb.as_slice() {
                    [] => None,
                    // One model for every class: its own top-1, as the main report's inb_k1.
                    [one] => Some(data.top1[*one]).filter(|t| !t.is_nan()),
                    _ => data.reuse(&pool, &same_models_for_all_classes(&inb, data.classes), "k sweep", &mut notes)?,
                };
                Ok(KPoint {
                    k,
                    mll: data.reuse(&pool, set, "k sweep", &mut notes)?,
                    mll_models: used.len() as f64,
                    mll_hub_fraction: used.len() as f64 / m.max(1) as f64,
                    mll_gpu_seconds: gpu_seconds(&used, seconds),
                    inb: inb_acc,
                    inb_models: inb.len() as f64,
                    inb_gpu_seconds: if inb.is_empty() { None } else { gpu_seconds(&inb, seconds) },
                })
            })
            .collect()
    });
    let k = k.transpose()?;

    let orders = hub_orders(m, exp.orders, options.seed);
    let mut growth = BTreeMap::new();
    growth.insert("oracle".to_string(), orders.iter().map(|o| running_best(o, &data.top1, &data.top1)).collect());
    if imagenet.iter().any(Option::is_some) {
        let inet: Vec<f64> = imagenet.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
        growth.insert("inb_k1".to_string(), orders.iter().map(|o| running_best(o, &inet, &data.top1)).collect());
    }
    let all: Vec<usize> = (0..m).collect();
    if let (Some(sel), Some(labels)) = (selection, data.labels) {
        if data.has_probs(&all) {
            let tables = (0..m).map(|i| pool.table(i)).collect::<Result<Vec<_>, _>>().map_err(method_err)?;
            let tables: Vec<(&[f32], &[f64])> = tables.iter().map(|(p, w)| (p.as_ref(), *w)).collect();
            let curve = orders.iter().map(|o| mll_k1_growth(o, &sel.mixed_scores, &tables, labels, data.classes)).collect();
            growth.insert("mll_k1".to_string(), curve);
        }
    }
    Ok(DatasetExperiments { dataset: name, alpha, k, hub_gpu_seconds: gpu_seconds(&all, seconds), growth })
}

/// NaN ranks lowest; equal values keep the lower hub index first.
fn beats(score: &[f64], a: usize, b: usize) -> bool {
    let key = |x: f64| if x.is_nan() { f64::NEG_INFINITY } else { x };
    let (sa, sb) = (key(score[a]), key(score[b]));
    sa > sb || (sa == sb && a < b)
}

/// For each prefix of `order`: `value` of the prefix's best model by `score`
/// (INB: ImageNet top-1; the oracle: top-1 itself).
fn running_best(order: &[usize], score: &[f64], value: &[f64]) -> Vec<f64> {
    let mut best: Option<usize> = None;
    order
        .iter()
        .map(|&m| {
            let b = match best {
                Some(b) if !beats(score, m, b) => b,
                _ => m,
            };
            best = Some(b);
            value[b]
        })
        .collect()
}

/// MLL k = 1 reuse accuracy for each prefix of `order`: class y uses the
/// prefix's model with the largest r_{m,y} (ties by hub order, as selection's
/// picks). q_y(x) = w(x)·P(y|x) of that model, so a new model changes q only
/// in the classes it takes over: q and each sample's argmax are kept up to
/// date instead of recomputing every ensemble (an argmax that drops is found
/// again by a scan of the row). Equals [`super::ReusePool::accuracy`] of the
/// same picks exactly: the same terms, the same first-max ties.
pub fn mll_k1_growth(order: &[usize], mixed: &ndarray::Array2<f64>, tables: &[(&[f32], &[f64])], labels: &[usize], c: usize) -> Vec<f64> {
    let n = labels.len();
    let mut q = vec![0f64; n * c];
    let mut arg = vec![0usize; n];
    let mut owner = vec![usize::MAX; c];
    let mut changed = Vec::with_capacity(c);
    let mut curve = Vec::with_capacity(order.len());
    for (step, &m) in order.iter().enumerate() {
        changed.clear();
        for (y, o) in owner.iter_mut().enumerate() {
            let col = mixed.column(y);
            let key = |x: f64| if x.is_nan() { f64::NEG_INFINITY } else { x };
            if *o == usize::MAX || key(col[m]) > key(col[*o]) || (key(col[m]) == key(col[*o]) && m < *o) {
                *o = m;
                changed.push(y);
            }
        }
        let (p, w) = tables[m];
        if step == 0 {
            for x in 0..n {
                let row = &mut q[x * c..(x + 1) * c];
                for (qy, &py) in row.iter_mut().zip(&p[x * c..(x + 1) * c]) {
                    *qy = term(w[x], py);
                }
                arg[x] = first_max(row);
            }
        } else if !changed.is_empty() {
            for x in 0..n {
                let row = &mut q[x * c..(x + 1) * c];
                let prow = &p[x * c..(x + 1) * c];
                let (wx, mut a, mut rescan) = (w[x], arg[x], false);
                for &y in &changed {
                    let new = term(wx, prow[y]);
                    let old = std::mem::replace(&mut row[y], new);
                    if y == a {
                        rescan |= new < old;
                    } else if !rescan && (new > row[a] || (new == row[a] && y < a)) {
                        a = y;
                    }
                }
                arg[x] = if rescan { first_max(row) } else { a };
            }
        }
        let right = arg.iter().zip(labels).filter(|(a, l)| a == l).count();
        curve.push(if n == 0 { f64::NAN } else { right as f64 / n as f64 });
    }
    curve
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64;
    (mean, var.sqrt())
}

/// Means over datasets of the per-dataset results (hub order, spec order).
pub fn combine(
    datasets: Vec<DatasetExperiments>,
    options: &MethodOptions,
    exp: &ExperimentOptions,
    hub: usize,
    mut notes: Vec<String>,
) -> Experiments {
    let with_alpha: Vec<(&String, &Vec<AlphaPoint>)> = datasets.iter().filter_map(|d| d.alpha.as_ref().map(|a| (&d.dataset, a))).collect();
    let alpha_sweep = (!with_alpha.is_empty()).then(|| AlphaSweep {
        alphas: exp.alphas.clone(),
        mean: (0..exp.alphas.len())
            .map(|i| {
                // A dataset computed with other options has other points: skip, never index past them.
                let pts: Vec<&AlphaPoint> = with_alpha.iter().filter_map(|(_, a)| a.get(i)).collect();
                let accuracy = options
                    .k
                    .iter()
                    .map(|k| {
                        let key = format!("mll_k{k}");
                        let v = mean_finite(pts.iter().filter_map(|p| p.accuracy.get(&key).copied().flatten()));
                        (key, Some(v).filter(|v| !v.is_nan()))
                    })
                    .collect();
                let r = |f: fn(&RankingPoint) -> f64| mean_finite(pts.iter().map(|p| f(&p.ranking)));
                AlphaPoint {
                    alpha: exp.alphas[i],
                    accuracy,
                    ranking: RankingPoint {
                        r5: r(|p| p.r5),
                        tau5: r(|p| p.tau5),
                        kendall_tau_b: r(|p| p.kendall_tau_b),
                        weighted_tau: r(|p| p.weighted_tau),
                    },
                }
            })
            .collect(),
        per_dataset: with_alpha.iter().map(|(d, a)| DatasetSeries { dataset: (*d).clone(), points: (*a).clone() }).collect(),
    });
    let with_k: Vec<(&String, &Vec<KPoint>)> = datasets.iter().filter_map(|d| d.k.as_ref().map(|k| (&d.dataset, k))).collect();
    let k_sweep = (!with_k.is_empty()).then(|| KSweep {
        ks: exp.ks.clone(),
        mean: (0..exp.ks.len())
            .map(|i| {
                let pts: Vec<&KPoint> = with_k.iter().filter_map(|(_, k)| k.get(i)).collect();
                let mean = |f: fn(&KPoint) -> Option<f64>| Some(mean_finite(pts.iter().filter_map(|p| f(p)))).filter(|v| !v.is_nan());
                let total = |f: fn(&KPoint) -> Option<f64>| pts.iter().map(|p| f(p)).sum::<Option<f64>>();
                KPoint {
                    k: exp.ks[i],
                    mll: mean(|p| p.mll),
                    mll_models: mean_finite(pts.iter().map(|p| p.mll_models)),
                    mll_hub_fraction: mean_finite(pts.iter().map(|p| p.mll_hub_fraction)),
                    mll_gpu_seconds: total(|p| p.mll_gpu_seconds),
                    inb: mean(|p| p.inb),
                    inb_models: mean_finite(pts.iter().map(|p| p.inb_models)),
                    inb_gpu_seconds: total(|p| p.inb_gpu_seconds),
                }
            })
            .collect(),
        per_dataset: with_k.iter().map(|(d, k)| DatasetSeries { dataset: (*d).clone(), points: (*k).clone() }).collect(),
        hub_gpu_seconds: datasets.iter().filter(|d| d.k.is_some()).map(|d| (d.dataset.clone(), d.hub_gpu_seconds)).collect(),
    });
    if with_k.iter().any(|(_, k)| k.iter().any(|p| p.mll_gpu_seconds.is_none())) {
        notes.push(
            "k sweep: some evaluate results carry no recorded duration (committed by an older worker); their GPU-seconds are null".into(),
        );
    }
    let methods: std::collections::BTreeSet<&String> = datasets.iter().flat_map(|d| d.growth.keys()).collect();
    let mut curves = BTreeMap::new();
    for method in methods {
        let have: Vec<(&String, &Vec<Vec<f64>>)> = datasets.iter().filter_map(|d| d.growth.get(method).map(|g| (&d.dataset, g))).collect();
        let (mut mean, mut std) = (Vec::with_capacity(hub), Vec::with_capacity(hub));
        for size in 0..hub {
            let per_order: Vec<f64> = (0..exp.orders).map(|o| mean_finite(have.iter().map(|(_, g)| g[o][size]))).collect();
            let (m, s) = mean_std(&per_order);
            mean.push(m);
            std.push(s);
        }
        curves.insert(method.clone(), GrowthCurve { mean, std, datasets: have.iter().map(|(d, _)| (*d).clone()).collect() });
    }
    let hub_growth =
        (!curves.is_empty() && hub > 0).then(|| HubGrowth { orders: exp.orders, seed: options.seed, sizes: (1..=hub).collect(), curves });
    if alpha_sweep.is_none() {
        notes.push(
            "α and k sweeps need MLL's selection and every model's per-sample probabilities: a run's committed results, not a truth table"
                .into(),
        );
    }
    Experiments { alpha_sweep, k_sweep, hub_growth, notes }
}
