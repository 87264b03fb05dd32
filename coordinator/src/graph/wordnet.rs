//! A minimal reader of WordNet 3.0's noun database (`data.noun`), enough for the
//! semantic graph: lemmas, hypernym pointers and glosses of noun synsets.
//!
//! Why not a crate: the WordNet crates on crates.io (`wordnet` 0.1.2 — "poorly
//! tested and incomplete" by its own README —, `wn-parser` 0.1.0, `wordnet-db`)
//! are single-author 0.1 releases; the part we need is one line format, below.
//!
//! Format relied on (WordNet 3.0 `wndb(5WN)`):
//! - License header lines start with two spaces; every other line is one synset.
//! - A synset's offset is the byte offset of its line in `data.noun`, so a synset
//!   is read by seeking to it (no index needed); the line must begin with the
//!   same 8-digit offset, which we check.
//! - Line: `offset lex_filenum ss_type w_cnt (word lex_id){w_cnt} p_cnt
//!   (symbol target_offset pos source/target){p_cnt} | gloss`, with `w_cnt` two
//!   hex digits, `lex_id` one hex digit, `p_cnt` three decimal digits. Words use
//!   `_` for spaces and keep their case.
//! - Pointer symbols used: `@` hypernym and `@i` instance hypernym (to nouns).
//! - Gloss: `definition; "example"; "example"`. The definition is the gloss with
//!   the double-quoted examples removed and `;`/spaces trimmed from both ends —
//!   what NLTK's `Synset.definition()` returns, which the paper's code used.
//! - ImageNet wnids are `n` followed by the 8-digit noun offset.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum WordNetError {
    #[error(
        "WordNet: cannot read {path}: {source}; install WordNet 3.0 (Debian: apt-get install wordnet-base, \
         or run scripts/setup) or point --wordnet / MLL_WORDNET_DIR at its dict folder"
    )]
    Read { path: String, source: std::io::Error },
    #[error("WordNet: {path}: no noun synset at offset {offset:08}; is this WordNet 3.0's data.noun?")]
    NoSynset { path: String, offset: u32 },
    #[error("WordNet: {path}: synset line at offset {offset:08} is malformed: {message}")]
    Malformed { path: String, offset: u32, message: String },
}

/// One noun synset, as read from `data.noun`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synset {
    pub offset: u32,
    /// Words of the synset in file order, underscores kept (`domestic_dog`).
    pub lemmas: Vec<String>,
    /// Targets of `@` and `@i` pointers, in file order, deduplicated.
    pub hypernyms: Vec<u32>,
    /// The whole gloss after `|`, trimmed.
    pub gloss: String,
    /// The gloss without its quoted examples (NLTK's `definition()`).
    pub definition: String,
}

impl Synset {
    /// `n` + 8-digit offset, the ImageNet spelling.
    pub fn wnid(&self) -> String {
        offset_to_wnid(self.offset)
    }

    /// The first lemma with underscores turned into spaces.
    pub fn display_lemma(&self) -> String {
        self.lemmas.first().map(|l| l.replace('_', " ")).unwrap_or_default()
    }
}

/// `n02084071` → 2084071; `None` unless `n` followed by exactly 8 digits.
pub fn wnid_to_offset(wnid: &str) -> Option<u32> {
    let digits = wnid.strip_prefix('n')?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub fn offset_to_wnid(offset: u32) -> String {
    format!("n{offset:08}")
}

/// Removes `"..."` spans (left to right, each quote closed by the next one; an
/// unpaired quote stays, as with NLTK's `re.sub(r'".*?"', '', gloss)`) and trims
/// `;` and spaces from both ends.
pub fn definition_from_gloss(gloss: &str) -> String {
    let mut out = String::with_capacity(gloss.len());
    let mut rest = gloss;
    while let Some(open) = rest.find('"') {
        match rest[open + 1..].find('"') {
            Some(close) => {
                out.push_str(&rest[..open]);
                rest = &rest[open + 1 + close + 1..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out.trim_matches(|c: char| c == ';' || c.is_whitespace()).to_string()
}

/// Parses one synset line of `data.noun` (without its newline).
pub fn parse_data_line(line: &str) -> Result<Synset, String> {
    let (fields, gloss) = line.split_once(" | ").ok_or("no ' | ' before the gloss")?;
    let mut it = fields.split_ascii_whitespace();
    let mut next = |what: &str| it.next().ok_or_else(|| format!("line ends before {what}"));
    let offset: u32 = next("the offset")?.parse().map_err(|e| format!("offset: {e}"))?;
    next("lex_filenum")?;
    let ss_type = next("ss_type")?;
    if ss_type != "n" {
        return Err(format!("ss_type is '{ss_type}', not 'n'"));
    }
    let w_cnt = usize::from_str_radix(next("w_cnt")?, 16).map_err(|e| format!("w_cnt: {e}"))?;
    let mut lemmas = Vec::with_capacity(w_cnt);
    for _ in 0..w_cnt {
        lemmas.push(next("a word")?.to_string());
        next("a lex_id")?;
    }
    let p_cnt: usize = next("p_cnt")?.parse().map_err(|e| format!("p_cnt: {e}"))?;
    let mut hypernyms = Vec::new();
    for _ in 0..p_cnt {
        let symbol = next("a pointer symbol")?;
        let target = next("a pointer target")?;
        let pos = next("a pointer pos")?;
        next("a pointer source/target")?;
        if (symbol == "@" || symbol == "@i") && pos == "n" {
            let t: u32 = target.parse().map_err(|e| format!("pointer target '{target}': {e}"))?;
            if !hypernyms.contains(&t) {
                hypernyms.push(t);
            }
        }
    }
    if lemmas.is_empty() {
        return Err("synset has no words".into());
    }
    let gloss = gloss.trim().to_string();
    let definition = definition_from_gloss(&gloss);
    Ok(Synset { offset, lemmas, hypernyms, gloss, definition })
}

/// WordNet's noun database held in memory; synsets are parsed on demand.
pub struct WordNet {
    path: PathBuf,
    data: Vec<u8>,
}

impl WordNet {
    /// Reads `<dir>/data.noun`.
    pub fn open(dir: &Path) -> Result<Self, WordNetError> {
        let path = dir.join("data.noun");
        let data = std::fs::read(&path).map_err(|source| WordNetError::Read { path: path.display().to_string(), source })?;
        Ok(WordNet { path, data })
    }

    /// From the bytes of a `data.noun` (tests use small hand-written ones).
    pub fn from_bytes(path: impl Into<PathBuf>, data: Vec<u8>) -> Self {
        WordNet { path: path.into(), data }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The synset at `offset`, or an error when no synset line starts there.
    pub fn synset(&self, offset: u32) -> Result<Synset, WordNetError> {
        let path = || self.path.display().to_string();
        let start = offset as usize;
        let at_line_start = start == 0 || self.data.get(start - 1) == Some(&b'\n');
        let key = format!("{offset:08} ");
        if !at_line_start || !self.data.get(start..).is_some_and(|rest| rest.starts_with(key.as_bytes())) {
            return Err(WordNetError::NoSynset { path: path(), offset });
        }
        let rest = &self.data[start..];
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let line = std::str::from_utf8(&rest[..end]).map_err(|e| WordNetError::Malformed {
            path: path(),
            offset,
            message: format!("not UTF-8: {e}"),
        })?;
        let synset = parse_data_line(line.trim_end_matches('\r'))
            .map_err(|message| WordNetError::Malformed { path: path(), offset, message })?;
        if synset.offset != offset {
            return Err(WordNetError::NoSynset { path: path(), offset });
        }
        Ok(synset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_synset_line() {
        let line = "02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 004 @ 02083346 n 0000 @ 01317541 n 0000 \
                    #m 02083863 n 0000 ~ 01322604 n 0000 | a member of the genus Canis; occurs in many breeds; \
                    \"the dog barked all night\"  ";
        let s = parse_data_line(line).unwrap();
        assert_eq!(s.offset, 2084071);
        assert_eq!(s.lemmas, ["dog", "domestic_dog", "Canis_familiaris"]);
        assert_eq!(s.hypernyms, [2083346, 1317541]);
        assert_eq!(s.definition, "a member of the genus Canis; occurs in many breeds");
        assert_eq!(s.wnid(), "n02084071");
        assert_eq!(wnid_to_offset("n02084071"), Some(2084071));
        assert_eq!(wnid_to_offset("n0208407"), None);
        assert_eq!(wnid_to_offset("dog"), None);
        assert_eq!(definition_from_gloss(r#"a "b" c; "d"; "e "#), "a  c; ; \"e");
    }

    #[test]
    fn instance_hypernyms_count_and_hex_word_counts_parse() {
        // 0b = 11 words would be hex; here 0a = 10.
        let words: Vec<String> = (0..10).map(|i| format!("w{i} 0")).collect();
        let line = format!("00000100 03 n 0a {} 001 @i 00001740 n 0000 | x", words.join(" "));
        let s = parse_data_line(&line).unwrap();
        assert_eq!(s.lemmas.len(), 10);
        assert_eq!(s.hypernyms, [1740]);
        assert!(parse_data_line("00000100 03 v 01 run 0 000 | go").is_err());
    }

    #[test]
    fn seeks_by_offset_and_rejects_other_offsets() {
        let head = "  1 license\n";
        let line = format!("{:08} 03 n 01 entity 0 000 | that which exists  \n", head.len());
        let wn = WordNet::from_bytes("mem", format!("{head}{line}").into_bytes());
        let s = wn.synset(head.len() as u32).unwrap();
        assert_eq!(s.display_lemma(), "entity");
        assert_eq!(s.definition, "that which exists");
        let err = wn.synset(3).unwrap_err().to_string();
        assert!(err.contains("00000003"), "{err}");
    }
}
