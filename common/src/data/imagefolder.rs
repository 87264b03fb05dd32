//! ImageFolder: `<path>/<class folder>/<image>.{jpg,jpeg,png,webp}`.
//!
//! Class folders sorted by name give the label indexes, unless `classnames.txt`
//! in `<path>` lists the folder names in label order. Samples are ordered by
//! (label, file name); file names compare as bytes, as Python's `sorted` does
//! for ASCII names.

use super::{file_samples, is_image_file, read_lines_opt, DataError, Dataset, SampleIter};
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct ImageFolder {
    path: PathBuf,
    classes: Vec<String>,
    /// (label, file) in canonical order.
    files: Vec<(i64, PathBuf)>,
}

impl ImageFolder {
    /// Scans the tree once; the listing is fixed for the reader's life.
    pub fn open(path: &Path) -> Result<Self, DataError> {
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
            let mut names: Vec<PathBuf> = Vec::new();
            for entry in std::fs::read_dir(&dir).map_err(|e| DataError::io(&dir, e))? {
                let entry = entry.map_err(|e| DataError::io(&dir, e))?;
                let p = entry.path();
                if is_image_file(&p) {
                    names.push(p);
                }
            }
            if names.is_empty() {
                return Err(DataError::Invalid(format!(
                    "class folder {} has no images (.jpg, .jpeg, .png, .webp); remove the folder or add its images, since labels are folder positions",
                    dir.display()
                )));
            }
            names.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
            files.extend(names.into_iter().map(|p| (label as i64, p)));
        }
        Ok(ImageFolder { path: path.to_path_buf(), classes, files })
    }

    pub fn classes(&self) -> &[String] {
        &self.classes
    }
}

impl Dataset for ImageFolder {
    fn path(&self) -> &Path {
        &self.path
    }

    fn count(&self) -> Result<u64, DataError> {
        Ok(self.files.len() as u64)
    }

    fn samples(&self, start: u64, end: u64) -> Result<SampleIter<'_>, DataError> {
        file_samples(&self.path, &self.files, start, end)
    }

    fn classnames(&self) -> Option<Vec<String>> {
        Some(self.classes.clone())
    }
}
