//! `coordinator submit` checks its inputs before publishing (coordinator/src/inputs.rs):
//! a missing model folder, a prepared dataset that no longer matches the
//! manifest of scripts/prepare-data, and a catalog dataset that was never
//! prepared each fail at once with exit 2 and the model or dataset named.
//! Real RabbitMQ and Redis, the real coordinator binary, digits prepared by
//! the real scripts/prepare-data.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::Cluster;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn prepare_digits(out: &Path) {
    let venv = std::env::var("MLL_VENV").expect("MLL_VENV is not set: source scripts/env.sh (after scripts/setup)");
    let out = Command::new(Path::new(&venv).join("bin/python"))
        .arg(repo().join("scripts/data/prepare.py"))
        .args(["--out", out.to_str().unwrap(), "--only", "digits", "--no-progress", "--offline"])
        .output()
        .expect("run scripts/data/prepare.py");
    assert!(out.status.success(), "prepare-data failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

fn submit(c: &Cluster, spec: &Path) -> (i32, String) {
    let out = c.coordinator(&["submit", "--benchmark", spec.to_str().unwrap()]);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn submit_fails_with_exit_2_naming_a_missing_model_or_a_changed_dataset() {
    let mut c = Cluster::new("inputs");
    c.env.insert("MLL_CATALOG".into(), repo().join("configs/catalog/datasets.toml").display().to_string());
    let run = c.name.replace('.', "-");
    let spec = c.write_spec(
        "spec.toml",
        &format!(
            "name = \"{run}\"\n[[hub]]\nkey = \"tiny/v1\"\nartifact = \"models/tiny\"\n\
             [[datasets]]\ncatalog = \"digits\"\n[method]\nk = [1]\n"
        ),
    );
    prepare_digits(c.dir.path());

    // The model folder is missing: nothing is published.
    let (code, err) = submit(&c, &spec);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("model 'tiny/v1'") && err.contains("module.pt is missing") && err.contains("export-hub"), "{err}");
    assert!(c.redis_set(&run, "expected:evaluate").is_empty());

    // With the model folder (presence is what submit checks; no worker runs here)
    // and the prepared digits untouched, submit goes through.
    let model = c.path("models/tiny");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("module.pt"), b"not loaded by submit").unwrap();
    std::fs::write(model.join("model.json"), b"{}").unwrap();
    let (code, err) = submit(&c, &spec);
    assert_eq!(code, 0, "{err}");
    assert_eq!(c.redis_set(&run, "expected:evaluate").len(), 1);

    // A file added to the prepared dataset: the manifest no longer matches.
    std::fs::write(c.path("datasets/digits/all/stray.txt"), b"x").unwrap();
    let (code, err) = submit(&c, &spec);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("dataset 'digits'") && err.contains("does not match") && err.contains("manifest.json"), "{err}");

    // A catalog dataset the manifest does not list was never prepared.
    std::fs::remove_file(c.path("manifest.json")).unwrap();
    let (code, err) = submit(&c, &spec);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("catalog entry 'digits' is not in") && err.contains("prepare-data"), "{err}");
}
