//! A minimal reader of the WordNet 3.0 database files, enough for the semantic
//! graph: synsets of every part of speech (lemmas, hypernym and hyponym
//! pointers, glosses) and the lemma lookup NLTK's `wn.synsets(name)` does,
//! which the released MLL code used to pick a class's senses.
//!
//! Why not a crate: the WordNet crates on crates.io (`wordnet` 0.1.2 — "poorly
//! tested and incomplete" by its own README —, `wn-parser` 0.1.0, `wordnet-db`)
//! are single-author 0.1 releases; the part we need is three line formats, below.
//!
//! Files read from the dict folder (WordNet 3.0 `wndb(5WN)`, `morphy(7WN)`):
//! `data.{noun,verb,adj,adv}`, `index.{noun,verb,adj,adv}`, `{noun,verb,adj,adv}.exc`.
//! - License header lines start with two spaces; every other line is one entry.
//! - A synset's offset is the byte offset of its line in its `data.*` file, so a
//!   synset is read by seeking to it; the line must begin with the same 8-digit
//!   offset, which we check.
//! - Data line: `offset lex_filenum ss_type w_cnt (word lex_id){w_cnt} p_cnt
//!   (symbol target_offset pos source/target){p_cnt} [frames] | gloss`, with
//!   `w_cnt` two hex digits, `p_cnt` three decimal digits; `ss_type` is `n`, `v`,
//!   `a`, `s` (adjective satellite, in `data.adj`) or `r`. Words use `_` for
//!   spaces and keep their case; adjectives may carry a syntactic marker such as
//!   `(p)`, which we drop as NLTK does.
//! - Pointers used: `@` hypernym and `@i` instance hypernym (`hypernyms`), `~`
//!   hyponym with source/target `0000` (`hyponyms`: NLTK's `Synset.hyponyms()`,
//!   which leaves out `~i` instance hyponyms).
//! - Index line: `lemma pos synset_cnt p_cnt (ptr_symbol){p_cnt} sense_cnt
//!   tagsense_cnt (synset_offset){synset_cnt}`; lemmas are lower case.
//! - Exception line: `inflected base [base ...]`; a later line for the same
//!   inflected form replaces an earlier one (as NLTK reads them).
//! - Gloss: `definition; "example"; "example"`. The definition is the gloss with
//!   the double-quoted examples removed and `;`/spaces trimmed from both ends —
//!   what NLTK's `Synset.definition()` returns, which the paper's code used.
//! - Node ids are the `ss_type` letter and the 8-digit offset: ImageNet wnids
//!   for nouns (`n02084071`), `v01411888` for a verb, `s…` for a satellite.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum WordNetError {
    #[error(
        "WordNet: cannot read {path}: {source}; install WordNet 3.0 (Debian: apt-get install wordnet-base, \
         or run scripts/setup) or point --wordnet / MLL_WORDNET_DIR at its dict folder"
    )]
    Read { path: String, source: std::io::Error },
    #[error("WordNet: {path}: no synset at offset {offset:08}; is this WordNet 3.0's dict folder?")]
    NoSynset { path: String, offset: u32 },
    #[error("WordNet: {path}: synset line at offset {offset:08} is malformed: {message}")]
    Malformed { path: String, offset: u32, message: String },
    #[error("WordNet: {path} line {line}: {message}; is this WordNet 3.0's dict folder?")]
    BadIndex { path: String, line: usize, message: String },
}

/// A part of speech, i.e. one set of `data`/`index`/`exc` files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pos {
    Noun,
    Verb,
    Adj,
    Adv,
}

impl Pos {
    /// In NLTK's `POS_LIST` order, which `wn.synsets(name)` follows.
    pub const ALL: [Pos; 4] = [Pos::Noun, Pos::Verb, Pos::Adj, Pos::Adv];

    pub fn file_suffix(self) -> &'static str {
        match self {
            Pos::Noun => "noun",
            Pos::Verb => "verb",
            Pos::Adj => "adj",
            Pos::Adv => "adv",
        }
    }

    /// From a data line's `ss_type`, a pointer's or an index line's pos letter;
    /// satellites (`s`) live in the adjective files.
    pub fn from_letter(letter: &str) -> Option<Pos> {
        match letter {
            "n" => Some(Pos::Noun),
            "v" => Some(Pos::Verb),
            "a" | "s" => Some(Pos::Adj),
            "r" => Some(Pos::Adv),
            _ => None,
        }
    }

    fn slot(self) -> usize {
        self as usize
    }

    /// `morphy(7WN)`'s detachment rules, in NLTK 3.9.1's order.
    fn substitutions(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Pos::Noun => &[
                ("s", ""),
                ("ses", "s"),
                ("ves", "f"),
                ("xes", "x"),
                ("zes", "z"),
                ("ches", "ch"),
                ("shes", "sh"),
                ("men", "man"),
                ("ies", "y"),
            ],
            Pos::Verb => &[("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")],
            Pos::Adj => &[("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
            Pos::Adv => &[],
        }
    }
}

/// Where a synset is: its part of speech's data file and its offset there.
/// Ordered by (part of speech, offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SynsetRef {
    pub pos: Pos,
    pub offset: u32,
}

impl SynsetRef {
    pub fn noun(offset: u32) -> Self {
        SynsetRef { pos: Pos::Noun, offset }
    }
}

/// One synset, as read from its `data.*` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synset {
    pub pos: Pos,
    /// `n`, `v`, `a`, `s` or `r`.
    pub ss_type: char,
    pub offset: u32,
    /// Words of the synset in file order, underscores kept (`domestic_dog`).
    pub lemmas: Vec<String>,
    /// Targets of `@` and `@i` pointers, in file order, deduplicated.
    pub hypernyms: Vec<SynsetRef>,
    /// Targets of semantic `~` pointers, in file order, deduplicated.
    pub hyponyms: Vec<SynsetRef>,
    /// The whole gloss after `|`, trimmed.
    pub gloss: String,
    /// The gloss without its quoted examples (NLTK's `definition()`).
    pub definition: String,
}

impl Synset {
    /// `ss_type` + 8-digit offset: the ImageNet wnid for a noun.
    pub fn id(&self) -> String {
        format!("{}{:08}", self.ss_type, self.offset)
    }

    pub fn reference(&self) -> SynsetRef {
        SynsetRef { pos: self.pos, offset: self.offset }
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

/// Parses one synset line of the `pos` data file (without its newline).
pub fn parse_data_line(line: &str, pos: Pos) -> Result<Synset, String> {
    let (fields, gloss) = line.split_once(" | ").ok_or("no ' | ' before the gloss")?;
    let mut it = fields.split_ascii_whitespace();
    let mut next = |what: &str| it.next().ok_or_else(|| format!("line ends before {what}"));
    let offset: u32 = next("the offset")?.parse().map_err(|e| format!("offset: {e}"))?;
    next("lex_filenum")?;
    let ss_type = next("ss_type")?;
    if Pos::from_letter(ss_type) != Some(pos) {
        return Err(format!("ss_type is '{ss_type}', not a {} synset", pos.file_suffix()));
    }
    let ss_type = ss_type.chars().next().expect("a known one-letter ss_type");
    let w_cnt = usize::from_str_radix(next("w_cnt")?, 16).map_err(|e| format!("w_cnt: {e}"))?;
    let mut lemmas = Vec::with_capacity(w_cnt);
    for _ in 0..w_cnt {
        let word = next("a word")?;
        // An adjective's syntactic marker, e.g. `galore(ip)`.
        let word = match word.find('(') {
            Some(i) if word.ends_with(')') => &word[..i],
            _ => word,
        };
        lemmas.push(word.to_string());
        next("a lex_id")?;
    }
    let p_cnt: usize = next("p_cnt")?.parse().map_err(|e| format!("p_cnt: {e}"))?;
    let (mut hypernyms, mut hyponyms) = (Vec::new(), Vec::new());
    for _ in 0..p_cnt {
        let symbol = next("a pointer symbol")?;
        let target = next("a pointer target")?;
        let target_pos = next("a pointer pos")?;
        let source_target = next("a pointer source/target")?;
        let list = match symbol {
            "@" | "@i" => &mut hypernyms,
            "~" if source_target == "0000" => &mut hyponyms,
            _ => continue,
        };
        let offset: u32 = target.parse().map_err(|e| format!("pointer target '{target}': {e}"))?;
        let pos = Pos::from_letter(target_pos).ok_or_else(|| format!("pointer pos '{target_pos}'"))?;
        let r = SynsetRef { pos, offset };
        if !list.contains(&r) {
            list.push(r);
        }
    }
    if lemmas.is_empty() {
        return Err("synset has no words".into());
    }
    let gloss = gloss.trim().to_string();
    let definition = definition_from_gloss(&gloss);
    Ok(Synset { pos, ss_type, offset, lemmas, hypernyms, hyponyms, gloss, definition })
}

/// lemma → synset offsets per part of speech (index order).
type LemmaIndex = HashMap<String, [Vec<u32>; 4]>;

/// The WordNet database held in memory; synsets are parsed on demand.
pub struct WordNet {
    dir: PathBuf,
    data: [Vec<u8>; 4],
    index: LemmaIndex,
    exceptions: [HashMap<String, Vec<String>>; 4],
}

fn read(path: &Path) -> Result<Vec<u8>, WordNetError> {
    std::fs::read(path).map_err(|source| WordNetError::Read { path: path.display().to_string(), source })
}

fn utf8(path: &Path, bytes: Vec<u8>) -> Result<String, WordNetError> {
    String::from_utf8(bytes).map_err(|e| WordNetError::BadIndex {
        path: path.display().to_string(),
        line: 0,
        message: format!("not UTF-8: {e}"),
    })
}

fn parse_index(path: &Path, text: &str, pos: Pos, index: &mut LemmaIndex) -> Result<(), WordNetError> {
    for (i, line) in text.lines().enumerate() {
        if line.starts_with(' ') || line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| WordNetError::BadIndex { path: path.display().to_string(), line: i + 1, message };
        let tokens: Vec<&str> = line.split_ascii_whitespace().collect();
        let number = |k: usize| -> Result<usize, WordNetError> {
            tokens.get(k).and_then(|t| t.parse().ok()).ok_or_else(|| bad(format!("field {} is not a number", k + 1)))
        };
        let synset_cnt = number(2)?;
        let p_cnt = number(3)?;
        let first = 4 + p_cnt + 2;
        let offsets = tokens
            .get(first..first + synset_cnt)
            .ok_or_else(|| bad(format!("fewer than {synset_cnt} synset offsets")))?
            .iter()
            .map(|t| t.parse::<u32>().map_err(|e| bad(format!("synset offset '{t}': {e}"))))
            .collect::<Result<Vec<u32>, _>>()?;
        if Pos::from_letter(tokens[1]) != Some(pos) {
            return Err(bad(format!("pos '{}' in the {} index", tokens[1], pos.file_suffix())));
        }
        index.entry(tokens[0].to_string()).or_default()[pos.slot()] = offsets;
    }
    Ok(())
}

impl WordNet {
    /// Reads the data, index and exception files of every part of speech from
    /// a WordNet 3.0 dict folder (Debian: /usr/share/wordnet).
    pub fn open(dir: &Path) -> Result<Self, WordNetError> {
        let mut data: [Vec<u8>; 4] = Default::default();
        let mut index = LemmaIndex::new();
        let mut exceptions: [HashMap<String, Vec<String>>; 4] = Default::default();
        for pos in Pos::ALL {
            data[pos.slot()] = read(&dir.join(format!("data.{}", pos.file_suffix())))?;
        }
        for pos in Pos::ALL {
            let path = dir.join(format!("index.{}", pos.file_suffix()));
            let text = utf8(&path, read(&path)?)?;
            parse_index(&path, &text, pos, &mut index)?;
            let path = dir.join(format!("{}.exc", pos.file_suffix()));
            let text = utf8(&path, read(&path)?)?;
            for line in text.lines() {
                let mut words = line.split_ascii_whitespace();
                if let Some(form) = words.next() {
                    exceptions[pos.slot()].insert(form.to_string(), words.map(str::to_string).collect());
                }
            }
        }
        Ok(WordNet { dir: dir.to_path_buf(), data, index, exceptions })
    }

    /// The dict folder it was read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn data_path(&self, pos: Pos) -> String {
        self.dir.join(format!("data.{}", pos.file_suffix())).display().to_string()
    }

    /// The synset at `r`, or an error when no synset line starts there.
    pub fn synset(&self, r: SynsetRef) -> Result<Synset, WordNetError> {
        let path = || self.data_path(r.pos);
        let data = &self.data[r.pos.slot()];
        let (start, offset) = (r.offset as usize, r.offset);
        let at_line_start = start == 0 || data.get(start - 1) == Some(&b'\n');
        let key = format!("{offset:08} ");
        if !at_line_start || !data.get(start..).is_some_and(|rest| rest.starts_with(key.as_bytes())) {
            return Err(WordNetError::NoSynset { path: path(), offset });
        }
        let rest = &data[start..];
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let line = std::str::from_utf8(&rest[..end]).map_err(|e| WordNetError::Malformed {
            path: path(),
            offset,
            message: format!("not UTF-8: {e}"),
        })?;
        let synset = parse_data_line(line.trim_end_matches('\r'), r.pos).map_err(|message| WordNetError::Malformed {
            path: path(),
            offset,
            message,
        })?;
        if synset.offset != offset {
            return Err(WordNetError::NoSynset { path: path(), offset });
        }
        Ok(synset)
    }

    /// NLTK 3.9.1's `_morphy(form, pos)`: the exception list's base forms if
    /// `form` is listed, else the detachment rules applied once; of `form` and
    /// those, the ones the index holds for `pos`, in order, without repeats.
    pub fn morphy(&self, form: &str, pos: Pos) -> Vec<String> {
        let candidates: Vec<String> = match self.exceptions[pos.slot()].get(form) {
            Some(bases) => bases.clone(),
            None => pos.substitutions().iter().filter_map(|(old, new)| form.strip_suffix(old).map(|stem| format!("{stem}{new}"))).collect(),
        };
        let mut out: Vec<String> = Vec::new();
        for c in std::iter::once(form.to_string()).chain(candidates) {
            if !out.contains(&c) && self.index.get(&c).is_some_and(|per_pos| !per_pos[pos.slot()].is_empty()) {
                out.push(c);
            }
        }
        out
    }

    /// NLTK's `wn.synsets(name)` with no part of speech, as the released MLL
    /// code calls it: the name lower-cased, then for every part of speech
    /// (noun, verb, adjective, adverb) every synset of every [`Self::morphy`]
    /// form, in index order (repeats possible, as in NLTK).
    pub fn synsets_of(&self, name: &str) -> Vec<SynsetRef> {
        let lemma = name.to_lowercase();
        let mut out = Vec::new();
        for pos in Pos::ALL {
            for form in self.morphy(&lemma, pos) {
                out.extend(self.index[&form][pos.slot()].iter().map(|&offset| SynsetRef { pos, offset }));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_synset_line() {
        let line = "02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 005 @ 02083346 n 0000 @ 01317541 n 0000 \
                    #m 02083863 n 0000 ~ 01322604 n 0000 ~i 09999999 n 0000 | a member of the genus Canis; occurs in many breeds; \
                    \"the dog barked all night\"  ";
        let s = parse_data_line(line, Pos::Noun).unwrap();
        assert_eq!(s.offset, 2084071);
        assert_eq!(s.lemmas, ["dog", "domestic_dog", "Canis_familiaris"]);
        assert_eq!(s.hypernyms, [SynsetRef::noun(2083346), SynsetRef::noun(1317541)]);
        assert_eq!(s.hyponyms, [SynsetRef::noun(1322604)], "~i instance hyponyms are not hyponyms");
        assert_eq!(s.definition, "a member of the genus Canis; occurs in many breeds");
        assert_eq!(s.id(), "n02084071");
        assert_eq!(wnid_to_offset("n02084071"), Some(2084071));
        assert_eq!(wnid_to_offset("n0208407"), None);
        assert_eq!(wnid_to_offset("dog"), None);
        assert_eq!(definition_from_gloss(r#"a "b" c; "d"; "e "#), "a  c; ; \"e");
    }

    #[test]
    fn other_parts_of_speech_markers_and_lexical_pointers() {
        // 0a = 10 words (hex); an instance hypernym counts as a hypernym.
        let words: Vec<String> = (0..10).map(|i| format!("w{i} 0")).collect();
        let line = format!("00000100 03 n 0a {} 001 @i 00001740 n 0000 | x", words.join(" "));
        let s = parse_data_line(&line, Pos::Noun).unwrap();
        assert_eq!(s.lemmas.len(), 10);
        assert_eq!(s.hypernyms, [SynsetRef::noun(1740)]);
        assert!(parse_data_line("00000100 03 v 01 run 0 000 | go", Pos::Noun).is_err(), "a verb line in data.noun");
        // A verb with a troponym (`~`) and frames after the pointers.
        let v = parse_data_line("00000200 30 v 01 bark 0 002 @ 00000300 v 0000 ~ 00000400 v 0000 01 + 02 00 | speak", Pos::Verb).unwrap();
        assert_eq!((v.id(), v.hyponyms.clone()), ("v00000200".into(), vec![SynsetRef { pos: Pos::Verb, offset: 400 }]));
        // A satellite with a marked word and a lexical `~` (not 0000): no hyponym.
        let a = parse_data_line("00000500 00 s 01 galore(ip) 0 001 ~ 00000600 a 0101 | abundant", Pos::Adj).unwrap();
        assert_eq!((a.id(), a.lemmas.clone(), a.hyponyms.len()), ("s00000500".into(), vec!["galore".to_string()], 0));
    }

    fn dict(dir: &Path, files: &[(&str, &str)]) {
        for pos in Pos::ALL {
            for name in
                [format!("data.{}", pos.file_suffix()), format!("index.{}", pos.file_suffix()), format!("{}.exc", pos.file_suffix())]
            {
                let text = files.iter().find(|(n, _)| *n == name).map_or("", |(_, t)| t);
                std::fs::write(dir.join(name), text).unwrap();
            }
        }
    }

    #[test]
    fn seeks_by_offset_and_rejects_other_offsets() {
        let tmp = tempfile::tempdir().unwrap();
        let head = "  1 license\n";
        let line = format!("{:08} 03 n 01 entity 0 000 | that which exists  \n", head.len());
        dict(tmp.path(), &[("data.noun", &format!("{head}{line}"))]);
        let wn = WordNet::open(tmp.path()).unwrap();
        let s = wn.synset(SynsetRef::noun(head.len() as u32)).unwrap();
        assert_eq!(s.display_lemma(), "entity");
        assert_eq!(s.definition, "that which exists");
        let err = wn.synset(SynsetRef::noun(3)).unwrap_err().to_string();
        assert!(err.contains("00000003") && err.contains("data.noun"), "{err}");
        std::fs::remove_file(tmp.path().join("index.adv")).unwrap();
        let err = WordNet::open(tmp.path()).err().unwrap().to_string();
        assert!(err.contains("index.adv") && err.contains("wordnet-base"), "{err}");
    }

    #[test]
    fn synsets_of_follows_nltk_morphy() {
        let tmp = tempfile::tempdir().unwrap();
        dict(
            tmp.path(),
            &[
                ("index.noun", "  1 license\nglass n 2 0 2 0 00000010 00000020\nglasses n 1 0 1 0 00000030\nmouse n 1 0 1 0 00000040\n"),
                ("index.verb", "glass v 1 0 1 0 00000050\n"),
                ("noun.exc", "mice mouse\n"),
            ],
        );
        let wn = WordNet::open(tmp.path()).unwrap();
        let n = |o| SynsetRef::noun(o);
        // The form itself and what one rule gives, when indexed ("glasse" is not).
        assert_eq!(wn.morphy("glasses", Pos::Noun), ["glasses", "glass"]);
        // Lower-cased; the verb rule "es" → "" finds the verb "glass" too, as in NLTK.
        let v = SynsetRef { pos: Pos::Verb, offset: 50 };
        assert_eq!(wn.synsets_of("Glasses"), [n(30), n(10), n(20), v]);
        assert_eq!(wn.synsets_of("glass"), [n(10), n(20), v], "nouns, then verbs");
        // An exception replaces the rules.
        assert_eq!(wn.synsets_of("mice"), [n(40)]);
        assert!(wn.synsets_of("_white").is_empty());
    }
}
