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
//! Images, all seeded (see `draw`), by the released code's rule
//! (`evaluation_dataset_construct.py:61–81`; [`GraphSampling::Released`], the default):
//! 1. Per sample dataset and sense: the pool is the images of every class of
//!    that dataset the sense came from; up to `images_per_dataset` (25) of it.
//!    A sense holds every dataset's draw: up to 125 with five sample datasets
//!    (the code's 75 cap walks the sense's folder for sub-folders, finds none
//!    and removes nothing).
//! 2. Hyponyms are reached one after another; a hyponym with k parents takes
//!    ⌊75/k⌋ images from each parent (all of them when the parent has no more)
//!    out of the parent's images as they stand then: a parent that is itself a
//!    hyponym reached earlier passes on what it received too.
//! 3. A node that is both a sense and a hyponym holds both sets, uncapped (the
//!    code copies without a cap).
//! 4. Nodes without images are left out.
//!
//! [`GraphSampling::Capped`] (`graph build --sampling capped`) follows the
//! paper's "75 per node" instead: a sense holds at most `images_per_node` of
//! its datasets' draws, a hyponym draws from its parents' own images only, and
//! every node holds at most `images_per_node` (a seeded draw when more).
//!
//! Where the code's effect is an accident of its environment, we make it
//! reproducible, and say so:
//! - Order: the code reaches hyponyms (and lists folders) in file-system
//!   order with Python's unseeded `random`; we reach hyponyms in synset order
//!   (part of speech, then offset) and give every draw its own seeded stream.
//! - The code copies files by base name, so two images with the same file
//!   name (ImageNet-R has an `art_0.jpg` in every class folder) overwrite each
//!   other; we key images by their path and lose none.
//! - Step 4: the code leaves such a folder empty, which torchvision's
//!   ImageFolder refuses to load; so none can have existed in its runs.

use super::draw::{sample_prefix, stream};
use super::wordnet::{Synset, SynsetRef, WordNet};
use super::{class_synset, GraphError, GraphSampling, NodeDraft, SampleDataset};
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
    sampling: GraphSampling,
) -> Result<(Vec<NodeDraft>, usize), GraphError> {
    let capped = sampling == GraphSampling::Capped;
    let mut classes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in datasets {
        for wnid in d.classes.keys() {
            classes.entry(wnid.clone()).or_default().push(format!("{}/{wnid}", d.folder));
        }
    }
    let nodes = node_set(wn, &classes)?;

    // Each sense's own images.
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
        if capped && images.len() > per_node {
            *images = sample_prefix(&mut stream(seed, &["released", "node", &key(s)]), images, per_node);
            images.sort();
        }
    }

    // Hyponyms' shares of their parents' images, in synset order: the
    // parent's own images (capped), or all it holds when reached (released).
    let mut inherited: BTreeMap<SynsetRef, Vec<String>> = BTreeMap::new();
    for (&h, parents) in &nodes.parents {
        let share = per_node / parents.len();
        let mut got = Vec::new();
        for &p in parents {
            let files: Vec<String> = match (capped, inherited.get(&p)) {
                (false, Some(more)) => {
                    let mut all: Vec<String> = own[&p].iter().chain(more).cloned().collect();
                    all.sort();
                    all.dedup();
                    all
                }
                _ => own[&p].clone(),
            };
            if files.len() > share {
                got.extend(sample_prefix(&mut stream(seed, &["released", "hyponym", &key(h), &key(p)]), &files, share));
            } else {
                got.extend(files);
            }
        }
        got.sort();
        got.dedup();
        inherited.insert(h, got);
    }

    // Totals; nodes without images left out.
    let mut drafts = Vec::new();
    let mut dropped = 0;
    for r in nodes.all() {
        let mut images: Vec<String> = own.get(&r).into_iter().chain(inherited.get(&r)).flatten().cloned().collect();
        images.sort();
        images.dedup();
        if capped && images.len() > per_node {
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
