//! Reuse ensemble (docs/method.md, "Reuse") and the baselines built on it.

use mll_method::options::EnsembleWeight;
use mll_method::{
    ensemble_accuracy, ensemble_predict, entropy, hub_average, inb_models, oracle, random_selection, same_models_for_all_classes, ReusePool,
};
use ndarray::{arr2, Array2};

/// Model A picks class 0 for F_0, model B class 1 for F_1.
///   A: x0 [0.9,0.1] H=0.325083  x1 [0.4,0.6] H=0.673012  x2 [0.5,0.5] H=0.693147
///   B: x0 [0.2,0.8] H=0.500402  x1 [0.7,0.3] H=0.610864  x2 [0.1,0.9] H=0.325083
/// Entropy weights, q0 = H_A·P_A(0) vs q1 = H_B·P_B(1):
///   x0 0.292575 vs 0.400322 → 1; x1 0.269205 vs 0.183259 → 0; x2 0.346574 vs 0.292575 → 0
/// Inverse-entropy weights, q0 = P_A(0)/H_A vs q1 = P_B(1)/H_B:
///   x0 2.768523 vs 1.598714 → 0; x1 0.594343 vs 0.491108 → 0; x2 0.721348 vs 2.768523 → 1
fn two_models() -> (Array2<f32>, Array2<f32>) {
    (arr2(&[[0.9f32, 0.1], [0.4, 0.6], [0.5, 0.5]]), arr2(&[[0.2f32, 0.8], [0.7, 0.3], [0.1, 0.9]]))
}

#[test]
fn entropy_by_hand() {
    assert!((entropy([0.5f32, 0.5]) - std::f64::consts::LN_2).abs() < 1e-9);
    assert!((entropy([0.9f32, 0.1]) - 0.325_082_973).abs() < 1e-7);
    // Zeros are clamped to 1e-12 instead of giving NaN.
    let h = entropy([1.0f32, 0.0]);
    assert!(h > 0.0 && h < 1e-9, "{h}");
}

#[test]
fn both_entropy_weightings_by_hand() {
    let (a, b) = two_models();
    let probs = [Some(a.view()), Some(b.view())];
    let f = vec![vec![0], vec![1]];
    assert_eq!(ensemble_predict(&probs, &f, EnsembleWeight::Entropy).unwrap(), vec![1, 0, 0]);
    assert_eq!(ensemble_predict(&probs, &f, EnsembleWeight::InverseEntropy).unwrap(), vec![0, 0, 1]);
    let acc = ensemble_accuracy(&probs, &[1, 0, 0], &f, EnsembleWeight::Entropy).unwrap();
    assert_eq!(acc, 1.0);
    // Both models for both classes: q_y = H_A P_A(y) + H_B P_B(y).
    // x0: 0.3926 vs 0.4328 → 1; x1: 0.6968 vs 0.5871 → 0; x2: 0.3791 vs 0.6391 → 1
    let both = same_models_for_all_classes(&[0, 1], 2);
    assert_eq!(ensemble_predict(&probs, &both, EnsembleWeight::Entropy).unwrap(), vec![1, 0, 1]);
}

#[test]
fn k1_single_model_is_plain_argmax() {
    // Seeded pseudo-random probability rows over 7 classes, including a row of zeros and exact ties.
    let (n, c) = (300, 7);
    let mut s: u64 = 42;
    let mut p = Array2::<f32>::zeros((n, c));
    for i in 0..n {
        let mut row: Vec<f32> = (0..c)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32).powi(3)
            })
            .collect();
        if i == 5 {
            row = vec![0.0; c];
        }
        if i == 6 {
            row = vec![0.3, 0.3, 0.1, 0.1, 0.1, 0.05, 0.05];
        }
        let sum: f32 = row.iter().sum::<f32>().max(1e-30);
        for (j, v) in row.iter().enumerate() {
            p[[i, j]] = v / sum;
        }
    }
    let argmax: Vec<usize> = p
        .rows()
        .into_iter()
        .map(|r| {
            let mut best = 0;
            for j in 1..c {
                if r[j] > r[best] {
                    best = j;
                }
            }
            best
        })
        .collect();
    let other = Array2::<f32>::from_elem((n, c), 1.0 / c as f32);
    let probs = [Some(other.view()), Some(p.view())];
    for w in [EnsembleWeight::Entropy, EnsembleWeight::InverseEntropy] {
        let preds = ensemble_predict(&probs, &same_models_for_all_classes(&[1], c), w).unwrap();
        assert_eq!(preds, argmax, "{w:?}");
    }
}

#[test]
fn missing_probabilities_and_shapes_are_errors() {
    let (a, _) = two_models();
    let probs = [Some(a.view()), None];
    let err = ensemble_predict(&probs, &[vec![0], vec![1]], EnsembleWeight::Entropy).unwrap_err().to_string();
    assert!(err.contains("model 1") && err.contains("keep_probabilities"), "{err}");
    let wide = Array2::<f32>::zeros((3, 3));
    assert!(ReusePool::new(vec![Some(a.view()), Some(wide.view())], EnsembleWeight::Entropy).is_err());
    let err = ensemble_predict(&[Some(a.view())], &[vec![0], vec![0], vec![0]], EnsembleWeight::Entropy).unwrap_err();
    assert!(err.to_string().contains("classes"), "{err}");
}

#[test]
fn baselines() {
    let imagenet = [Some(0.6), Some(0.8), None, Some(0.8), Some(0.7)];
    assert_eq!(inb_models(&imagenet, 1), Some(vec![1]));
    assert_eq!(inb_models(&imagenet, 3), Some(vec![1, 3, 4]));
    assert_eq!(inb_models(&imagenet, 9), Some(vec![1, 3, 4, 0]));
    assert_eq!(inb_models(&[None, None], 1), None);
    assert_eq!(oracle(&[0.2, f64::NAN, 0.5, 0.5]), Some((2, 0.5)));
    assert_eq!(oracle(&[f64::NAN]), None);
    assert!((hub_average(&[0.2, f64::NAN, 0.5, 0.5]) - 0.4).abs() < 1e-12);
}

#[test]
fn random_selection_is_exact_for_few_subsets_and_seeded_otherwise() {
    let (a, b) = two_models();
    let c = arr2(&[[0.6f32, 0.4], [0.6, 0.4], [0.2, 0.8]]);
    let labels = [1, 0, 1];
    let pool = ReusePool::new(vec![Some(a.view()), Some(b.view()), Some(c.view())], EnsembleWeight::Entropy).unwrap();
    // 3 models, k = 2: the 3 pairs are enumerated; the mean of their accuracies.
    let r = random_selection(&pool, &labels, 2, &[0, 1, 2], 2, 0).unwrap();
    assert!(r.exact && r.subsets == 3);
    let pairs = [[0, 1], [0, 2], [1, 2]];
    let want: f64 = pairs.iter().map(|p| pool.accuracy(&labels, &same_models_for_all_classes(p, 2)).unwrap()).sum::<f64>() / 3.0;
    assert!((r.accuracy - want).abs() < 1e-12);
    // 10 models, k = 3: 120 subsets > 32, so one seeded subset per sample; same seed, same number.
    let views: Vec<_> = (0..10).map(|i| Some([a.view(), b.view(), c.view()][i % 3])).collect();
    let pool = ReusePool::new(views, EnsembleWeight::Entropy).unwrap();
    let all: Vec<usize> = (0..10).collect();
    let r1 = random_selection(&pool, &labels, 2, &all, 3, 7).unwrap();
    let r2 = random_selection(&pool, &labels, 2, &all, 3, 7).unwrap();
    assert!(!r1.exact && r1.subsets == 3, "{r1:?}");
    assert_eq!(r1, r2);
}

#[test]
fn per_sample_random_subsets_estimate_the_exact_expectation() {
    // 8 distinct models on 600 samples of 4 classes; C(8, 3) = 56 > 32 subsets.
    // The exact expectation (mean over all 56 subsets) is computed here by brute
    // force; the per-sample estimate must agree within its sampling error
    // (sd ≈ sqrt(0.25 / 600) ≈ 0.02), and different seeds must differ.
    let (n, c, m) = (600, 4, 8);
    let mut state = 1u64;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) as f32) / (1u64 << 31) as f32
    };
    let labels: Vec<usize> = (0..n).map(|i| i % c).collect();
    let mats: Vec<Array2<f32>> = (0..m)
        .map(|model| {
            let mut p = Array2::from_shape_fn((n, c), |(i, y)| {
                let skill = if (i + model) % 3 == 0 { 2.5 } else { 0.3 };
                (next() + if y == labels[i] { skill * next() } else { 0.0 }).exp()
            });
            for mut r in p.rows_mut() {
                let s = r.sum();
                r.mapv_inplace(|x| x / s);
            }
            p
        })
        .collect();
    let pool = ReusePool::new(mats.iter().map(|p| Some(p.view())).collect(), EnsembleWeight::Entropy).unwrap();
    let all: Vec<usize> = (0..m).collect();
    let mut exact = 0.0;
    let mut count = 0;
    for a in 0..m {
        for b in a + 1..m {
            for d in b + 1..m {
                exact += pool.accuracy(&labels, &same_models_for_all_classes(&[a, b, d], c)).unwrap();
                count += 1;
            }
        }
    }
    exact /= count as f64;
    let r = random_selection(&pool, &labels, c, &all, 3, 11).unwrap();
    assert!(!r.exact && r.subsets == n);
    assert!((r.accuracy - exact).abs() < 0.06, "estimate {} vs exact {exact}", r.accuracy);
    let other = random_selection(&pool, &labels, c, &all, 3, 12).unwrap();
    assert_ne!(r.accuracy, other.accuracy, "the seed must drive the draws");
}
