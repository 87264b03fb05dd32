//! Accuracy from per-class counts, ground-truth rankings and ranking metrics
//! (docs/method.md, "Metrics and baselines"): R5, τ5, Kendall tau-b and
//! scipy's weighted tau.

use super::order_desc;
use serde::{Deserialize, Serialize};

/// One model's accuracies on one dataset. NaN means "not defined" (top-5 with
/// fewer than 5 classes, anything with no samples, values a truth table lacks).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    pub top1: f64,
    pub top5: f64,
    pub mean_per_class_recall: f64,
}

impl Accuracy {
    /// Only a published top-1 is known.
    pub fn top1_only(top1: f64) -> Self {
        Accuracy { top1, top5: f64::NAN, mean_per_class_recall: f64::NAN }
    }

    /// From per-class counts: samples of each class, of which top-1 right,
    /// of which the true class was among the top 5.
    pub fn from_counts(n: &[u64], top1: &[u64], top5: &[u64]) -> Self {
        // Saturating: never a panic on counts that slipped past the checks.
        let sum = |v: &[u64]| v.iter().fold(0u64, |a, b| a.saturating_add(*b));
        let total: u64 = sum(n);
        let frac = |k: u64| {
            if total == 0 {
                f64::NAN
            } else {
                k as f64 / total as f64
            }
        };
        let top1_all = frac(sum(top1));
        let top5 = if n.len() < 5 { f64::NAN } else { frac(sum(top5)) };
        // Classes without samples have no recall; they are left out of the mean.
        let recalls: Vec<f64> = n.iter().zip(top1).filter(|(&n, _)| n > 0).map(|(&n, &t)| t as f64 / n as f64).collect();
        let mean_per_class_recall = if recalls.is_empty() { f64::NAN } else { recalls.iter().sum::<f64>() / recalls.len() as f64 };
        Accuracy { top1: top1_all, top5, mean_per_class_recall }
    }
}

/// Model indexes by a score, best first, ties in hub order (NaN last).
pub fn rank_by_score(scores: &[f64]) -> Vec<usize> {
    order_desc(scores)
}

/// Ground-truth ranking: models by top-1 accuracy, ties in hub order.
pub fn gt_ranking(top1: &[f64]) -> Vec<usize> {
    order_desc(top1)
}

/// |top5(true) ∩ top5(pred)| / 5; with fewer than 5 models the denominator is
/// the number of models.
pub fn recall_at_5(true_ranking: &[usize], pred_ranking: &[usize]) -> f64 {
    let k = 5.min(true_ranking.len()).min(pred_ranking.len());
    if k == 0 {
        return f64::NAN;
    }
    let hits = true_ranking[..k].iter().filter(|m| pred_ranking[..k].contains(m)).count();
    hits as f64 / k as f64
}

/// τ5: Kendall tau-b between the true and predicted rank positions of the
/// models in top5(true) ∩ top5(pred); 0 when that has ≤ 2 models.
pub fn tau_at_5(true_ranking: &[usize], pred_ranking: &[usize]) -> f64 {
    let k = 5.min(true_ranking.len()).min(pred_ranking.len());
    let common: Vec<usize> = true_ranking[..k].iter().copied().filter(|m| pred_ranking[..k].contains(m)).collect();
    if common.len() <= 2 {
        return 0.0;
    }
    let pos = |ranking: &[usize], m: usize| ranking.iter().position(|&x| x == m).expect("model is ranked") as f64;
    let t: Vec<f64> = common.iter().map(|&m| pos(true_ranking, m)).collect();
    let p: Vec<f64> = common.iter().map(|&m| pos(pred_ranking, m)).collect();
    kendall_tau_b(&t, &p)
}

/// Kendall's tau-b as scipy.stats.kendalltau(x, y) (variant 'b'): NaN when
/// fewer than 2 values, a NaN input, or either side constant.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "kendall_tau_b needs paired values");
    let n = x.len();
    if n < 2 || x.iter().chain(y).any(|v| v.is_nan()) {
        return f64::NAN;
    }
    // O(n²) is fine for a hub of ~50 models and exact in integer arithmetic.
    let (mut concordant_minus_discordant, mut xtie, mut ytie) = (0i64, 0i64, 0i64);
    for i in 0..n {
        for j in i + 1..n {
            let dx = x[i].partial_cmp(&x[j]).expect("no NaN") as i64;
            let dy = y[i].partial_cmp(&y[j]).expect("no NaN") as i64;
            if dx == 0 {
                xtie += 1;
            }
            if dy == 0 {
                ytie += 1;
            }
            concordant_minus_discordant += dx * dy;
        }
    }
    let tot = (n * (n - 1) / 2) as i64;
    if xtie == tot || ytie == tot {
        return f64::NAN;
    }
    let tau = concordant_minus_discordant as f64 / ((tot - xtie) as f64).sqrt() / ((tot - ytie) as f64).sqrt();
    tau.clamp(-1.0, 1.0)
}

/// scipy.stats.weightedtau(x, y) with its defaults: rank=True, hyperbolic weigher
/// 1/(r+1), additive; i.e. the mean of the ranked weighted tau with ranks from
/// (x, y) and from (y, x). NaNs count as the smallest value, as in scipy.
pub fn weighted_tau(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "weighted_tau needs paired values");
    if x.len() < 2 {
        return f64::NAN;
    }
    let clean = |v: &[f64]| v.iter().map(|&a| if a.is_nan() { f64::NEG_INFINITY } else { a }).collect::<Vec<_>>();
    let (x, y) = (clean(x), clean(y));
    (weighted_ranked_tau(&x, &y) + weighted_ranked_tau(&y, &x)) / 2.0
}

fn weigher(rank: usize) -> f64 {
    1.0 / (rank as f64 + 1.0)
}

/// Port of scipy/stats/_stats.pyx `_weightedrankedtau` with rank=None, the
/// default weigher and additive=True (scipy 1.17): the same lexsort, the same
/// merge sort counting weighted exchanges, the same tie handling.
fn weighted_ranked_tau(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len();
    // np.lexsort((y, x)): by x, then y, then original index (stable).
    let mut perm: Vec<usize> = (0..n).collect();
    perm.sort_by(|&a, &b| x[a].partial_cmp(&x[b]).unwrap().then(y[a].partial_cmp(&y[b]).unwrap()));
    // rank: the last element of the ascending order gets rank 0.
    let mut rank = vec![0usize; n];
    for (i, &p) in perm.iter().enumerate() {
        rank[p] = n - 1 - i;
    }
    let w = |i: usize| weigher(rank[i]);

    // Weighted ties: joint (t), in x (u).
    let tie_weight = |same: &dyn Fn(usize, usize) -> bool, perm: &[usize]| -> (f64, usize) {
        let (mut first, mut acc) = (0usize, 0.0f64);
        let mut s = w(perm[0]);
        for i in 1..n {
            if !same(perm[first], perm[i]) {
                acc += s * (i - first - 1) as f64;
                first = i;
                s = 0.0;
            }
            s += w(perm[i]);
        }
        acc += s * (n - first - 1) as f64;
        (acc, first)
    };
    let (t, _) = tie_weight(&|a, b| x[a] == x[b] && y[a] == y[b], &perm);
    let (u, first) = tie_weight(&|a, b| x[a] == x[b], &perm);
    if first == 0 {
        return f64::NAN; // x constant
    }

    let mut exchanges = 0.0f64;
    let mut temp = vec![0usize; n];
    weigh(0, n, &mut perm, &mut temp, y, &w, &mut exchanges);

    let (v, first) = tie_weight(&|a, b| y[a] == y[b], &perm);
    if first == 0 {
        return f64::NAN; // y constant
    }
    let s: f64 = perm.iter().map(|&i| w(i)).sum();
    let tot = s * (n - 1) as f64;
    let tau = ((tot - (v + u - t)) - 2.0 * exchanges) / (tot - u).sqrt() / (tot - v).sqrt();
    tau.clamp(-1.0, 1.0)
}

/// The recursive merge sort of `_weightedrankedtau`'s `weigh` closure: sorts
/// perm[offset..offset+length] by y and adds the weight of every exchange.
fn weigh(
    offset: usize,
    length: usize,
    perm: &mut [usize],
    temp: &mut [usize],
    y: &[f64],
    w: &dyn Fn(usize) -> f64,
    exchanges: &mut f64,
) -> f64 {
    if length == 1 {
        return w(perm[offset]);
    }
    let length0 = length / 2;
    let length1 = length - length0;
    let middle = offset + length0;
    let mut residual = weigh(offset, length0, perm, temp, y, w, exchanges);
    let weight = weigh(middle, length1, perm, temp, y, w, exchanges) + residual;
    if y[perm[middle - 1]] < y[perm[middle]] {
        return weight;
    }
    let (mut i, mut j, mut k) = (0usize, 0usize, 0usize);
    while j < length0 && k < length1 {
        if y[perm[offset + j]] <= y[perm[middle + k]] {
            temp[i] = perm[offset + j];
            residual -= w(temp[i]);
            j += 1;
        } else {
            temp[i] = perm[middle + k];
            *exchanges += w(temp[i]) * (length0 - j) as f64 + residual;
            k += 1;
        }
        i += 1;
    }
    // perm[offset+i .. offset+i+length0-j] = perm[offset+j .. offset+length0]
    perm.copy_within(offset + j..offset + length0, offset + i);
    perm[offset..offset + i].copy_from_slice(&temp[..i]);
    weight
}

/// The four ranking-quality numbers of one predicted ranking on one dataset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RankingMetrics {
    pub r5: f64,
    pub tau5: f64,
    pub kendall_tau_b: f64,
    pub weighted_tau: f64,
}

/// Compares predicted scores with true accuracies over the same models (both
/// higher = better). R5 and τ5 use the rankings (ties in hub order); Kendall tau-b
/// and weighted tau use the values themselves, so ties count as ties.
pub fn ranking_metrics(true_acc: &[f64], pred_scores: &[f64]) -> RankingMetrics {
    let t = order_desc(true_acc);
    let p = order_desc(pred_scores);
    RankingMetrics {
        r5: recall_at_5(&t, &p),
        tau5: tau_at_5(&t, &p),
        kendall_tau_b: kendall_tau_b(true_acc, pred_scores),
        weighted_tau: weighted_tau(true_acc, pred_scores),
    }
}
