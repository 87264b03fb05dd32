//! The `ancestors` construction: the sample classes plus every `@`/`@i`
//! hypernym ancestor up to `entity`.
//!
//! Images, all seeded (see `draw`):
//! - A sample node takes up to N of its own pool (its wnid's images pooled over
//!   the sample datasets). A sample node that is also an ancestor of other
//!   sample nodes keeps its own images (it is a real class).
//! - Any other node takes up to N from its descendant sample nodes' pools, split
//!   evenly: descendants are shuffled, then take one image each in turn
//!   (skipping exhausted ones) until N; so each gives ⌊N/d⌋ or ⌈N/d⌉ unless its
//!   pool is smaller, and with more than N descendants a seeded N of them give
//!   one each. An image can therefore appear under a sample node and under its
//!   ancestors; an entry's `node` is the node it is listed under.
//! - Nodes without images stay in the graph (a sample class folder may be empty).

use super::draw::{sample_prefix, stream};
use super::wordnet::{Synset, SynsetRef, WordNet};
use super::{class_synset, GraphError, NodeDraft, SampleClass};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The synsets of the classes and, breadth-first, of all their ancestors.
pub fn node_synsets(wn: &WordNet, classes: &BTreeMap<String, Vec<String>>) -> Result<BTreeMap<SynsetRef, Synset>, GraphError> {
    let mut synsets = BTreeMap::new();
    let mut queue = VecDeque::new();
    for (wnid, folders) in classes {
        let synset = class_synset(wn, wnid, folders)?;
        queue.extend(synset.hypernyms.iter().copied());
        synsets.insert(synset.reference(), synset);
    }
    while let Some(r) = queue.pop_front() {
        if synsets.contains_key(&r) {
            continue;
        }
        let synset = wn.synset(r)?;
        queue.extend(synset.hypernyms.iter().copied());
        synsets.insert(r, synset);
    }
    Ok(synsets)
}

/// Nodes sorted by synset, with their images.
pub fn build(wn: &WordNet, samples: &BTreeMap<String, SampleClass>, seed: u64, cap: usize) -> Result<Vec<NodeDraft>, GraphError> {
    let folders: BTreeMap<String, Vec<String>> = samples.iter().map(|(w, c)| (w.clone(), c.folders.clone())).collect();
    let synsets = node_synsets(wn, &folders)?;
    let refs: Vec<SynsetRef> = synsets.keys().copied().collect();
    let index: BTreeMap<SynsetRef, usize> = refs.iter().enumerate().map(|(i, &r)| (r, i)).collect();
    let ids: Vec<String> = synsets.values().map(Synset::id).collect();
    let parents: Vec<Vec<usize>> = synsets.values().map(|s| s.hypernyms.iter().map(|h| index[h]).collect()).collect();
    let pools: Vec<Option<&SampleClass>> = ids.iter().map(|w| samples.get(w)).collect();
    let n = refs.len();

    // Sample descendants of every node (each sample node walks up its ancestors).
    let mut descendants: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for (s, pool) in pools.iter().enumerate() {
        if pool.is_none() {
            continue;
        }
        let mut stack: Vec<usize> = parents[s].clone();
        let mut seen = BTreeSet::new();
        while let Some(a) = stack.pop() {
            if seen.insert(a) {
                descendants[a].insert(s);
                stack.extend(parents[a].iter().copied());
            }
        }
    }

    let mut drafts = Vec::with_capacity(n);
    for (i, synset) in synsets.into_values().enumerate() {
        let mut chosen = if let Some(class) = pools[i] {
            let mut rng = stream(seed, &["own", ids[i].as_str()]);
            sample_prefix(&mut rng, &class.images, cap)
        } else {
            let mut rng = stream(seed, &["split", ids[i].as_str()]);
            let desc: Vec<usize> = descendants[i].iter().copied().collect();
            let order = sample_prefix(&mut rng, &desc, desc.len());
            let sizes: Vec<usize> = order.iter().map(|&d| pools[d].map_or(0, |c| c.images.len())).collect();
            let mut quota = vec![0usize; order.len()];
            let mut left = cap.min(sizes.iter().sum());
            while left > 0 {
                for (q, &size) in quota.iter_mut().zip(&sizes) {
                    if left > 0 && *q < size {
                        *q += 1;
                        left -= 1;
                    }
                }
            }
            let mut chosen = Vec::new();
            for (&d, &q) in order.iter().zip(&quota) {
                if q > 0 {
                    let mut rng = stream(seed, &["from", ids[i].as_str(), ids[d].as_str()]);
                    chosen.extend(sample_prefix(&mut rng, &pools[d].expect("descendants are sample nodes").images, q));
                }
            }
            chosen
        };
        chosen.sort();
        chosen.dedup();
        drafts.push(NodeDraft { synset, images: chosen });
    }
    Ok(drafts)
}
