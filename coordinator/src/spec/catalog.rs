//! The dataset catalog (`configs/catalog/datasets.toml`, written by
//! `scripts/write-catalog`): per dataset its split, where it lives under the
//! data root, the converter `scripts/prepare-data` uses, the expected sample and
//! class counts (each with its source), class names in label order, templates,
//! the MLL caption file and the download sources in order of preference.
//!
//! A benchmark spec's dataset may say `catalog = "CIFAR100"` instead of
//! repeating all that: [`resolve_references`] fills format, path, split, class
//! names, templates and captions from the entry before the spec is parsed
//! (keys the spec gives itself win).

use super::error::SpecError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The converters `scripts/prepare-data` implements (scripts/data/converters.py).
pub const CONVERTERS: [&str; 11] = [
    "torchvision",
    "imagefolder_archive",
    "flowers102_mat",
    "gtsrb_csv",
    "mnist_idx",
    "pcam_h5",
    "ucf101_midframes",
    "wds_mirror",
    "imagenet_val",
    "imagenetv2_folders",
    "sklearn_digits",
];

/// Environment variable naming the catalog file for spec references.
pub const CATALOG_ENV: &str = "MLL_CATALOG";

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("dataset catalog {path}: cannot read it: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("dataset catalog {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("dataset catalog {path}: dataset '{dataset}': {message}")]
    Invalid { path: PathBuf, dataset: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub version: u32,
    #[serde(rename = "dataset")]
    pub datasets: Vec<CatalogEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// One of the benchmark's target datasets (WebDataset shards).
    Target,
    /// A sample set for the semantic graph (wnid-named folders).
    Sample,
    /// The smoke-test dataset (digits).
    Smoke,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    pub name: String,
    pub role: Role,
    /// The split MLL evaluates (Country211 `valid`, DTD `val`, resisc45 `all`).
    pub split: String,
    /// Folder under the data root that `scripts/prepare-data` writes.
    pub path: String,
    pub converter: String,
    pub samples: u64,
    pub samples_source: String,
    pub classes: u64,
    pub classes_source: String,
    /// Class names in label order (targets and smoke).
    #[serde(default)]
    pub classnames: Vec<String>,
    /// Targets: the class map (`class_maps/<name>.tsv`, relative to the
    /// catalog file) pairing these class names with MLL's caption keys; the one
    /// place those keys are written.
    #[serde(default)]
    pub class_map: Option<String>,
    /// For sample sets: the timm `data/_info` file listing the wnids in label order.
    #[serde(default)]
    pub wnids: Option<String>,
    /// Archive folder names in label order, when they differ from class names.
    #[serde(default)]
    pub folder_order: Vec<String>,
    #[serde(default)]
    pub templates: Vec<String>,
    #[serde(default)]
    pub templates_source: Option<String>,
    /// MLL's caption file, relative to the data root.
    #[serde(default)]
    pub captions: Option<String>,
    pub sources: Vec<Source>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A file at an official URL.
    Url,
    /// torchvision's own downloader (it checks its md5 sums).
    Torchvision,
    /// CLIP_benchmark's public WebDataset mirror on Hugging Face.
    WdsMirror,
    /// A file the user provides (`--from-file NAME=PATH`).
    Manual,
    /// A Python package that ships the data (scikit-learn's digits).
    Python,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub kind: SourceKind,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub file: Option<String>,
    /// `sha256:<hex>`, `md5:<hex>`, `md5 inside torchvision` or `none published`.
    #[serde(default)]
    pub checksum: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    /// wds_mirror: the mirror's split folders that make up MLL's split.
    #[serde(default)]
    pub splits: Vec<String>,
    /// torchvision: the dataset class and its split argument.
    #[serde(default, rename = "class")]
    pub class_name: Option<String>,
    #[serde(default)]
    pub split: Option<String>,
    /// python: the loader (module path).
    #[serde(default)]
    pub module: Option<String>,
}

impl Catalog {
    pub fn load(path: &Path) -> Result<Catalog, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read { path: path.to_path_buf(), source })?;
        Self::from_toml(&text, path)
    }

    pub fn from_toml(text: &str, path: &Path) -> Result<Catalog, CatalogError> {
        let c: Catalog = toml::from_str(text).map_err(|e| CatalogError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
        c.validate(path)?;
        Ok(c)
    }

    pub fn get(&self, name: &str) -> Option<&CatalogEntry> {
        self.datasets.iter().find(|d| d.name == name)
    }

    fn validate(&self, path: &Path) -> Result<(), CatalogError> {
        if self.version != 1 {
            return Err(CatalogError::Parse {
                path: path.to_path_buf(),
                message: format!("version {} is not supported (this build reads version 1)", self.version),
            });
        }
        let mut seen = BTreeSet::new();
        for d in &self.datasets {
            if !seen.insert(d.name.as_str()) {
                return Err(invalid(path, &d.name, "listed twice".into()));
            }
            d.validate().map_err(|m| invalid(path, &d.name, m))?;
        }
        Ok(())
    }
}

fn invalid(path: &Path, dataset: &str, message: String) -> CatalogError {
    CatalogError::Invalid { path: path.to_path_buf(), dataset: dataset.to_string(), message }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// A checksum field: a published sum, or a statement why there is none.
fn check_checksum(c: &str) -> Result<(), String> {
    match c.split_once(':') {
        Some(("sha256", h)) if is_hex(h, 64) => Ok(()),
        Some(("md5", h)) if is_hex(h, 32) => Ok(()),
        None if c == "none published" || c == "md5 inside torchvision" => Ok(()),
        _ => Err(format!("checksum '{c}' is not sha256:<64 hex>, md5:<32 hex>, 'md5 inside torchvision' or 'none published'")),
    }
}

impl CatalogEntry {
    fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)) {
            return Err("name must be ASCII letters, digits, '-' or '_'".into());
        }
        if self.split.is_empty() {
            return Err("split is empty".into());
        }
        let p = Path::new(&self.path);
        if self.path.is_empty() || p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return Err(format!("path '{}' must be relative to the data root, without '..'", self.path));
        }
        if !CONVERTERS.contains(&self.converter.as_str()) {
            return Err(format!("converter '{}' is unknown (known: {})", self.converter, CONVERTERS.join(", ")));
        }
        if self.samples == 0 || self.classes == 0 {
            return Err("samples and classes must be >= 1".into());
        }
        if self.samples_source.trim().is_empty() || self.classes_source.trim().is_empty() {
            return Err("samples_source and classes_source must name where the counts come from".into());
        }
        let n = self.classes as usize;
        match self.role {
            Role::Target | Role::Smoke => {
                if self.classnames.len() != n {
                    return Err(format!("{} class names for {} classes", self.classnames.len(), n));
                }
                if let Some(bad) = self.classnames.iter().find(|c| c.trim().is_empty() || c.contains('\n')) {
                    return Err(format!("class name {bad:?} is empty or spans lines (classnames.txt holds one per line)"));
                }
                let unique: BTreeSet<&String> = self.classnames.iter().collect();
                if unique.len() != n {
                    return Err("class names are not unique".into());
                }
                if self.templates.is_empty() {
                    return Err("no templates".into());
                }
                if let Some(bad) = self.templates.iter().find(|t| !t.contains("{c}")) {
                    return Err(format!("template '{bad}' has no {{c}}"));
                }
            }
            Role::Sample => {
                if self.wnids.is_none() {
                    return Err("a sample set needs `wnids` (the timm data/_info file of its classes)".into());
                }
            }
        }
        if let Some(m) = &self.class_map {
            if m.starts_with('/') || m.split('/').any(|c| c == "..") {
                return Err(format!("class_map '{m}' must be a path inside the catalog's folder, without '..'"));
            }
        }
        if !self.folder_order.is_empty() && self.folder_order.len() != n {
            return Err(format!("{} folder names in folder_order for {} classes", self.folder_order.len(), n));
        }
        if self.role == Role::Target && (self.captions.is_none() || self.class_map.is_none()) {
            return Err("a target dataset needs its MLL caption file (`captions`) and its class map (`class_map`)".into());
        }
        if self.sources.is_empty() {
            return Err("no sources".into());
        }
        for (i, s) in self.sources.iter().enumerate() {
            s.validate().map_err(|m| format!("sources[{i}] ({:?}): {m}", s.kind))?;
        }
        Ok(())
    }
}

impl Source {
    fn validate(&self) -> Result<(), String> {
        let need = |v: &Option<String>, key: &str| match v {
            Some(s) if !s.trim().is_empty() => Ok(()),
            _ => Err(format!("needs `{key}`")),
        };
        match self.kind {
            SourceKind::Url => {
                need(&self.url, "url")?;
                need(&self.file, "file")?;
            }
            SourceKind::WdsMirror => {
                need(&self.url, "url")?;
                if self.splits.is_empty() {
                    return Err("needs `splits` (the mirror's split folders)".into());
                }
            }
            SourceKind::Manual => {
                need(&self.file, "file")?;
                need(&self.note, "note")?;
            }
            SourceKind::Torchvision => {
                need(&self.class_name, "class")?;
                need(&self.split, "split")?;
            }
            SourceKind::Python => need(&self.module, "module")?,
        }
        if let Some(u) = &self.url {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                return Err(format!("url '{u}' is not http(s)"));
            }
        }
        match (&self.checksum, self.kind) {
            (Some(c), _) => check_checksum(c),
            (None, SourceKind::Manual) => Ok(()),
            (None, _) => Err("needs `checksum` (a sum, or \"none published\")".into()),
        }
    }
}

/// The catalog file for a spec's `catalog = "NAME"` references: `$MLL_CATALOG`,
/// else `catalog/datasets.toml` beside or one folder above the spec's folder
/// (configs/benchmarks/x.toml -> configs/catalog/datasets.toml;
/// /data/benchmarks/x.toml -> /data/catalog/datasets.toml).
pub fn catalog_path_for(spec_origin: &str) -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var(CATALOG_ENV) {
        return Ok(PathBuf::from(p));
    }
    let dir = Path::new(spec_origin).parent().unwrap_or(Path::new("."));
    let candidates = [dir.join("../catalog/datasets.toml"), dir.join("catalog/datasets.toml")];
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        format!(
            "no dataset catalog found for catalog references (tried {} and {}); set {CATALOG_ENV}=FILE \
             (configs/catalog/datasets.toml in the repository)",
            candidates[0].display(),
            candidates[1].display()
        )
    })
}

/// A catalog entry's class map as a spec gives it: relative to the spec's
/// folder when the catalog was found beside or above it (so the resolved spec,
/// and the run id hashed from it, do not depend on where the checkout lives),
/// else absolute.
fn class_map_from_spec(catalog: &Path, spec_origin: &str, class_map: &str) -> String {
    let spec_dir = Path::new(spec_origin).parent().unwrap_or(Path::new(""));
    let catalog_dir = catalog.parent().unwrap_or(Path::new(""));
    if let Ok(rel) = catalog_dir.strip_prefix(spec_dir) {
        return rel.join(class_map).to_string_lossy().into_owned();
    }
    let abs = catalog_dir.canonicalize().unwrap_or_else(|_| catalog_dir.to_path_buf());
    abs.join(class_map).to_string_lossy().into_owned()
}

/// Fills the datasets of a spec that say `catalog = "NAME"` from the catalog.
/// Returns None when the spec has no catalog reference (it is then parsed as
/// written, keeping toml's line numbers in errors).
pub fn resolve_references(text: &str, origin: &str) -> Result<Option<toml::Value>, SpecError> {
    let mut value: toml::Value = toml::from_str(text).map_err(|e| SpecError::Parse { path: origin.to_string(), message: e.to_string() })?;
    let Some(datasets) = value.get_mut("datasets").and_then(|d| d.as_array_mut()) else { return Ok(None) };
    if !datasets.iter().any(|d| d.get("catalog").is_some()) {
        return Ok(None);
    }
    let invalid = |key: String, message: String| SpecError::Invalid { path: origin.to_string(), key, message };
    let path = catalog_path_for(origin).map_err(|m| invalid("datasets.catalog".into(), m))?;
    let catalog = Catalog::load(&path).map_err(|e| invalid("datasets.catalog".into(), e.to_string()))?;
    for (i, d) in datasets.iter_mut().enumerate() {
        let Some(table) = d.as_table_mut() else { continue };
        let Some(name) = table.get("catalog").map(|v| v.as_str().map(str::to_string)) else { continue };
        let key = format!("datasets[{i}].catalog");
        let name = name.ok_or_else(|| invalid(key.clone(), "must be a string naming a catalog entry".into()))?;
        let entry = catalog.get(&name).ok_or_else(|| {
            let names: Vec<&str> = catalog.datasets.iter().map(|d| d.name.as_str()).collect();
            invalid(key.clone(), format!("'{name}' is not in {} (entries: {})", path.display(), names.join(", ")))
        })?;
        if entry.role == Role::Sample {
            return Err(invalid(key, format!("'{name}' is a sample set for the graph, not a target dataset")));
        }
        let strings = |v: &[String]| toml::Value::Array(v.iter().cloned().map(toml::Value::String).collect());
        let mut fill = |k: &str, v: toml::Value| {
            table.entry(k.to_string()).or_insert(v);
        };
        fill("name", toml::Value::String(entry.name.clone()));
        fill("format", toml::Value::String("webdataset".into()));
        fill("path", toml::Value::String(entry.path.clone()));
        fill("split", toml::Value::String(entry.split.clone()));
        fill("classnames", strings(&entry.classnames));
        fill("templates", strings(&entry.templates));
        if let Some(c) = &entry.captions {
            fill("captions", toml::Value::String(c.clone()));
        }
        if let Some(m) = &entry.class_map {
            fill("class_map", toml::Value::String(class_map_from_spec(&path, origin, m)));
        }
    }
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
    }

    const TARGETS: [(&str, u64, u64); 17] = [
        // (name, classes, samples): docs/method.md, "The benchmark", for the classes;
        // the catalog's cited sources for the samples.
        ("CIFAR100", 100, 10000),
        ("Country211", 211, 10550),
        ("DTD", 47, 1880),
        ("FER2013", 7, 7178),
        ("Flowers102", 102, 6149),
        ("Food101", 101, 25250),
        ("GTSRB", 43, 12630),
        ("MNIST", 10, 10000),
        ("OxfordIIITPet", 37, 3669),
        ("PCAM", 2, 32768),
        ("RenderedSST2", 2, 1821),
        ("STL10", 10, 8000),
        ("StanfordCars", 196, 8041),
        ("UCF101", 101, 13320),
        ("clevr_closest_object_distance", 6, 15000),
        ("dmlab", 6, 22735),
        ("resisc45", 45, 31500),
    ];

    #[test]
    fn the_shipped_catalog_is_valid_and_complete() {
        let c = Catalog::load(&repo().join("configs/catalog/datasets.toml")).unwrap();
        for (name, classes, samples) in TARGETS {
            let d = c.get(name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(d.role, Role::Target, "{name}");
            assert_eq!((d.classes, d.samples), (classes, samples), "{name}");
            assert_eq!(d.captions.as_deref(), Some(format!("captions/{name}.json").as_str()));
            let split = match name {
                "Country211" => "valid",
                "DTD" => "val",
                "resisc45" | "UCF101" => "all",
                _ => "test",
            };
            assert_eq!(d.split, split, "{name}");
            assert!(d.path.starts_with("datasets/wds_") && d.path.ends_with(split), "{name}: {}", d.path);
        }
        let samples: Vec<(&str, u64)> =
            c.datasets.iter().filter(|d| d.role == Role::Sample).map(|d| (d.name.as_str(), d.classes)).collect();
        assert_eq!(
            samples,
            [("imagenet-val", 1000), ("imagenet-v2", 1000), ("imagenet-sketch", 1000), ("imagenet-a", 200), ("imagenet-r", 200)]
        );
        let digits = c.get("digits").unwrap();
        assert_eq!((digits.role, digits.samples, digits.classes), (Role::Smoke, 1797, 10));
        // 17 targets, UCF101-test (CoOp's split, the other reading of UCF101), 5 sample sets, digits.
        assert_eq!(c.datasets.len(), 24);
    }

    /// The paper's spec and the catalog agree on where each target lives, so
    /// `scripts/prepare-data` fills exactly the folders the spec reads.
    #[test]
    fn the_papers_spec_reads_the_catalogs_folders() {
        let c = Catalog::load(&repo().join("configs/catalog/datasets.toml")).unwrap();
        let spec = crate::spec::BenchmarkSpec::load(&repo().join("configs/benchmarks/mll-49x17.toml")).unwrap();
        assert_eq!(spec.datasets.len(), 17);
        for d in &spec.datasets {
            let e = c.get(d.catalog.as_deref().unwrap_or(&d.name)).unwrap_or_else(|| panic!("{} not in the catalog", d.name));
            assert_eq!((d.path.as_str(), d.split.as_str()), (e.path.as_str(), e.split.as_str()), "{}", d.name);
            assert_eq!(d.captions, e.captions, "{}", d.name);
        }
    }

    /// Each target's class map is there, and the spec that refers to the
    /// entry gets it by a path relative to the spec file.
    #[test]
    fn targets_name_their_class_maps() {
        let path = repo().join("configs/catalog/datasets.toml");
        let c = Catalog::load(&path).unwrap();
        for d in c.datasets.iter().filter(|d| d.role == Role::Target) {
            let m = d.class_map.as_deref().unwrap();
            // Another split of a dataset (UCF101-test) shares its map.
            assert_eq!(m, format!("class_maps/{}.tsv", d.name.strip_suffix("-test").unwrap_or(&d.name)));
            assert!(path.parent().unwrap().join(m).is_file(), "{m}");
        }
        let spec_dir = repo().join("configs/benchmarks");
        let spec = spec_dir.join("x.toml");
        let found = spec_dir.join("../catalog/datasets.toml"); // as catalog_path_for finds it
        assert_eq!(class_map_from_spec(&found, spec.to_str().unwrap(), "class_maps/A.tsv"), "../catalog/class_maps/A.tsv");
    }

    fn entry(extra: &str) -> String {
        format!(
            "version = 1\n[[dataset]]\nname = \"x\"\nrole = \"smoke\"\nsplit = \"test\"\npath = \"datasets/x\"\n\
             converter = \"sklearn_digits\"\nsamples = 3\nsamples_source = \"s\"\nclasses = 2\nclasses_source = \"s\"\n\
             classnames = [\"a\", \"b\"]\ntemplates = [\"a photo of {{c}}.\"]\n{extra}"
        )
    }

    #[test]
    fn invalid_entries_are_named() {
        let ok = entry("[[dataset.sources]]\nkind = \"python\"\nmodule = \"m\"\nchecksum = \"none published\"\n");
        Catalog::from_toml(&ok, Path::new("c.toml")).unwrap();
        for (bad, want) in [
            (ok.replace("[\"a\", \"b\"]", "[\"a\"]"), "1 class names for 2 classes"),
            (ok.replace("none published", "md5:xyz"), "checksum 'md5:xyz'"),
            (ok.replace("sklearn_digits", "magic"), "converter 'magic'"),
            (ok.replace("datasets/x", "../x"), "without '..'"),
            (ok.replace("a photo of {c}.", "a photo"), "has no {c}"),
            (entry(""), "missing field `sources`"),
        ] {
            let err = Catalog::from_toml(&bad, Path::new("c.toml")).unwrap_err().to_string();
            assert!(err.contains(want), "{err} (wanted {want})");
        }
    }

    #[test]
    fn a_spec_dataset_can_refer_to_a_catalog_entry() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("catalog")).unwrap();
        std::fs::copy(repo().join("configs/catalog/datasets.toml"), dir.path().join("catalog/datasets.toml")).unwrap();
        std::fs::create_dir_all(dir.path().join("benchmarks")).unwrap();
        let origin = dir.path().join("benchmarks/s.toml");
        let text = "name = \"s\"\n[[datasets]]\ncatalog = \"DTD\"\ndomain = \"texture\"\n\
                    [[datasets]]\ncatalog = \"digits\"\nname = \"smoke\"\ntemplates = [\"{c}\"]\n";
        let spec = crate::spec::BenchmarkSpec::from_toml(text, &origin.display().to_string()).unwrap();
        let dtd = &spec.datasets[0];
        assert_eq!((dtd.name.as_str(), dtd.path.as_str(), dtd.split.as_str()), ("DTD", "datasets/wds_dtd/val", "val"));
        assert_eq!(dtd.format, mll_common::job::DatasetFormat::WebDataset);
        assert_eq!(dtd.classnames.len(), 47);
        assert_eq!(dtd.captions.as_deref(), Some("captions/DTD.json"));
        assert_eq!(dtd.catalog.as_deref(), Some("DTD"));
        // Keys the spec gives win.
        assert_eq!(spec.datasets[1].name, "smoke");
        assert_eq!(spec.datasets[1].templates, vec!["{c}".to_string()]);
        let err = crate::spec::BenchmarkSpec::from_toml("name = \"s\"\n[[datasets]]\ncatalog = \"Nope\"\n", &origin.display().to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("datasets[0].catalog") && err.contains("'Nope' is not in"), "{err}");
    }
}
