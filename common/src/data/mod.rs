//! Dataset readers (docs/formats.md, "Datasets"). They live here, not in the
//! worker, because the coordinator reads them too (sample counts and class
//! names while planning) and must not link libtorch for that; the worker adds
//! the decode pipeline (`mll_worker::data::pipeline`).
//!
//! - `imagefolder` — `<path>/<class>/<image>`, ordered by (label, file name);
//! - `webdataset` — CLIP_benchmark's tar shards, ordered by shard then tar order;
//! - `flat` — an unlabelled task: images directly in the folder, by file name;
//! - `graph` — the semantic graph file (`graph.json`) label jobs read.
//!
//! A reader knows its sample count and yields any range `start..end` of its
//! canonical order, so a job's [`crate::job::Shard`] maps straight onto it.

pub mod confine;
pub mod flat;
pub mod graph;
pub mod imagefolder;
pub mod webdataset;

use crate::job::DatasetFormat;
use std::path::{Path, PathBuf};

pub use confine::Confine;
pub use flat::FlatFolder;

pub use imagefolder::ImageFolder;
pub use webdataset::WebDataset;

/// Where a sample's encoded image bytes are: already in memory (read from a
/// tar) or in a file read on the decode pool.
#[derive(Debug, Clone)]
pub enum SampleSource {
    Bytes(Vec<u8>),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Sample {
    /// Position in the dataset's canonical order.
    pub index: u64,
    /// The label (class index, or graph node index).
    pub label: i64,
    /// A name for errors: a relative path or `shard.tar:key`.
    pub name: String,
    pub source: SampleSource,
}

impl Sample {
    pub fn bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>, DataError> {
        match &self.source {
            SampleSource::Bytes(b) => Ok(std::borrow::Cow::Borrowed(b)),
            SampleSource::File(p) => std::fs::read(p).map(std::borrow::Cow::Owned).map_err(|e| DataError::io(p, e)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("dataset: cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The dataset is malformed: fixing it needs a person.
    #[error("dataset: {0}")]
    Invalid(String),
    #[error("dataset: samples {start}..{end} requested but the dataset at {path} has only {count} samples (was the dataset changed after the run was planned?)")]
    OutOfRange { path: PathBuf, start: u64, end: u64, count: u64 },
}

impl DataError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io { path: path.to_path_buf(), source }
    }

    /// Whether retrying later may succeed: a file that is missing, unreadable
    /// by permission or malformed stays so; other I/O errors (network file
    /// systems, interrupted reads) may heal.
    pub fn is_transient(&self) -> bool {
        match self {
            DataError::Io { source, .. } => !matches!(
                source.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::InvalidData
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::NotADirectory
                    | std::io::ErrorKind::IsADirectory
            ),
            DataError::Invalid(_) | DataError::OutOfRange { .. } => false,
        }
    }
}

pub type SampleIter<'a> = Box<dyn Iterator<Item = Result<Sample, DataError>> + Send + 'a>;

/// A dataset split in one of the supported layouts.
pub trait Dataset: Send + Sync + std::fmt::Debug {
    fn path(&self) -> &Path;
    /// Number of samples.
    fn count(&self) -> Result<u64, DataError>;
    /// Samples `start..end` of the canonical order.
    fn samples(&self, start: u64, end: u64) -> Result<SampleIter<'_>, DataError>;
    /// Class names, if the dataset names them (`classnames.txt`, or the
    /// ImageFolder's folder names).
    fn classnames(&self) -> Option<Vec<String>>;
    /// Zero-shot templates from `zeroshot_classification_templates.txt`, if present.
    fn templates(&self) -> Result<Option<Vec<String>>, DataError> {
        read_lines_opt(&self.path().join("zeroshot_classification_templates.txt"))
    }
}

/// Opens a dataset split whose entries must all resolve inside its own folder
/// (tools and tests; jobs use [`open_under`]); fails when the folder or its
/// layout files are missing.
pub fn open(path: &Path, format: DatasetFormat) -> Result<Box<dyn Dataset>, DataError> {
    open_confined(path, format, &Confine::within(path))
}

/// Opens a dataset split of the data root at `data_root`: a symbolic link
/// inside it may point anywhere under the data root or the dataset's own
/// folder, nowhere else ([`Confine`]).
pub fn open_under(data_root: &Path, path: &Path, format: DatasetFormat) -> Result<Box<dyn Dataset>, DataError> {
    open_confined(path, format, &Confine::new(data_root, path))
}

fn open_confined(path: &Path, format: DatasetFormat, confine: &Confine) -> Result<Box<dyn Dataset>, DataError> {
    if !path.is_dir() {
        return Err(DataError::Invalid(format!(
            "dataset folder {} does not exist or is not a folder (check data.root and the dataset path in the spec)",
            path.display()
        )));
    }
    for text in ["classnames.txt", "zeroshot_classification_templates.txt", "nshards.txt"] {
        confine.check(&path.join(text))?;
    }
    Ok(match format {
        DatasetFormat::ImageFolder => Box::new(ImageFolder::open_confined(path, confine)?),
        DatasetFormat::WebDataset => Box::new(WebDataset::open_confined(path, confine)?),
        DatasetFormat::Flat => Box::new(FlatFolder::open_confined(path, confine)?),
    })
}

/// WebDataset when the folder has `nshards.txt`, Flat when images lie directly
/// in it (and no sub-folder), else ImageFolder.
pub fn detect_format(path: &Path) -> DatasetFormat {
    if path.join("nshards.txt").is_file() {
        return DatasetFormat::WebDataset;
    }
    // Images directly in the folder and no class folder: an unlabelled task.
    let entries: Vec<PathBuf> = std::fs::read_dir(path).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    if entries.iter().any(|p| is_image_file(p)) && !entries.iter().any(|p| p.is_dir()) {
        DatasetFormat::Flat
    } else {
        DatasetFormat::ImageFolder
    }
}

/// Non-empty lines of a text file (trailing `\r` and surrounding whitespace
/// removed), or None when the file does not exist.
pub(crate) fn read_lines_opt(path: &Path) -> Result<Option<Vec<String>>, DataError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DataError::io(path, e)),
    }
}

/// A WebDataset's classnames.txt: one name per label, so a blank line inside
/// the list is a class (CLIP_benchmark's clevr_closest_object_distance names
/// label 3 ''), and only trailing blank lines are dropped.
pub(crate) fn read_classnames_opt(path: &Path) -> Result<Option<Vec<String>>, DataError> {
    Ok(read_text_opt(path)?.map(|s| {
        let mut names: Vec<String> = s.lines().map(|l| l.trim().to_string()).collect();
        while names.last().is_some_and(|l| l.is_empty()) {
            names.pop();
        }
        names
    }))
}

fn read_text_opt(path: &Path) -> Result<Option<String>, DataError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DataError::io(path, e)),
    }
}

/// Samples `start..end` of a list of (label, file) in canonical order, named
/// by their path below `root` (ImageFolder and flat folders).
/// A dataset that is a list of image files with their labels in canonical
/// order: what an ImageFolder and an unlabelled flat folder both are once
/// scanned (the listing is fixed for the reader's life).
#[derive(Debug)]
pub struct FileList {
    path: PathBuf,
    classes: Vec<String>,
    /// (label, file) in canonical order.
    files: Vec<(i64, PathBuf)>,
}

impl FileList {
    pub(crate) fn new(path: &Path, classes: Vec<String>, files: Vec<(i64, PathBuf)>) -> Self {
        FileList { path: path.to_path_buf(), classes, files }
    }

    pub fn classes(&self) -> &[String] {
        &self.classes
    }
}

impl Dataset for FileList {
    fn path(&self) -> &Path {
        &self.path
    }

    fn count(&self) -> Result<u64, DataError> {
        Ok(self.files.len() as u64)
    }

    fn samples(&self, start: u64, end: u64) -> Result<SampleIter<'_>, DataError> {
        let (root, files) = (&self.path, &self.files);
        let count = files.len() as u64;
        if start > end || end > count {
            return Err(DataError::OutOfRange { path: root.to_path_buf(), start, end, count });
        }
        Ok(Box::new((start..end).map(move |i| {
            let (label, file) = &files[i as usize];
            let name = file.strip_prefix(root).unwrap_or(file).display().to_string();
            Ok(Sample { index: i, label: *label, name, source: SampleSource::File(file.clone()) })
        })))
    }

    fn classnames(&self) -> Option<Vec<String>> {
        Some(self.classes.clone())
    }
}

/// The image files directly inside `dir`, sorted by file name (as bytes, as
/// Python's `sorted` does for ASCII names); a symbolic link among them must
/// stay inside `confine`.
pub(crate) fn images_in(dir: &Path, confine: &Confine) -> Result<Vec<PathBuf>, DataError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let p = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_symlink()) {
            confine.check(&p)?;
        }
        if is_image_file(&p) {
            files.push(p);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// Whether `p` is a file with an image extension the readers accept.
pub(crate) fn is_image_file(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())).unwrap_or(false)
        && p.is_file()
}

/// Image file extensions the readers accept (lower case).
pub const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

/// The prompt template when neither the spec nor the dataset gives any
/// (`zeroshot_classification_templates.txt`).
pub const DEFAULT_TEMPLATE: &str = "a photo of a {c}.";

#[cfg(test)]
mod classnames_tests {
    #[test]
    fn a_blank_class_name_keeps_its_label() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("classnames.txt");
        std::fs::write(&p, "very nearby\nnearby\nnear\n\ndistant\nvery distant\n\n").unwrap();
        let names = super::read_classnames_opt(&p).unwrap().unwrap();
        assert_eq!(names, ["very nearby", "nearby", "near", "", "distant", "very distant"]);
        assert_eq!(super::read_classnames_opt(&dir.path().join("none.txt")).unwrap(), None);
    }
}
