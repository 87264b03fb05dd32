//! The probability arithmetic the worker and the coordinator must agree on
//! bit for bit: workers store each sample's entropy next to its probabilities
//! (so reuse never recomputes n × C logarithms per model), and the coordinator
//! computes the same value when an older artifact lacks it.

/// Probabilities are clamped to at least this before logs and products
/// (docs/method.md, "Reuse").
pub const PROB_FLOOR: f32 = 1e-12;

/// Shannon entropy (nats) of one probability row, each entry clamped ≥ 1e-12,
/// summed in f64 in row order.
pub fn entropy(row: impl IntoIterator<Item = f32>) -> f64 {
    row.into_iter()
        .map(|p| {
            let p = p.max(PROB_FLOOR) as f64;
            -p * p.ln()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_and_one_hot() {
        assert!((entropy([0.25f32; 4]) - 4f64.ln()).abs() < 1e-7);
        // One-hot: the clamped zeros contribute 1e-12·27.6 each, not NaN.
        let h = entropy([1.0f32, 0.0, 0.0]);
        assert!(h > 0.0 && h < 1e-10, "{h}");
    }
}
