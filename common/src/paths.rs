//! The one rule for paths that specs and jobs name: relative, without `..`,
//! so they stay under the configured data root. The planner applies it at
//! submit (a bad spec is refused at once) and the worker again before it
//! touches disk (a payload cannot read outside its root).

use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path '{path}' is not a relative path inside the data root {root} (absolute paths and '..' are refused)")]
pub struct OutsideRoot {
    pub path: String,
    pub root: String,
}

/// `root/rel`, if `rel` is a non-empty relative path without `..`.
pub fn confine(root: &Path, rel: &str) -> Result<PathBuf, OutsideRoot> {
    let p = Path::new(rel);
    let safe = p.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !safe || rel.trim().is_empty() {
        return Err(OutsideRoot { path: rel.to_string(), root: root.display().to_string() });
    }
    Ok(root.join(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_root_are_refused() {
        let root = Path::new("/data");
        assert_eq!(confine(root, "models/a").unwrap(), PathBuf::from("/data/models/a"));
        assert_eq!(confine(root, "./models/a").unwrap(), PathBuf::from("/data/./models/a"));
        for bad in ["/etc", "/data/models/a", "models/../../etc", "..", "a/..", "", " "] {
            assert!(confine(root, bad).is_err(), "{bad:?} was accepted");
        }
    }
}
