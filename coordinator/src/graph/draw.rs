//! Seeded draws for the graph builder: one ChaCha8 stream per purpose (seed and
//! names, hashed with SHA-256), so adding classes leaves other nodes' picks
//! alone, and bounded draws by our own rejection sampling, so rand upgrades
//! change no graph.

use rand::RngCore;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// A ChaCha8 stream for one purpose, independent of every other's.
pub fn stream(seed: u64, parts: &[&str]) -> ChaCha8Rng {
    let mut h = Sha256::new();
    h.update(b"mll-graph\0");
    h.update(seed.to_le_bytes());
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    ChaCha8Rng::from_seed(h.finalize().into())
}

/// Uniform in 0..n (n >= 1) by rejection, independent of rand's own algorithms.
pub fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    let n = n as u64;
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let x = rng.next_u64();
        if x < zone {
            return (x % n) as usize;
        }
    }
}

/// The first `k` positions of a Fisher–Yates shuffle of `items`: `k` of them
/// drawn without replacement (all of them, shuffled, when `k` ≥ their number).
pub fn sample_prefix<T: Clone>(rng: &mut ChaCha8Rng, items: &[T], k: usize) -> Vec<T> {
    let mut v = items.to_vec();
    let k = k.min(v.len());
    for i in 0..k {
        let j = i + below(rng, v.len() - i);
        v.swap(i, j);
    }
    v.truncate(k);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn bounded_draws_and_prefix_sampling_are_deterministic_and_in_range() {
        let items: Vec<u32> = (0..10).collect();
        let a = sample_prefix(&mut stream(0, &["x"]), &items, 4);
        let b = sample_prefix(&mut stream(0, &["x"]), &items, 4);
        let c = sample_prefix(&mut stream(1, &["x"]), &items, 4);
        assert_eq!(a, b);
        assert_ne!(a, c, "a different seed gives a different draw");
        assert_eq!(a.len(), 4);
        assert_eq!(a.iter().collect::<BTreeSet<_>>().len(), 4, "without replacement");
        assert_eq!(sample_prefix(&mut stream(0, &["x"]), &items, 50).len(), 10);
        let mut rng = stream(0, &["below"]);
        assert!((0..1000).all(|_| below(&mut rng, 3) < 3));
    }
}
