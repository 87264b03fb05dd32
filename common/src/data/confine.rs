//! Where a dataset may read from (docs/formats.md, "Datasets"): under the data
//! root, or under the dataset's own folder (an operator may link a whole
//! dataset folder in from another disk). A symbolic link inside a dataset —
//! a class folder, an image, a shard, a text file — that resolves anywhere
//! else is refused, so a task folder handed to `adapt` cannot make a worker
//! read (and predict, and report on) files outside the data root.

use super::DataError;
use std::path::{Path, PathBuf};

/// The folders a dataset's entries must resolve into.
#[derive(Debug, Clone)]
pub struct Confine {
    roots: Vec<PathBuf>,
}

impl Confine {
    /// Entries of the dataset at `dataset` must resolve under `data_root` or
    /// under `dataset` itself (both taken as they resolve now).
    pub fn new(data_root: &Path, dataset: &Path) -> Confine {
        let roots = [data_root, dataset].iter().map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())).collect();
        Confine { roots }
    }

    /// Everything under `root` (a reader used on its own, e.g. by a debug command).
    pub fn within(root: &Path) -> Confine {
        Confine::new(root, root)
    }

    /// Fails when `path` is a symbolic link whose target
    /// resolves outside the allowed folders. A missing path passes: the reader
    /// reports it in its own words.
    pub fn check(&self, path: &Path) -> Result<(), DataError> {
        let Ok(meta) = std::fs::symlink_metadata(path) else { return Ok(()) };
        if !meta.file_type().is_symlink() {
            return Ok(());
        }
        let target = std::fs::canonicalize(path).map_err(|e| DataError::io(path, e))?;
        if self.roots.iter().any(|r| target.starts_with(r)) {
            return Ok(());
        }
        Err(DataError::Invalid(format!(
            "{} is a symbolic link to {}, outside the data root {}: datasets are read only from under the data root \
             (or their own folder); copy the file in, or link the whole dataset folder instead",
            path.display(),
            target.display(),
            self.roots[0].display()
        )))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_inside_pass_and_links_outside_are_named() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let ds = root.path().join("ds");
        std::fs::create_dir_all(ds.join("cat")).unwrap();
        std::fs::write(root.path().join("shared.png"), b"x").unwrap();
        std::fs::write(outside.path().join("secret.png"), b"x").unwrap();
        symlink(root.path().join("shared.png"), ds.join("cat/in.png")).unwrap();
        symlink(outside.path().join("secret.png"), ds.join("cat/out.png")).unwrap();
        let c = Confine::new(root.path(), &ds);
        c.check(&ds.join("cat/in.png")).unwrap();
        c.check(&ds.join("cat")).unwrap();
        c.check(&ds.join("missing.png")).unwrap();
        let err = c.check(&ds.join("cat/out.png")).unwrap_err().to_string();
        assert!(err.contains("out.png is a symbolic link to") && err.contains("outside the data root"), "{err}");
        // A dataset folder linked in from elsewhere: its own entries are fine.
        let linked = root.path().join("linked");
        std::fs::create_dir_all(outside.path().join("real/dog")).unwrap();
        std::fs::write(outside.path().join("real/dog/a.png"), b"x").unwrap();
        symlink(outside.path().join("real"), &linked).unwrap();
        symlink(outside.path().join("real/dog/a.png"), outside.path().join("real/dog/b.png")).unwrap();
        Confine::new(root.path(), &linked).check(&linked.join("dog/b.png")).unwrap();
    }
}
