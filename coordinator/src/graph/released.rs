//! The `released` construction: what the released MLL code
//! (`MLL/evaluation_dataset_construct.py`, github LAMDASZ-ML/MLL) builds.
//!
//! Nodes:
//! - Senses: for each sample class, every synset NLTK's `wn.synsets(name)`
//!   returns for each of its synonyms. The released code reads the synonyms
//!   from its class-name files, which for ImageNet are torchvision's `classes`
//!   (the ILSVRC-2012 words, i.e. the synset's WordNet lemma names) joined by
//!   commas; we take the class synset's lemma names, which are the same words.
//!   `wn.synsets` without a part of speech returns nouns, verbs, adjectives and
//!   adverbs, after NLTK's morphological reduction (`WordNet::synsets_of`), so
//!   a class "crane" brings the verb "crane" too: we keep every part of speech,
//!   as the code does.
//! - Hyponyms: one level of `Synset.hyponyms()` (`~` pointers; instance
//!   hyponyms are not included) of the senses. The code's
//!   `get_all_hyper_hypo` means to iterate to a closure, but its helper reads
//!   the global list of sense synsets instead of its argument, so every round
//!   returns the same first level; its hypernym pass is computed and never
//!   used, so there is none here.
//! - A hyponym's parents are the senses it is a hyponym of.
//!
//! Images, all seeded (see `draw`):
//! 1. Per sample dataset and sense: the pool is the images of every class of
//!    that dataset the sense came from; up to `images_per_dataset` (25) of it.
//! 2. A sense holds up to `images_per_node` (75) of its datasets' draws.
//! 3. A hyponym with k parents takes ⌊75/k⌋ images from each parent (all of
//!    them when the parent has no more) out of the parent's images of steps
//!    1–2.
//! 4. A node that is both a sense and a hyponym holds both sets, and every
//!    node at most 75 (a seeded draw when more).
//! 5. Nodes without images are left out.
//!
//! Where the code's effect is an accident, we follow its intent, and say so:
//! - Step 2: the code's 75 cap walks the sense's own folder looking for
//!   sub-folders, finds none, and never removes a file; we cap every node at
//!   75 (docs/method.md, "Semantic graph"), so with five sample datasets a node
//!   of ours holds 75 where the code's held up to 125.
//! - Step 3: the code lists the parent's folder when it reaches the hyponym, so
//!   a parent that is itself a hyponym and was handled earlier (in file-system
//!   order) passes on what it received; we pass on the parent's own images.
//! - Step 4: the code copies without a cap; we cap, as for every node.
//! - The code copies files by base name, so two images with the same file
//!   name (ImageNet-R has an `art_0.jpg` in every class folder) overwrite each
//!   other; we key images by their path and lose none.
//! - Step 5: the code leaves such a folder empty, which torchvision's
//!   ImageFolder refuses to load; so none can have existed in its runs.
//! - Nodes are sorted by synset (part of speech, then offset) and every draw
//!   has its own seeded stream, where the code used Python's unseeded
//!   `random` over file-system order.

use super::draw::{sample_prefix, stream};
use super::wordnet::{Synset, SynsetRef, WordNet};
use super::{class_synset, GraphError, NodeDraft, SampleDataset};
use std::collections::{BTreeMap, BTreeSet};

/// The released node set of a list of classes, before images.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReleasedNodes {
    /// wnid → the senses of its synonyms.
    pub senses_of_class: BTreeMap<String, BTreeSet<SynsetRef>>,
    /// Every sense, read.
    pub senses: BTreeMap<SynsetRef, Synset>,
    /// Hyponym → the senses it is a hyponym of (ascending).
    pub parents: BTreeMap<SynsetRef, Vec<SynsetRef>>,
}

impl ReleasedNodes {
    /// All nodes: senses and hyponyms.
    pub fn all(&self) -> BTreeSet<SynsetRef> {
        self.senses.keys().chain(self.parents.keys()).copied().collect()
    }
}

/// Senses and one level of hyponyms of `classes` (wnid → folders, for errors).
pub fn node_set(wn: &WordNet, classes: &BTreeMap<String, Vec<String>>) -> Result<ReleasedNodes, GraphError> {
    let mut out = ReleasedNodes::default();
    for (wnid, folders) in classes {
        let class = class_synset(wn, wnid, folders)?;
        let senses: BTreeSet<SynsetRef> = class.lemmas.iter().flat_map(|l| wn.synsets_of(l)).collect();
        for &s in &senses {
            if let std::collections::btree_map::Entry::Vacant(e) = out.senses.entry(s) {
                e.insert(wn.synset(s)?);
            }
        }
        out.senses_of_class.insert(wnid.clone(), senses);
    }
    for (&s, synset) in &out.senses {
        for &h in &synset.hyponyms {
            out.parents.entry(h).or_default().push(s);
        }
    }
    Ok(out)
}

/// A stable name of a synset for the random streams (no file read needed).
fn key(r: SynsetRef) -> String {
    format!("{}{:08}", r.pos.file_suffix(), r.offset)
}

/// Nodes sorted by synset, with their images; and how many nodes were left
/// out for having none.
pub fn build(
    wn: &WordNet,
    datasets: &[SampleDataset],
    seed: u64,
    per_node: usize,
    per_dataset: usize,
) -> Result<(Vec<NodeDraft>, usize), GraphError> {
    let mut classes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in datasets {
        for wnid in d.classes.keys() {
            classes.entry(wnid.clone()).or_default().push(format!("{}/{wnid}", d.folder));
        }
    }
    let nodes = node_set(wn, &classes)?;

    // Steps 1–2: each sense's own images.
    let mut own: BTreeMap<SynsetRef, Vec<String>> = nodes.senses.keys().map(|&s| (s, Vec::new())).collect();
    for d in datasets {
        let mut pools: BTreeMap<SynsetRef, BTreeSet<&String>> = BTreeMap::new();
        for (wnid, images) in &d.classes {
            for &s in &nodes.senses_of_class[wnid] {
                pools.entry(s).or_default().extend(images);
            }
        }
        for (s, pool) in pools {
            let pool: Vec<String> = pool.into_iter().cloned().collect();
            let mut rng = stream(seed, &["released", "dataset", &d.key, &key(s)]);
            own.get_mut(&s).expect("pools are of senses").extend(sample_prefix(&mut rng, &pool, per_dataset));
        }
    }
    for (&s, images) in own.iter_mut() {
        images.sort();
        if images.len() > per_node {
            *images = sample_prefix(&mut stream(seed, &["released", "node", &key(s)]), images, per_node);
            images.sort();
        }
    }

    // Step 3: hyponyms' shares of their parents' own images.
    let mut inherited: BTreeMap<SynsetRef, Vec<String>> = BTreeMap::new();
    for (&h, parents) in &nodes.parents {
        let share = per_node / parents.len();
        let got = inherited.entry(h).or_default();
        for &p in parents {
            let files = &own[&p];
            if files.len() > share {
                got.extend(sample_prefix(&mut stream(seed, &["released", "hyponym", &key(h), &key(p)]), files, share));
            } else {
                got.extend(files.iter().cloned());
            }
        }
    }

    // Steps 4–5.
    let mut drafts = Vec::new();
    let mut dropped = 0;
    for r in nodes.all() {
        let mut images: Vec<String> = own.get(&r).into_iter().chain(inherited.get(&r)).flatten().cloned().collect();
        images.sort();
        images.dedup();
        if images.len() > per_node {
            images = sample_prefix(&mut stream(seed, &["released", "total", &key(r)]), &images, per_node);
            images.sort();
        }
        if images.is_empty() {
            dropped += 1;
            continue;
        }
        let synset = match nodes.senses.get(&r) {
            Some(s) => s.clone(),
            None => wn.synset(r)?,
        };
        drafts.push(NodeDraft { synset, images });
    }
    Ok((drafts, dropped))
}
