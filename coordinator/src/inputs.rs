//! Inputs checked at submit, before any job is published: a plan whose model
//! folders are missing, or whose prepared datasets no longer match the
//! manifest `scripts/prepare-data` wrote, fails here with the model or dataset
//! named (exit 2), instead of as dead letters an hour into the run.
//!
//! - every hub model's artifact folder holds `module.pt` and `model.json`
//!   (and the embedder's folder exists);
//! - every dataset listed in `<data root>/manifest.json` (matched by path) has
//!   the listing hash recorded there: sha256 over `relative path NUL size LF`
//!   of its files in sorted order (cheap: names and sizes, no content read);
//! - a dataset taken from the catalog (`catalog = "NAME"`) must be in that
//!   manifest, i.e. prepared and verified by `scripts/prepare-data`.

use crate::plan::Plan;
use crate::spec::BenchmarkSpec;
use mll_common::ids::sha256_hex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The manifest `scripts/prepare-data` writes at the data root.
pub const MANIFEST: &str = "manifest.json";

#[derive(Debug, thiserror::Error)]
pub enum InputCheckError {
    #[error("inputs: model '{key}': {reason}")]
    Model { key: String, reason: String },
    #[error("inputs: embedder {path}: {reason}")]
    Embedder { path: PathBuf, reason: String },
    #[error("inputs: dataset '{name}': {reason}")]
    Dataset { name: String, reason: String },
    #[error("inputs: {path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
}

#[derive(Debug, Deserialize)]
struct Manifest {
    datasets: BTreeMap<String, ManifestEntry>,
}

#[derive(Debug, Deserialize)]
struct ManifestEntry {
    path: String,
    listing_sha256: String,
}

/// sha256 of `relative/path NUL size LF` over the folder's files, sorted by
/// path (as `scripts/data/prepare.py`'s `listing_sha256`).
pub fn listing_sha256(root: &Path) -> std::io::Result<String> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let ty = entry.file_type()?;
            if ty.is_dir() {
                stack.push(entry.path());
            } else if ty.is_file() {
                let rel = entry.path().strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
                files.push((rel, entry.metadata()?.len()));
            }
        }
    }
    files.sort();
    let mut text = String::new();
    for (rel, size) in files {
        text.push_str(&format!("{rel}\0{size}\n"));
    }
    Ok(sha256_hex(text.as_bytes()))
}

fn read_manifest(root: &Path) -> Result<Option<Manifest>, InputCheckError> {
    let path = root.join(MANIFEST);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| InputCheckError::Manifest {
            path,
            reason: format!("{e} (written by scripts/prepare-data; run it again to rewrite it)"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(InputCheckError::Manifest { path, reason: e.to_string() }),
    }
}

/// Checks the plan's inputs; the first problem found is returned.
pub fn verify(plan: &Plan) -> Result<(), InputCheckError> {
    match problems(plan).into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Every problem with the plan's inputs: [`model_problems`], then the
/// prepared datasets against the manifest.
pub fn problems(plan: &Plan) -> Vec<InputCheckError> {
    let mut out = model_problems(&plan.spec, &plan.data_root);
    out.extend(dataset_problems(plan));
    out
}

/// Every hub model whose artifact folder lacks `module.pt` or `model.json`,
/// and a missing embedder folder (what `submit` refuses, `plan` lists).
pub fn model_problems(spec: &BenchmarkSpec, root: &Path) -> Vec<InputCheckError> {
    let mut out = Vec::new();
    for m in &spec.hub {
        let dir = root.join(&m.artifact);
        if let Some(file) = ["module.pt", "model.json"].into_iter().find(|f| !dir.join(f).is_file()) {
            out.push(InputCheckError::Model {
                key: m.key.clone(),
                reason: format!(
                    "{} is missing (export the hub first: scripts/export-hub --benchmark SPEC --out {})",
                    dir.join(file).display(),
                    root.display()
                ),
            });
        }
    }
    if let Some(e) = spec.embedder.as_ref().filter(|e| e.kind == crate::spec::EmbedderKind::Openai) {
        if let Some(key) = e.key_file.as_ref().map(|k| root.join(k)).filter(|k| !k.is_file()) {
            out.push(InputCheckError::Embedder {
                reason: "the hosted embedder's key file (embedder.key_file) is missing: write the API key, alone, into it".into(),
                path: key,
            });
        }
    } else if let Some(e) = &spec.embedder {
        let dir = root.join(&e.path);
        if !dir.is_dir() {
            out.push(InputCheckError::Embedder {
                reason: format!("the text embedder's folder is missing (scripts/embedder-folder --copy {})", dir.display()),
                path: dir,
            });
        }
    }
    out
}

fn dataset_problems(plan: &Plan) -> Vec<InputCheckError> {
    let root = &plan.data_root;
    let manifest = match read_manifest(root) {
        Ok(m) => m,
        Err(e) => return vec![e],
    };
    let mut out = Vec::new();
    for d in &plan.datasets {
        let name = d.spec.name.clone();
        let listed = manifest.as_ref().and_then(|m| m.datasets.values().find(|e| e.path == d.spec.path));
        let Some(entry) = listed else {
            if let Some(c) = &d.spec.catalog {
                out.push(InputCheckError::Dataset {
                    name,
                    reason: format!(
                        "catalog entry '{c}' is not in {} (prepare it: scripts/prepare-data --only {c} --out {})",
                        root.join(MANIFEST).display(),
                        root.display()
                    ),
                });
            }
            continue;
        };
        let dir = root.join(&d.spec.path);
        match listing_sha256(&dir) {
            Err(e) => out.push(InputCheckError::Dataset { name, reason: format!("{}: {e}", dir.display()) }),
            Ok(got) if got != entry.listing_sha256 => out.push(InputCheckError::Dataset {
                name,
                reason: format!(
                    "{} does not match {} (files added, removed or resized since it was prepared); prepare it again \
                     (move the folder away, then scripts/prepare-data --only {} --out {})",
                    dir.display(),
                    root.join(MANIFEST).display(),
                    d.spec.catalog.as_deref().unwrap_or("NAME"),
                    root.display()
                ),
            }),
            Ok(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_hash_is_the_python_definition() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("a.txt"), b"xyz").unwrap();
        std::fs::write(dir.path().join("b/c"), b"").unwrap();
        let want = sha256_hex(b"a.txt\x003\nb/c\x000\n");
        assert_eq!(listing_sha256(dir.path()).unwrap(), want);
    }
}
