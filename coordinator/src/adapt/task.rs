//! A new task's inputs: its class list (strict: no empty line, no duplicate),
//! optional MLL-style captions, and its image folder (labelled ImageFolder or
//! WebDataset, or an unlabelled flat folder with `classnames.txt`). Every
//! problem here is an [`InputError`]: the person fixes the input.

use crate::captions;
use crate::hub::{input_error, InputError};
use image::ImageDecoder;
use mll_common::data::DEFAULT_TEMPLATE;
use mll_common::job::DatasetFormat;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Class names of a task in label order, checked: no empty line between names,
/// no name twice (surrounding whitespace is not part of a name).
pub fn parse_class_list(text: &str, origin: &str) -> Result<Vec<String>, InputError> {
    // A byte-order mark opening the file is an encoding mark, not text.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    // Trailing blank lines (a final newline) are fine; blank lines inside are not.
    let end = lines.iter().rposition(|l| !l.is_empty()).map_or(0, |i| i + 1);
    let mut names = Vec::with_capacity(end);
    let mut seen = BTreeSet::new();
    for (i, line) in lines[..end].iter().enumerate() {
        if line.is_empty() {
            return Err(InputError(format!(
                "{origin}: line {} is empty; write one class name per line, without blank lines (labels are line positions)",
                i + 1
            )));
        }
        check_class_name(line).map_err(|why| InputError(format!("{origin}: line {}: {why}", i + 1)))?;
        if !seen.insert(*line) {
            return Err(InputError(format!("{origin}: class '{line}' is listed twice (line {}); each class must appear once", i + 1)));
        }
        names.push(line.to_string());
    }
    if names.is_empty() {
        return Err(InputError(format!("{origin}: no class names; write one per line")));
    }
    Ok(names)
}

/// The longest class name taken, in characters: far above any real one (the
/// text embedder reads 256 tokens), low enough that a file of garbage is
/// refused with its line number instead of being embedded.
pub const MAX_CLASS_NAME_CHARS: usize = 1000;

/// Characters that print nothing: direction marks and embeddings, zero-width
/// spaces and joiners, word joiners and invisible operators, the soft hyphen,
/// a byte-order mark inside text.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{00ad}' | '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Why `name` (trimmed, non-empty) cannot be a class name: a control
/// character (NUL, escape...), nothing visible, or more than
/// [`MAX_CLASS_NAME_CHARS`] characters.
fn check_class_name(name: &str) -> Result<(), String> {
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!("the class name holds the control character U+{:04X}; class names are plain text", c as u32));
    }
    if name.chars().all(|c| c.is_whitespace() || is_invisible(c)) {
        return Err("the class name has no visible character (only direction marks, zero-width or other invisible characters)".into());
    }
    let n = name.chars().count();
    if n > MAX_CLASS_NAME_CHARS {
        return Err(format!("the class name is {n} characters long, above the limit of {MAX_CLASS_NAME_CHARS}; is this a class list?"));
    }
    Ok(())
}

pub fn read_class_list(path: &Path) -> Result<Vec<String>, InputError> {
    let text = std::fs::read_to_string(path).map_err(|e| InputError(format!("cannot read the class list {}: {e}", path.display())))?;
    parse_class_list(&text, &path.display().to_string())
}

/// The texts that stand for each class when matching classes to graph nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassTexts {
    pub names: Vec<String>,
    /// Per class: its captions, or its name alone when it has none.
    pub texts: Vec<Vec<String>>,
    /// Classes embedded by their name (no captions file, or not in it).
    pub by_name: Vec<String>,
    pub captions_file: Option<PathBuf>,
    /// The chat model that wrote the captions ([`super::class_captions`]).
    pub llm: Option<String>,
    /// Classes the LLM gave no usable captions for, with why.
    pub llm_unusable: Vec<(String, String)>,
}

impl ClassTexts {
    /// `captions`: a JSON object {class name: [caption, ...]} (MLL's format).
    /// Captions are split into their numbered descriptions exactly as the
    /// benchmark's planner splits them ([`captions::resolve`]), so a task and
    /// a benchmark dataset with the same classes get the same embeddings.
    pub fn new(names: Vec<String>, captions: Option<&Path>) -> Result<ClassTexts, InputError> {
        let all = match captions {
            Some(p) => Some(captions::read_captions(p).map_err(|e| InputError(e.to_string()))?),
            None => None,
        };
        let resolved = captions::resolve(&names, None, all.as_ref());
        Ok(ClassTexts {
            names,
            texts: resolved.per_class,
            by_name: resolved.fallbacks,
            captions_file: captions.map(Path::to_path_buf),
            llm: None,
            llm_unusable: vec![],
        })
    }

    /// The same classes with the captions an LLM wrote (class name ->
    /// descriptions), split as a captions file's are; a class missing from
    /// `captions` keeps its name (`unusable` says why).
    pub fn with_llm_captions(self, captions: &BTreeMap<String, Vec<String>>, model: &str, unusable: Vec<(String, String)>) -> ClassTexts {
        let resolved = captions::resolve(&self.names, None, Some(captions));
        ClassTexts { texts: resolved.per_class, by_name: resolved.fallbacks, llm: Some(model.to_string()), llm_unusable: unusable, ..self }
    }

    /// What the output says about how classes were embedded.
    pub fn how(&self) -> String {
        if let Some(model) = &self.llm {
            return match self.by_name.len() {
                0 => format!("captions written by the LLM {model}"),
                n => format!(
                    "captions written by the LLM {model}, except {n} class{} embedded by {} name ({})",
                    if n == 1 { "" } else { "es" },
                    if n == 1 { "its" } else { "their" },
                    self.llm_unusable.iter().map(|(c, why)| format!("'{c}': {why}")).collect::<Vec<_>>().join("; ")
                ),
            };
        }
        match (self.captions_file.is_some(), self.by_name.len()) {
            (false, _) => "class names (no captions given: pass --captions FILE for MLL's LLM-written captions, or --llm-model NAME to have a chat model write them)".into(),
            (true, 0) => "captions".into(),
            (true, n) if n == self.names.len() => "class names (the captions file has none of the classes)".into(),
            (true, n) => format!("captions; {n} classes without captions by their name"),
        }
    }
}

/// A task's image folder as `adapt` uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFolder {
    /// Absolute.
    pub dir: PathBuf,
    /// Relative to the hub's data root (what jobs carry).
    pub rel: String,
    pub format: DatasetFormat,
    pub classnames: Vec<String>,
    pub templates: Vec<String>,
    pub samples: u64,
    /// Whether samples carry labels (ImageFolder, WebDataset) or not (flat).
    pub labelled: bool,
    /// Each sample's name (relative path or `shard.tar:key`), in order.
    pub keys: Vec<String>,
}

/// Opens the task folder, which must lie under `data_root` (workers read it
/// from there), and checks that every image's header decodes, so a task that
/// cannot be evaluated fails before any job is published.
pub fn open_task(dir: &Path, data_root: &Path) -> anyhow::Result<TaskFolder> {
    let abs = std::fs::canonicalize(dir).map_err(|e| input_error(format!("task folder {}: {e}", dir.display())))?;
    let root = std::fs::canonicalize(data_root).unwrap_or_else(|_| data_root.to_path_buf());
    let rel = abs.strip_prefix(&root).map_err(|_| {
        input_error(format!(
            "task folder {} is not under the hub's data root {}: workers read task images from their data root; move or copy the task there",
            abs.display(),
            root.display()
        ))
    })?;
    let rel = rel
        .to_str()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| input_error(format!("task folder {} must be a sub-folder of the data root with a UTF-8 path", abs.display())))?;
    let format = mll_common::data::detect_format(&abs);
    let ds = mll_common::data::open_under(&root, &abs, format).map_err(|e| input_error(format!("task folder {}: {e}", abs.display())))?;
    let listed = abs.join("classnames.txt");
    let classnames = if listed.is_file() {
        read_class_list(&listed)?
    } else {
        ds.classnames().ok_or_else(|| input_error(format!("task folder {} names no classes: write {}", abs.display(), listed.display())))?
    };
    let templates = match ds.templates().map_err(|e| input_error(e.to_string()))? {
        Some(t) if !t.is_empty() => t,
        _ => vec![DEFAULT_TEMPLATE.to_string()],
    };
    if let Some(bad) = templates.iter().find(|t| !t.contains("{c}")) {
        return Err(input_error(format!("task folder {}: template '{bad}' has no {{c}} for the class name", abs.display())));
    }
    let samples = ds.count().map_err(|e| input_error(e.to_string()))?;
    if samples == 0 {
        return Err(input_error(format!("task folder {} has no images", abs.display())));
    }
    let mut keys = Vec::with_capacity(samples as usize);
    for s in ds.samples(0, samples).map_err(|e| input_error(e.to_string()))? {
        let s = s.map_err(|e| input_error(format!("task folder {}: {e}", abs.display())))?;
        let bytes = s.bytes().map_err(|e| input_error(e.to_string()))?;
        // An image the workers' decoder would refuse (not an image, or pixels
        // above its allocation limit) is refused here, before any job is published.
        check_decodable(&s.name, &abs, bytes.as_ref())?;
        drop(bytes);
        if format != DatasetFormat::Flat && (s.label < 0 || s.label as usize >= classnames.len()) {
            return Err(input_error(format!(
                "task image {} has label {} but the task has {} classes; check classnames.txt",
                s.name,
                s.label,
                classnames.len()
            )));
        }
        // Names relative to the task folder (WebDataset readers give `<folder>/<shard>.tar:<key>`).
        let dir_prefix = format!("{}/", abs.display());
        keys.push(s.name.strip_prefix(&dir_prefix).map(str::to_string).unwrap_or(s.name));
    }
    Ok(TaskFolder {
        dir: abs.clone(),
        rel: rel.to_string(),
        format,
        classnames,
        templates,
        samples,
        labelled: format != DatasetFormat::Flat,
        keys,
    })
}

/// Fails unless `bytes` (task image `name` in `dir`) is an image the workers
/// can decode: a known format whose pixels fit the decoder's allocation limit.
fn check_decodable(name: &str, dir: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let too_big = |what: String| {
        input_error(format!(
            "task image {name} in {} {what} (a decompression bomb, or a scan at full resolution); shrink or remove it",
            dir.display()
        ))
    };
    let decoder = match image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map(|r| r.into_decoder()) {
        Ok(Ok(d)) => d,
        Ok(Err(image::ImageError::Limits(e))) => return Err(too_big(format!("exceeds the decoder's limits: {e}"))),
        _ => {
            return Err(input_error(format!(
                "task image {name} in {} cannot be decoded (not a JPEG, PNG or WebP image); fix or remove it",
                dir.display()
            )))
        }
    };
    let limit = image::Limits::default().max_alloc.unwrap_or(u64::MAX);
    if decoder.total_bytes() > limit {
        let (w, h) = decoder.dimensions();
        return Err(too_big(format!(
            "is {w}x{h} pixels: decoding it needs {} MiB, above the decoder's limit of {} MiB",
            decoder.total_bytes() >> 20,
            limit >> 20
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_lists_refuse_blank_lines_and_duplicates() {
        assert_eq!(parse_class_list("cat\n dog \n\n", "t").unwrap(), ["cat", "dog"]);
        let e = parse_class_list("cat\n\ndog\n", "f.txt").unwrap_err().to_string();
        assert!(e.contains("f.txt: line 2 is empty"), "{e}");
        let e = parse_class_list("cat\ndog\ncat\n", "f.txt").unwrap_err().to_string();
        assert!(e.contains("'cat' is listed twice (line 3)"), "{e}");
        assert!(parse_class_list("\n\n", "f.txt").is_err());
        // A leading byte-order mark is dropped; invisible, control and huge names are refused with their line.
        assert_eq!(parse_class_list("\u{feff}cat\ndog\n", "t").unwrap(), ["cat", "dog"]);
        for (text, why) in [
            ("cat\n\u{200f}\n", "line 2: the class name has no visible character"),
            ("cat\n\u{200b}\u{200d}\n", "line 2: the class name has no visible character"),
            ("cat\nd\u{0}og\n", "line 2: the class name holds the control character U+0000"),
            ("cat\ndog\u{feff}x\nbird\n", "none"),
        ] {
            match parse_class_list(text, "f.txt") {
                Err(e) => assert!(e.to_string().contains(why), "{text:?}: {e}"),
                Ok(names) => assert_eq!((why, names.len()), ("none", 3), "{text:?}"),
            }
        }
        let long = format!("cat\n{}\n", "x".repeat(70_000));
        let e = parse_class_list(&long, "f.txt").unwrap_err().to_string();
        assert!(e.contains("line 2: the class name is 70000 characters long, above the limit of 1000"), "{e}");
    }

    #[test]
    fn classes_without_captions_fall_back_to_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let caps = dir.path().join("c.json");
        std::fs::write(&caps, r#"{"cat": ["a small cat", "a kitten"]}"#).unwrap();
        let t = ClassTexts::new(vec!["cat".into(), "dog".into()], Some(&caps)).unwrap();
        assert_eq!(t.texts, vec![vec!["a small cat".to_string(), "a kitten".into()], vec!["dog".into()]]);
        assert_eq!(t.by_name, ["dog"]);
        assert!(t.how().contains("1 classes without captions"));
        let t = ClassTexts::new(vec!["cat".into()], None).unwrap();
        assert!(t.how().starts_with("class names"));
    }
}
