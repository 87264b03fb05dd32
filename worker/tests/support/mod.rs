//! Helpers shared by the worker's integration tests (data/executor side).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The project venv's python (`scripts/env.sh` exports MLL_VENV).
pub fn venv_python() -> PathBuf {
    let venv = std::env::var("MLL_VENV").expect("MLL_VENV is not set: run `source scripts/env.sh` (after scripts/setup) before cargo test");
    let py = Path::new(&venv).join("bin/python");
    assert!(py.exists(), "{} does not exist: run scripts/setup", py.display());
    py
}

/// Runs the venv's python with `args`, panicking with its output on failure.
pub fn run_python(args: &[&str]) -> String {
    let out = Command::new(venv_python()).args(args).output().expect("spawn python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "python {:?} failed ({}):\n{}\n{}", args, out.status, stdout, String::from_utf8_lossy(&out.stderr));
    stdout
}

pub fn py_script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(name).display().to_string()
}
