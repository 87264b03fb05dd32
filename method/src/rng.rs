//! The project's one seeded random stream.

/// SplitMix64: a tiny generator whose stream is fixed by its definition, so
/// seeded draws (the random baseline's subsets, the benchmarks' and tests'
/// synthetic data) never change with a dependency upgrade.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (multiply-shift; the bias is below 2^-32 for hub sizes).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// A uniform k-subset, returned in hub order.
    #[cfg(test)]
    pub(crate) fn subset(&mut self, items: &[usize], k: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(k);
        self.subset_into(items, k, &mut out);
        out
    }

    /// [`Self::subset`] appended to `out`, using Floyd's algorithm: k draws,
    /// no copy of `items` (the random baseline draws one subset per sample).
    pub(crate) fn subset_into(&mut self, items: &[usize], k: usize, out: &mut Vec<usize>) {
        let n = items.len();
        let start = out.len();
        for j in n - k..n {
            let t = self.below(j + 1);
            let pick = if out[start..].contains(&t) { j } else { t };
            out.push(pick);
        }
        out[start..].sort_unstable();
        for x in &mut out[start..] {
            *x = items[*x];
        }
    }
}
