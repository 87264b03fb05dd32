//! Baselines (docs/method.md, "Metrics and baselines"): INB (ImageNet-best),
//! oracle, hub average and random selection.

use super::reuse::{same_models_for_all_classes, ReusePool};
use super::rng::SplitMix64;
use super::{order_desc, MethodError};
use serde::{Deserialize, Serialize};

/// Every k-subset is enumerated (an exact expectation) when there are at most
/// this many; beyond, one subset is drawn per test sample.
pub const RANDOM_SUBSETS: usize = 32;

/// Hub models by ImageNet top-1, best first; models without a value come last,
/// ties in hub order. This is INB's predicted ranking.
pub fn imagenet_ranking(imagenet_top1: &[Option<f64>]) -> Vec<usize> {
    let scores: Vec<f64> = imagenet_top1.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
    order_desc(&scores)
}

/// INB's pick for k: the k best models by ImageNet top-1 (the same for every
/// class). None when no model has an ImageNet value.
pub fn inb_models(imagenet_top1: &[Option<f64>], k: usize) -> Option<Vec<usize>> {
    let with_value = imagenet_top1.iter().filter(|v| v.is_some_and(|x| !x.is_nan())).count();
    if with_value == 0 {
        return None;
    }
    Some(imagenet_ranking(imagenet_top1).into_iter().take(k.min(with_value)).collect())
}

/// The best model by ground-truth top-1 and its accuracy (None when no model has one).
pub fn oracle(top1: &[f64]) -> Option<(usize, f64)> {
    let best = *order_desc(top1).first()?;
    (!top1[best].is_nan()).then_some((best, top1[best]))
}

/// Mean top-1 over the models that have one (NaN when none). This is also the
/// exact expected accuracy of picking one model uniformly at random (random k = 1).
pub fn hub_average(top1: &[f64]) -> f64 {
    let v: Vec<f64> = top1.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Expected reuse accuracy of a uniformly random k-subset of the hub, used for
/// every class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RandomSelection {
    pub k: usize,
    pub accuracy: f64,
    /// Subsets evaluated: all of them when `exact`, else one per test sample.
    pub subsets: usize,
    /// True when every subset was evaluated on every sample (the expectation is
    /// exact); false when each sample drew its own subset from `seed` (an
    /// unbiased Monte-Carlo estimate).
    pub exact: bool,
    pub seed: u64,
}

/// Random selection for k ≥ 2 over the models whose probabilities `pool` has
/// (`candidates`, hub indexes). With at most [`RANDOM_SUBSETS`] k-subsets, the
/// mean ensemble accuracy over all of them. Otherwise each test sample draws
/// its own uniform k-subset from a SplitMix64 stream seeded with `seed` and
/// the estimate is the fraction of samples its ensemble gets right: E over
/// subsets of the mean over samples equals the mean over samples of E over
/// subsets, so this is unbiased, and with independent draws per sample its
/// variance is that of n Bernoulli trials, below that of a few dozen fixed
/// subsets; it costs one ensemble per sample instead of one per subset and
/// sample. For k = 1 use [`hub_average`], which is exact.
pub fn random_selection(
    pool: &ReusePool,
    labels: &[usize],
    classes: usize,
    candidates: &[usize],
    k: usize,
    seed: u64,
) -> Result<RandomSelection, MethodError> {
    if candidates.is_empty() || k == 0 {
        return Err(MethodError::Input("random selection needs at least one model and k >= 1".into()));
    }
    let k = k.min(candidates.len());
    if let Some(total) = binomial(candidates.len(), k).filter(|&t| t <= RANDOM_SUBSETS) {
        let mut sum = 0.0;
        for s in combinations(candidates, k) {
            sum += pool.accuracy(labels, &same_models_for_all_classes(&s, classes))?;
        }
        return Ok(RandomSelection { k, accuracy: sum / total as f64, subsets: total, exact: true, seed });
    }
    let mut rng = SplitMix64::new(seed);
    let mut subsets = Vec::with_capacity(labels.len() * k);
    for _ in labels {
        rng.subset_into(candidates, k, &mut subsets);
    }
    let preds = pool.predict_per_sample(&subsets, k, classes)?;
    let accuracy =
        if labels.is_empty() { f64::NAN } else { preds.iter().zip(labels).filter(|(p, l)| p == l).count() as f64 / labels.len() as f64 };
    Ok(RandomSelection { k, accuracy, subsets: labels.len(), exact: false, seed })
}

fn binomial(n: usize, k: usize) -> Option<usize> {
    let mut r: usize = 1;
    for i in 0..k {
        r = r.checked_mul(n - i)? / (i + 1);
    }
    Some(r)
}

fn combinations(items: &[usize], k: usize) -> Vec<Vec<usize>> {
    if k == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for (i, &first) in items.iter().enumerate() {
        for mut rest in combinations(&items[i + 1..], k - 1) {
            rest.insert(0, first);
            out.push(rest);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations_and_binomial_agree() {
        let items = [0, 1, 2, 3, 4];
        assert_eq!(combinations(&items, 3).len(), binomial(5, 3).unwrap());
        assert_eq!(combinations(&items, 2)[0], vec![0, 1]);
        assert_eq!(binomial(49, 3), Some(18424));
    }

    #[test]
    fn seeded_subsets_are_distinct_sorted_and_reproducible() {
        let items: Vec<usize> = (0..49).collect();
        let a: Vec<Vec<usize>> = {
            let mut r = SplitMix64::new(7);
            (0..5).map(|_| r.subset(&items, 3)).collect()
        };
        let b: Vec<Vec<usize>> = {
            let mut r = SplitMix64::new(7);
            (0..5).map(|_| r.subset(&items, 3)).collect()
        };
        assert_eq!(a, b);
        for s in &a {
            assert!(s.windows(2).all(|w| w[0] < w[1]), "{s:?}");
        }
        let c: Vec<Vec<usize>> = {
            let mut r = SplitMix64::new(8);
            (0..5).map(|_| r.subset(&items, 3)).collect()
        };
        assert_ne!(a, c);
    }
}
