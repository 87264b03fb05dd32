//! Unlabelled folder: `<path>/<image>.{jpg,jpeg,png,webp}` directly in the
//! folder, plus `<path>/classnames.txt` (the task's classes, one per line) and
//! optionally `zeroshot_classification_templates.txt`. What `coordinator
//! adapt` takes for a new task whose images have no labels.
//!
//! Samples are ordered by file name (bytes, as Python's `sorted` for ASCII
//! names). Every sample carries label 0: the evaluate job needs a label per
//! sample, and its counts for such a task mean nothing (adapt reports no
//! accuracy for it).

use super::{images_in, read_lines_opt, Confine, DataError, FileList};
use std::path::Path;

/// Opens unlabelled flat folders (scanned into a [`FileList`]).
#[derive(Debug)]
pub struct FlatFolder;

impl FlatFolder {
    /// Every entry must resolve inside `path` (see [`Confine`]).
    pub fn open(path: &Path) -> Result<FileList, DataError> {
        Self::open_confined(path, &Confine::within(path))
    }

    /// As [`FlatFolder::open`], with symbolic links allowed within `confine`.
    pub fn open_confined(path: &Path, confine: &Confine) -> Result<FileList, DataError> {
        let classes = read_lines_opt(&path.join("classnames.txt"))?.ok_or_else(|| {
            DataError::Invalid(format!(
                "unlabelled folder {} has no classnames.txt: write the task's class names there, one per line",
                path.display()
            ))
        })?;
        if classes.is_empty() {
            return Err(DataError::Invalid(format!("{}/classnames.txt lists no class", path.display())));
        }
        let files = images_in(path, confine)?;
        if files.is_empty() {
            return Err(DataError::Invalid(format!(
                "unlabelled folder {} has no images (.jpg, .jpeg, .png, .webp) directly inside it",
                path.display()
            )));
        }
        Ok(FileList::new(path, classes, files.into_iter().map(|f| (0, f)).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;

    #[test]
    fn lists_images_by_name_with_label_zero() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("classnames.txt"), "cat\ndog\n").unwrap();
        for f in ["b.png", "a.jpg", "notes.txt"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        let ds = FlatFolder::open(dir.path()).unwrap();
        assert_eq!(ds.count().unwrap(), 2);
        let names: Vec<String> = ds.samples(0, 2).unwrap().map(|s| s.unwrap().name).collect();
        assert_eq!(names, ["a.jpg", "b.png"]);
        assert_eq!(ds.classnames().unwrap(), ["cat", "dog"]);
        assert_eq!(super::super::detect_format(dir.path()), crate::job::DatasetFormat::Flat);
    }

    #[test]
    fn needs_classnames_and_images() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.png"), b"x").unwrap();
        assert!(FlatFolder::open(dir.path()).unwrap_err().to_string().contains("classnames.txt"));
        std::fs::write(dir.path().join("classnames.txt"), "cat\n").unwrap();
        std::fs::remove_file(dir.path().join("a.png")).unwrap();
        assert!(FlatFolder::open(dir.path()).unwrap_err().to_string().contains("no images"));
    }
}
