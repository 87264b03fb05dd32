//! Class captions for matching a task's classes to graph nodes (docs/method.md,
//! "Selection", step a).
//!
//! MLL's caption files are keyed by MLL's own class names, which are not the
//! names a dataset folder carries (CLIP_benchmark's): a dataset's `class_map`
//! (a TSV in configs/catalog/class_maps, given by the dataset's catalog entry) pairs the two, label by label. A caption
//! string holding several numbered descriptions is split into them, so the
//! text embedder (MiniLM, 256 tokens) sees each whole. A class without
//! captions falls back to its name and is reported, never silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CaptionError {
    #[error("class map {path}: {reason}")]
    ClassMap { path: PathBuf, reason: String },
    #[error("captions {path}: {reason}")]
    Captions { path: PathBuf, reason: String },
}

/// One row of a class map: label index, the dataset's class name, the caption key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassMapRow {
    pub label: usize,
    pub class: String,
    pub caption_key: String,
}

/// A dataset's class map (docs/formats.md): rows in label order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassMap {
    pub path: PathBuf,
    pub rows: Vec<ClassMapRow>,
}

impl ClassMap {
    /// Reads `label<TAB>class name<TAB>caption key[<TAB>how]` lines; `#` lines
    /// are comments. Labels must run 0, 1, 2, ... and caption keys be distinct.
    pub fn read(path: &Path) -> Result<ClassMap, CaptionError> {
        let err = |reason: String| CaptionError::ClassMap { path: path.to_path_buf(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("{e} (the spec's class_map is relative to the spec file)")))?;
        let mut rows = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() < 3 {
                return Err(err(format!("line {}: expected label<TAB>class name<TAB>caption key, found {line:?}", n + 1)));
            }
            let label: usize = f[0].trim().parse().map_err(|_| err(format!("line {}: label {:?} is not a number", n + 1, f[0])))?;
            if label != rows.len() {
                return Err(err(format!("line {}: label {label} out of order (expected {})", n + 1, rows.len())));
            }
            if f[2].trim().is_empty() {
                return Err(err(format!("line {}: class {label} has no caption key", n + 1)));
            }
            rows.push(ClassMapRow { label, class: f[1].to_string(), caption_key: f[2].to_string() });
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = rows.iter().find(|r| !seen.insert(r.caption_key.as_str())) {
            return Err(err(format!("caption key '{}' is given to two classes; a class map must be one to one", dup.caption_key)));
        }
        Ok(ClassMap { path: path.to_path_buf(), rows })
    }

    /// The caption keys in label order.
    pub fn caption_keys(&self) -> Vec<String> {
        self.rows.iter().map(|r| r.caption_key.clone()).collect()
    }

    /// The map must describe exactly these class names, in this order
    /// (compared after [`normalise`], so "aquarium_fish" matches "aquarium fish").
    pub fn check_classes(&self, classnames: &[String]) -> Result<(), CaptionError> {
        let err = |reason: String| CaptionError::ClassMap { path: self.path.clone(), reason };
        if self.rows.len() != classnames.len() {
            return Err(err(format!(
                "lists {} classes but the dataset has {}; regenerate the map (scripts/write-class-maps) for this dataset's classnames.txt",
                self.rows.len(),
                classnames.len()
            )));
        }
        for (r, c) in self.rows.iter().zip(classnames) {
            // An empty name is CLIP_benchmark's clevr_closest_object_distance
            // class 3 in the public WebDataset copies: the map names it.
            if !c.trim().is_empty() && normalise(&r.class) != normalise(c) {
                return Err(err(format!(
                    "class {} is '{}' in the map but '{c}' in the dataset; the map was made for another label order",
                    r.label, r.class
                )));
            }
        }
        Ok(())
    }
}

/// Lower case, '_' and '-' as spaces, punctuation dropped, whitespace collapsed.
pub fn normalise(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| match c {
            '_' | '-' => ' ',
            c if c.is_alphanumeric() || c.is_whitespace() => c,
            _ => ' ',
        })
        .collect::<String>()
        .to_lowercase();
    mapped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A caption file: `{caption key: [caption, ...]}`.
pub fn read_captions(path: &Path) -> Result<BTreeMap<String, Vec<String>>, CaptionError> {
    let err = |reason: String| CaptionError::Captions { path: path.to_path_buf(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| err(format!("{e} (expected a JSON object {{class name: [caption, ...]}})")))
}

/// Longest description, in words, handed to the text embedder in one piece:
/// MiniLM reads 256 tokens, about 1.3 tokens per word of these captions.
pub const MAX_DESCRIPTION_WORDS: usize = 150;

/// Splits a caption string into its numbered descriptions ("1. ... 2. ...",
/// numbers in sequence from 1, each after a line break or a space), then
/// any description longer than [`MAX_DESCRIPTION_WORDS`] at sentence ends.
/// Texts without numbering and short texts come back whole.
pub fn split_descriptions(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let t = text.trim();
    if t.starts_with("1.") {
        let mut start = 0;
        let mut next = 2;
        let mut search = 2;
        loop {
            let marker = format!("{next}. ");
            let found =
                t[search..].match_indices(&marker).map(|(i, _)| search + i).find(|&i| t[..i].ends_with(|c: char| c.is_whitespace()));
            match found {
                Some(i) => {
                    parts.push(t[start..i].trim().to_string());
                    start = i;
                    search = i + marker.len();
                    next += 1;
                }
                None => break,
            }
        }
        parts.push(t[start..].trim().to_string());
    } else {
        parts.push(t.to_string());
    }
    parts.into_iter().filter(|p| !p.is_empty()).flat_map(|p| split_long(&p)).collect()
}

/// Groups sentences into pieces of at most [`MAX_DESCRIPTION_WORDS`] words
/// (a single longer sentence stays whole).
fn split_long(text: &str) -> Vec<String> {
    if text.split_whitespace().count() <= MAX_DESCRIPTION_WORDS {
        return vec![text.to_string()];
    }
    let mut sentences = Vec::new();
    let mut start = 0;
    for (i, _) in text.match_indices(". ") {
        sentences.push(&text[start..=i]);
        start = i + 2;
    }
    sentences.push(&text[start..]);
    let mut out: Vec<String> = Vec::new();
    let mut words = 0;
    for s in sentences.into_iter().map(str::trim).filter(|s| !s.is_empty()) {
        let n = s.split_whitespace().count();
        match out.last_mut() {
            Some(last) if words + n <= MAX_DESCRIPTION_WORDS => {
                last.push(' ');
                last.push_str(s);
                words += n;
            }
            _ => {
                out.push(s.to_string());
                words = n;
            }
        }
    }
    out
}

/// One dataset's captions as the embed stage gets them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DatasetCaptions {
    /// Per class, in label order: its caption texts (split into descriptions).
    pub per_class: Vec<Vec<String>>,
    /// Per class: the key looked up in the caption file (the class map's
    /// caption key, else the class name).
    pub keys: Vec<String>,
    /// Classes (dataset names) without captions; their caption is their key.
    pub fallbacks: Vec<String>,
}

/// Looks every class up in `captions` (None: the spec gives no caption file,
/// so every class falls back to its name).
pub fn resolve(classnames: &[String], map: Option<&ClassMap>, captions: Option<&BTreeMap<String, Vec<String>>>) -> DatasetCaptions {
    let keys: Vec<String> = match map {
        Some(m) => m.caption_keys(),
        None => classnames.to_vec(),
    };
    let mut out = DatasetCaptions { keys: keys.clone(), ..Default::default() };
    for (class, key) in classnames.iter().zip(&keys) {
        let texts: Vec<String> =
            captions.and_then(|c| c.get(key)).map(|v| v.iter().flat_map(|t| split_descriptions(t)).collect()).unwrap_or_default();
        if texts.is_empty() {
            out.fallbacks.push(class.clone());
            out.per_class.push(vec![key.clone()]);
        } else {
            out.per_class.push(texts);
        }
    }
    out
}

/// The report note for a dataset whose classes fell back to their names.
pub fn fallback_note(dataset: &str, classes: &[String]) -> String {
    format!("{dataset}: {}", fallback_classes_note(classes))
}

/// [`fallback_note`] without the dataset's name (a dataset's own note).
pub fn fallback_classes_note(classes: &[String]) -> String {
    format!(
        "{} class(es) had no caption and were matched to graph nodes by their name only: {}",
        classes.len(),
        classes.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_descriptions_are_split_in_sequence() {
        let t = "1. A dog. It runs 2.5 km.\n2. A dog, again. 3. Third one has 10. items\n4. Last.";
        assert_eq!(split_descriptions(t), ["1. A dog. It runs 2.5 km.", "2. A dog, again.", "3. Third one has 10. items", "4. Last."]);
        // Out of sequence numbers are text, not markers.
        assert_eq!(split_descriptions("1. Route 3. A road."), ["1. Route 3. A road."]);
        assert_eq!(split_descriptions("A photo of a cat."), ["A photo of a cat."]);
        assert_eq!(split_descriptions("  "), Vec::<String>::new());
    }

    #[test]
    fn long_descriptions_are_split_at_sentences() {
        let sentence = "word ".repeat(40).trim().to_string() + ".";
        let text = vec![sentence.clone(); 5].join(" ");
        let parts = split_descriptions(&text);
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert!(parts.iter().all(|p| p.split_whitespace().count() <= MAX_DESCRIPTION_WORDS));
        assert_eq!(parts.join(" "), text, "nothing is lost");
    }

    #[test]
    fn class_maps_check_order_and_report_fallbacks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.tsv");
        std::fs::write(&p, "# header\n0\taquarium fish\taquarium_fish\texact\n1\t\tempty name\tlabel order\n2\tcar\tautomobile\thand\n")
            .unwrap();
        let map = ClassMap::read(&p).unwrap();
        assert_eq!(map.caption_keys(), ["aquarium_fish", "empty name", "automobile"]);
        let names: Vec<String> = ["aquarium_fish", "", "car"].map(String::from).to_vec();
        map.check_classes(&names).unwrap();
        let other: Vec<String> = ["car", "", "aquarium_fish"].map(String::from).to_vec();
        assert!(map.check_classes(&other).unwrap_err().to_string().contains("label order"));
        let caps: BTreeMap<String, Vec<String>> =
            [("aquarium_fish".to_string(), vec!["1. A fish.\n2. Another fish.".to_string()]), ("automobile".to_string(), vec![])].into();
        let r = resolve(&names, Some(&map), Some(&caps));
        assert_eq!(r.per_class[0], ["1. A fish.", "2. Another fish."]);
        assert_eq!(r.per_class[2], ["automobile"], "an empty caption list falls back to the key");
        assert_eq!(r.fallbacks, ["", "car"]);
        // Without a map, keys are the dataset's names ('aquarium_fish' is one).
        let r = resolve(&names, None, Some(&caps));
        assert_eq!(r.keys, names);
        assert_eq!(r.fallbacks, ["", "car"]);
        std::fs::write(&p, "0\ta\tk\n1\tb\tk\n").unwrap();
        assert!(ClassMap::read(&p).unwrap_err().to_string().contains("one to one"));
        std::fs::write(&p, "1\ta\tk\n").unwrap();
        assert!(ClassMap::read(&p).unwrap_err().to_string().contains("out of order"));
    }
}
