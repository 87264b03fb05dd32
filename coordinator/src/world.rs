//! Generated worlds: a spec may name a generator (`[world]` in the spec) that
//! writes its data root, e.g. the toy world. `coordinator run` calls it before
//! planning; the generator itself keeps a stamp and returns at once when its
//! output is up to date.

use crate::spec::BenchmarkSpec;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python that runs project scripts: `$MLL_PYTHON`, else the project venv
/// (`.venv` beside a parent of the spec), else `python3`.
pub fn python_for(spec_path: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("MLL_PYTHON") {
        return PathBuf::from(p);
    }
    if let Some(v) = std::env::var_os("MLL_VENV") {
        return PathBuf::from(v).join("bin/python");
    }
    let start = std::fs::canonicalize(spec_path).unwrap_or_else(|_| spec_path.to_path_buf());
    for dir in start.ancestors().skip(1) {
        let candidate = dir.join(".venv/bin/python");
        if candidate.is_file() {
            return candidate;
        }
    }
    PathBuf::from("python3")
}

pub fn ensure_for_spec(spec: &BenchmarkSpec, spec_path: &Path) -> anyhow::Result<()> {
    let Some(world) = &spec.world else { return Ok(()) };
    let base = spec_path.parent().unwrap_or(Path::new("."));
    let generator = base.join(&world.generator);
    let out = base.join(&spec.data_root);
    let python = python_for(spec_path);
    eprintln!("preparing the world for '{}' ({})", spec.name, out.display());
    let status = Command::new(&python)
        .arg(&generator)
        .arg("--out")
        .arg(&out)
        .arg("--seed")
        .arg(world.seed.to_string())
        .status()
        .with_context(|| format!("running {} {} (run scripts/setup first)", python.display(), generator.display()))?;
    anyhow::ensure!(status.success(), "the world generator {} failed ({status}); see its output above", generator.display());
    Ok(())
}
