//! Accuracy helpers, R5/τ5 by hand, and Kendall tau-b / weighted tau against
//! scipy.stats (the project venv's python; `$MLL_VENV/bin/python`, else `python3`).

use mll_method::{gt_ranking, kendall_tau_b, ranking_metrics, recall_at_5, tau_at_5, weighted_tau, Accuracy};
use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn accuracy_from_counts() {
    let a = Accuracy::from_counts(&[2, 0, 3], &[1, 0, 3], &[2, 0, 3]);
    assert_eq!(a.top1, 0.8);
    assert!(a.top5.is_nan(), "fewer than 5 classes: top-5 is undefined");
    assert_eq!(a.mean_per_class_recall, 0.75, "the empty class is left out");
    let a = Accuracy::from_counts(&[1, 1, 1, 1, 4], &[0, 1, 1, 0, 2], &[1, 1, 1, 1, 3]);
    assert_eq!(a.top1, 0.5);
    assert_eq!(a.top5, 7.0 / 8.0);
    assert_eq!(a.mean_per_class_recall, (0.0 + 1.0 + 1.0 + 0.0 + 0.5) / 5.0);
    assert!(Accuracy::from_counts(&[0; 6], &[0; 6], &[0; 6]).top1.is_nan());
}

#[test]
fn gt_ranking_breaks_ties_by_hub_order() {
    assert_eq!(gt_ranking(&[0.5, 0.7, 0.5, f64::NAN, 0.7]), vec![1, 4, 0, 2, 3]);
}

#[test]
fn r5_and_tau5_by_hand() {
    let truth: Vec<usize> = (0..8).collect();
    assert_eq!(recall_at_5(&truth, &truth), 1.0);
    // scipy divides by two square roots, so a perfect tau can be 1 - 1 ulp; so do we.
    assert!((tau_at_5(&truth, &truth) - 1.0).abs() < 1e-12);
    let reversed = vec![4, 3, 2, 1, 0, 5, 6, 7];
    assert_eq!(recall_at_5(&truth, &reversed), 1.0);
    assert!((tau_at_5(&truth, &reversed) + 1.0).abs() < 1e-12);
    // Intersection {0, 2, 4}: true positions 0, 2, 4; predicted positions 2, 4, 0 →
    // (0,2) concordant, (0,4) and (2,4) discordant: τ = (1 − 2) / 3.
    let pred = vec![4, 5, 0, 6, 2, 1, 3, 7];
    assert_eq!(recall_at_5(&truth, &pred), 0.6);
    assert!((tau_at_5(&truth, &pred) + 1.0 / 3.0).abs() < 1e-12);
    // Two common models: τ5 is 0 by definition.
    let pred = vec![0, 1, 5, 6, 7, 2, 3, 4];
    assert_eq!(recall_at_5(&truth, &pred), 0.4);
    assert_eq!(tau_at_5(&truth, &pred), 0.0);
    // Fewer than 5 models: the denominator is the hub size.
    assert_eq!(recall_at_5(&[0, 1, 2], &[2, 1, 0]), 1.0);
    let m = ranking_metrics(&[0.9, 0.8, 0.7, 0.6, 0.5, 0.4], &[6.0, 5.0, 4.0, 3.0, 2.0, 1.0]);
    assert_eq!(m.r5, 1.0);
    assert!((m.tau5 - 1.0).abs() < 1e-12 && (m.kendall_tau_b - 1.0).abs() < 1e-12);
    assert!((m.weighted_tau - 1.0).abs() < 1e-12);
}

#[test]
fn kendall_edge_cases() {
    assert!(kendall_tau_b(&[1.0], &[2.0]).is_nan());
    assert!(kendall_tau_b(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_nan());
    assert!(kendall_tau_b(&[1.0, f64::NAN], &[1.0, 2.0]).is_nan());
    assert!(weighted_tau(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_nan());
}

/// Deterministic pseudo-random values (no dependency on a RNG crate's stream).
fn lcg(seed: u64, n: usize, levels: Option<u64>) -> Vec<f64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            match levels {
                Some(l) => (u * l as f64).floor(),
                None => u,
            }
        })
        .collect()
}

fn python() -> String {
    match std::env::var("MLL_VENV") {
        Ok(v) if !v.is_empty() => format!("{v}/bin/python"),
        _ => "python3".to_string(),
    }
}

/// scipy's (kendalltau, weightedtau) for each case, or None (with the reason
/// printed) when scipy cannot be imported.
fn scipy_reference(cases: &[(Vec<f64>, Vec<f64>)]) -> Option<Vec<(f64, f64)>> {
    let py = python();
    let script = r#"
import json, sys, math
try:
    from scipy import stats
except Exception as e:
    print("NO_SCIPY", e); sys.exit(0)
out = []
for x, y in json.load(sys.stdin):
    k = stats.kendalltau(x, y).statistic
    w = stats.weightedtau(x, y).statistic
    out.append([None if math.isnan(k) else float(k), None if math.isnan(w) else float(w)])
print(json.dumps(out))
"#;
    let mut child = match Command::new(&py).arg("-c").arg(script).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn() {
        Ok(c) => c,
        Err(e) => panic!("cannot start {py}: {e}; run `bash scripts/setup` and `source scripts/env.sh` (MLL_VENV)"),
    };
    let payload: Vec<(Vec<f64>, Vec<f64>)> = cases.to_vec();
    child.stdin.take().unwrap().write_all(serde_json::to_string(&payload).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{py} failed: {}", String::from_utf8_lossy(&out.stderr));
    if let Some(reason) = text.strip_prefix("NO_SCIPY") {
        panic!("{py} cannot import scipy:{reason}; run `bash scripts/setup` (scipy is pinned in scripts/requirements.txt)");
    }
    let v: Vec<(Option<f64>, Option<f64>)> = serde_json::from_str(text.trim()).expect("scipy output is JSON");
    Some(v.into_iter().map(|(k, w)| (k.unwrap_or(f64::NAN), w.unwrap_or(f64::NAN))).collect())
}

fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || (a - b).abs() < 1e-12
}

#[test]
fn kendall_and_weighted_tau_match_scipy() {
    let mut cases: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    for seed in 0..6 {
        // Continuous, then heavy ties (4 levels), then ties on one side only, at hub size.
        cases.push((lcg(seed, 49, None), lcg(seed + 100, 49, None)));
        cases.push((lcg(seed + 200, 49, Some(4)), lcg(seed + 300, 49, Some(4))));
        cases.push((lcg(seed + 400, 49, Some(6)), lcg(seed + 500, 49, None)));
        // Small and odd sizes exercise the merge sort's edges.
        cases.push((lcg(seed + 600, 2 + seed as usize, Some(3)), lcg(seed + 700, 2 + seed as usize, Some(3))));
    }
    // Correlated: y = x + noise, with joint ties.
    let x = lcg(9, 49, Some(10));
    let y: Vec<f64> = x.iter().zip(lcg(10, 49, Some(3))).map(|(a, b)| a + b).collect();
    cases.push((x, y));
    // Identical and reversed, a constant side, scipy's documented example.
    let x = lcg(11, 20, None);
    cases.push((x.clone(), x.clone()));
    cases.push((x.clone(), x.iter().map(|v| -v).collect()));
    cases.push((vec![1.0; 5], lcg(12, 5, None)));
    cases.push((vec![12.0, 2.0, 1.0, 12.0, 2.0], vec![1.0, 4.0, 7.0, 1.0, 0.0]));
    let Some(reference) = scipy_reference(&cases) else {
        return;
    };
    assert_eq!(reference.len(), cases.len());
    for (i, ((x, y), (k, w))) in cases.iter().zip(&reference).enumerate() {
        let (mk, mw) = (kendall_tau_b(x, y), weighted_tau(x, y));
        assert!(same(mk, *k), "case {i}: kendall tau-b {mk} vs scipy {k}; x={x:?} y={y:?}");
        assert!(same(mw, *w), "case {i}: weighted tau {mw} vs scipy {w}; x={x:?} y={y:?}");
    }
    // scipy's docstring value, as a check that the comparison itself is live.
    assert!((reference.last().unwrap().1 - -0.566_949_681_536_827_2).abs() < 1e-12);
}
