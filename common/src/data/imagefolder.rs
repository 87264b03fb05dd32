//! ImageFolder: `<path>/<class folder>/<image>.{jpg,jpeg,png,webp}`.
//!
//! Class folders sorted by name give the label indexes, unless `classnames.txt`
//! in `<path>` lists the folder names in label order. Samples are ordered by
//! (label, file name); file names compare as bytes, as Python's `sorted` does
//! for ASCII names.

use super::{images_in, read_lines_opt, Confine, DataError, FileList};
use std::path::Path;

/// Opens ImageFolder datasets (scanned into a [`FileList`]).
#[derive(Debug)]
pub struct ImageFolder;

impl ImageFolder {
    /// Scans the tree once; the listing is fixed for the reader's life.
    /// Every entry must resolve inside `path` (see [`Confine`]).
    pub fn open(path: &Path) -> Result<FileList, DataError> {
        Self::open_confined(path, &Confine::within(path))
    }

    /// As [`ImageFolder::open`], with symbolic links allowed within `confine`.
    pub fn open_confined(path: &Path, confine: &Confine) -> Result<FileList, DataError> {
        let listed = read_lines_opt(&path.join("classnames.txt"))?;
        let classes = match listed {
            Some(names) => {
                for n in &names {
                    if !path.join(n).is_dir() {
                        return Err(DataError::Invalid(format!(
                            "{}/classnames.txt lists class folder '{n}' but {}/{n} is not a folder (ImageFolder's classnames.txt names the class folders in label order)",
                            path.display(),
                            path.display()
                        )));
                    }
                }
                names
            }
            None => {
                let mut names = Vec::new();
                for entry in std::fs::read_dir(path).map_err(|e| DataError::io(path, e))? {
                    let entry = entry.map_err(|e| DataError::io(path, e))?;
                    if entry.path().is_dir() {
                        names.push(entry.file_name().to_string_lossy().into_owned());
                    }
                }
                names.sort();
                names
            }
        };
        if classes.is_empty() {
            return Err(DataError::Invalid(format!(
                "ImageFolder {} has no class folders (expected <path>/<class>/<image>.jpg; for tar shards add nshards.txt and use the webdataset format)",
                path.display()
            )));
        }
        let mut files = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let dir = path.join(class);
            confine.check(&dir)?;
            let names = images_in(&dir, confine)?;
            if names.is_empty() {
                return Err(DataError::Invalid(format!(
                    "class folder {} has no images (.jpg, .jpeg, .png, .webp); remove the folder or add its images, since labels are folder positions",
                    dir.display()
                )));
            }
            files.extend(names.into_iter().map(|p| (label as i64, p)));
        }
        Ok(FileList::new(path, classes, files))
    }
}
