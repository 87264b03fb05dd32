//! open_clip's text cleaning, before tokenisation.
//!
//! open_clip cleans text with `ftfy.fix_text`, `html.unescape` twice, a
//! whitespace collapse and (CLIP BPE) lower-casing. ftfy has no Rust port; we
//! implement the fixes of its default pipeline that apply to prompts and
//! class names (entities, C1 controls, ligatures, full-width forms, curly
//! quotes, terminal escapes, control characters, NFC), looping to a fixed
//! point as ftfy does. Not implemented: ftfy's mojibake repair
//! (`fix_encoding`, e.g. "cafÃ©" → "café").

use super::artifact::TextClean;
use unicode_normalization::UnicodeNormalization;

pub const SOT: &str = "<start_of_text>";
pub const EOT: &str = "<end_of_text>";

/// Python's `str.isspace`: Unicode White_Space plus the ASCII separators
/// U+001C..U+001F, which Rust's `char::is_whitespace` leaves out.
pub fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// open_clip's `whitespace_clean`: `" ".join(text.split())`.
pub fn whitespace_clean(text: &str) -> String {
    text.split(py_isspace).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Python's `html.unescape`, exactly: numeric references with its fix-ups
/// (Windows-1252 for 0x80..0x9f, U+FFFD for surrogates and out-of-range
/// values, nothing for non-characters), named references with `;` (the
/// HTML5 table of html-escape), and the 106 legacy names that also match
/// without `;`, longest prefix first ("&notit;" → "¬it;").
pub fn html_unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '&' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        match charref(&chars[i + 1..]) {
            Some((consumed, replacement)) => {
                out.push_str(&replacement);
                i += 1 + consumed;
            }
            None => {
                out.push('&');
                i += 1;
            }
        }
    }
    out
}

/// Matches Python's `_charref` regex after '&'; returns (chars consumed, replacement).
fn charref(s: &[char]) -> Option<(usize, String)> {
    if s.first() == Some(&'#') {
        let hex = matches!(s.get(1), Some('x') | Some('X'));
        let start = if hex { 2 } else { 1 };
        let digits = s[start..].iter().take_while(|c| if hex { c.is_ascii_hexdigit() } else { c.is_ascii_digit() }).count();
        if digits == 0 {
            return None;
        }
        let mut end = start + digits;
        if s.get(end) == Some(&';') {
            end += 1;
        }
        let radix = if hex { 16 } else { 10 };
        let num = s[start..start + digits]
            .iter()
            .fold(0u64, |acc, c| acc.saturating_mul(radix).saturating_add(c.to_digit(radix as u32).unwrap() as u64));
        return Some((end, numeric_charref(num)));
    }
    let name_len = s.iter().take(32).take_while(|c| !matches!(c, '\t' | '\n' | '\x0c' | ' ' | '<' | '&' | '#' | ';')).count();
    if name_len == 0 {
        return None;
    }
    let with_semi = s.get(name_len) == Some(&';');
    let end = name_len + usize::from(with_semi);
    let name: String = s[..name_len].iter().collect();
    if with_semi {
        let entity = format!("&{name};");
        let decoded = html_escape::decode_html_entities(&entity);
        if decoded != entity {
            return Some((end, decoded.into_owned()));
        }
    } else if let Some(c) = legacy_entity(&name) {
        return Some((end, c.to_string()));
    }
    // Longest legacy name that prefixes the match; the rest stays as text.
    let whole: String = s[..end].iter().collect();
    let chars: Vec<char> = whole.chars().collect();
    for x in (2..chars.len()).rev() {
        let prefix: String = chars[..x].iter().collect();
        if let Some(c) = legacy_entity(&prefix) {
            let rest: String = chars[x..].iter().collect();
            return Some((end, format!("{c}{rest}")));
        }
    }
    // Python gives the match back unchanged.
    None
}

fn numeric_charref(num: u64) -> String {
    const CP1252: [char; 32] = [
        '\u{20ac}', '\u{81}', '\u{201a}', '\u{192}', '\u{201e}', '\u{2026}', '\u{2020}', '\u{2021}', '\u{2c6}', '\u{2030}', '\u{160}',
        '\u{2039}', '\u{152}', '\u{8d}', '\u{17d}', '\u{8f}', '\u{90}', '\u{2018}', '\u{2019}', '\u{201c}', '\u{201d}', '\u{2022}',
        '\u{2013}', '\u{2014}', '\u{2dc}', '\u{2122}', '\u{161}', '\u{203a}', '\u{153}', '\u{9d}', '\u{17e}', '\u{178}',
    ];
    match num {
        0 => "\u{fffd}".into(),
        0x0d => "\r".into(),
        0x80..=0x9f => CP1252[(num - 0x80) as usize].to_string(),
        0xd800..=0xdfff => "\u{fffd}".into(),
        n if n > 0x10ffff => "\u{fffd}".into(),
        0x1..=0x8 | 0xb | 0xe..=0x1f | 0x7f | 0xfdd0..=0xfdef => String::new(),
        n if n & 0xfffe == 0xfffe => String::new(),
        n => char::from_u32(n as u32).map(String::from).unwrap_or_else(|| "\u{fffd}".into()),
    }
}

fn legacy_entity(name: &str) -> Option<char> {
    LEGACY_ENTITIES.binary_search_by(|(k, _)| k.cmp(&name)).ok().map(|i| LEGACY_ENTITIES[i].1)
}

/// html.entities.html5 names without the semicolon (sorted, for binary search).
const LEGACY_ENTITIES: [(&str, char); 106] = [
    ("AElig", '\u{c6}'),
    ("AMP", '\u{26}'),
    ("Aacute", '\u{c1}'),
    ("Acirc", '\u{c2}'),
    ("Agrave", '\u{c0}'),
    ("Aring", '\u{c5}'),
    ("Atilde", '\u{c3}'),
    ("Auml", '\u{c4}'),
    ("COPY", '\u{a9}'),
    ("Ccedil", '\u{c7}'),
    ("ETH", '\u{d0}'),
    ("Eacute", '\u{c9}'),
    ("Ecirc", '\u{ca}'),
    ("Egrave", '\u{c8}'),
    ("Euml", '\u{cb}'),
    ("GT", '\u{3e}'),
    ("Iacute", '\u{cd}'),
    ("Icirc", '\u{ce}'),
    ("Igrave", '\u{cc}'),
    ("Iuml", '\u{cf}'),
    ("LT", '\u{3c}'),
    ("Ntilde", '\u{d1}'),
    ("Oacute", '\u{d3}'),
    ("Ocirc", '\u{d4}'),
    ("Ograve", '\u{d2}'),
    ("Oslash", '\u{d8}'),
    ("Otilde", '\u{d5}'),
    ("Ouml", '\u{d6}'),
    ("QUOT", '\u{22}'),
    ("REG", '\u{ae}'),
    ("THORN", '\u{de}'),
    ("Uacute", '\u{da}'),
    ("Ucirc", '\u{db}'),
    ("Ugrave", '\u{d9}'),
    ("Uuml", '\u{dc}'),
    ("Yacute", '\u{dd}'),
    ("aacute", '\u{e1}'),
    ("acirc", '\u{e2}'),
    ("acute", '\u{b4}'),
    ("aelig", '\u{e6}'),
    ("agrave", '\u{e0}'),
    ("amp", '\u{26}'),
    ("aring", '\u{e5}'),
    ("atilde", '\u{e3}'),
    ("auml", '\u{e4}'),
    ("brvbar", '\u{a6}'),
    ("ccedil", '\u{e7}'),
    ("cedil", '\u{b8}'),
    ("cent", '\u{a2}'),
    ("copy", '\u{a9}'),
    ("curren", '\u{a4}'),
    ("deg", '\u{b0}'),
    ("divide", '\u{f7}'),
    ("eacute", '\u{e9}'),
    ("ecirc", '\u{ea}'),
    ("egrave", '\u{e8}'),
    ("eth", '\u{f0}'),
    ("euml", '\u{eb}'),
    ("frac12", '\u{bd}'),
    ("frac14", '\u{bc}'),
    ("frac34", '\u{be}'),
    ("gt", '\u{3e}'),
    ("iacute", '\u{ed}'),
    ("icirc", '\u{ee}'),
    ("iexcl", '\u{a1}'),
    ("igrave", '\u{ec}'),
    ("iquest", '\u{bf}'),
    ("iuml", '\u{ef}'),
    ("laquo", '\u{ab}'),
    ("lt", '\u{3c}'),
    ("macr", '\u{af}'),
    ("micro", '\u{b5}'),
    ("middot", '\u{b7}'),
    ("nbsp", '\u{a0}'),
    ("not", '\u{ac}'),
    ("ntilde", '\u{f1}'),
    ("oacute", '\u{f3}'),
    ("ocirc", '\u{f4}'),
    ("ograve", '\u{f2}'),
    ("ordf", '\u{aa}'),
    ("ordm", '\u{ba}'),
    ("oslash", '\u{f8}'),
    ("otilde", '\u{f5}'),
    ("ouml", '\u{f6}'),
    ("para", '\u{b6}'),
    ("plusmn", '\u{b1}'),
    ("pound", '\u{a3}'),
    ("quot", '\u{22}'),
    ("raquo", '\u{bb}'),
    ("reg", '\u{ae}'),
    ("sect", '\u{a7}'),
    ("shy", '\u{ad}'),
    ("sup1", '\u{b9}'),
    ("sup2", '\u{b2}'),
    ("sup3", '\u{b3}'),
    ("szlig", '\u{df}'),
    ("thorn", '\u{fe}'),
    ("times", '\u{d7}'),
    ("uacute", '\u{fa}'),
    ("ucirc", '\u{fb}'),
    ("ugrave", '\u{f9}'),
    ("uml", '\u{a8}'),
    ("uuml", '\u{fc}'),
    ("yacute", '\u{fd}'),
    ("yen", '\u{a5}'),
    ("yuml", '\u{ff}'),
];

/// ftfy's `unescape_html`: only `&name;` / `&#n;` forms (with the semicolon),
/// so informal text like "this&not that" is left alone.
fn ftfy_unescape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let body_start = if tail[1..].starts_with('#') { 2 } else { 1 };
        let body_len = tail[body_start..].bytes().take(25).take_while(|b| b.is_ascii_alphanumeric()).count();
        let end = body_start + body_len;
        if (1..=24).contains(&body_len) && tail[end..].starts_with(';') {
            let entity = &tail[..=end];
            out.push_str(&ftfy_entity(entity));
            rest = &tail[end + 1..];
        } else {
            out.push('&');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// ftfy's `_unescape_fixup` for one `&...;` match.
fn ftfy_entity(entity: &str) -> String {
    if entity.starts_with("&#") {
        let u = html_unescape(entity);
        return if u.contains(';') { entity.to_string() } else { u };
    }
    let decoded = html_escape::decode_html_entities(entity);
    if decoded != entity {
        return decoded.into_owned();
    }
    // ftfy also reads all-caps spellings of lower-case entities ("&EACUTE;" → "É").
    let name = &entity[1..entity.len() - 1];
    if name.chars().any(|c| c.is_ascii_uppercase()) && !name.chars().any(|c| c.is_ascii_lowercase()) {
        let lower = format!("&{};", name.to_ascii_lowercase());
        let d = html_escape::decode_html_entities(&lower);
        if d != lower {
            return d.to_uppercase();
        }
    }
    entity.to_string()
}

/// C1 control characters that are really Windows-1252 (ftfy's fix_c1_controls
/// with its "sloppy" codec: the five undefined bytes stay as they are).
fn c1_to_cp1252(c: char) -> char {
    const MAP: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•',
        '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
    ];
    match c as u32 {
        0x80..=0x9f => MAP[(c as u32 - 0x80) as usize],
        _ => c,
    }
}

fn ligature(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{132}' => "IJ",
        '\u{133}' => "ij",
        '\u{149}' => "ʼn",
        '\u{1f1}' => "DZ",
        '\u{1f2}' => "Dz",
        '\u{1f3}' => "dz",
        '\u{1c4}' => "DŽ",
        '\u{1c5}' => "Dž",
        '\u{1c6}' => "dž",
        '\u{1c7}' => "LJ",
        '\u{1c8}' => "Lj",
        '\u{1c9}' => "lj",
        '\u{1ca}' => "NJ",
        '\u{1cb}' => "Nj",
        '\u{1cc}' => "nj",
        '\u{fb00}' => "ff",
        '\u{fb01}' => "fi",
        '\u{fb02}' => "fl",
        '\u{fb03}' => "ffi",
        '\u{fb04}' => "ffl",
        '\u{fb05}' => "ſt",
        '\u{fb06}' => "st",
        _ => return None,
    })
}

fn is_ftfy_control(c: char) -> bool {
    matches!(c as u32,
        0x00..=0x08 | 0x0b | 0x0e..=0x1f | 0x7f | 0x206a..=0x206f | 0xfeff | 0xfff9..=0xfffc)
}

/// ESC [ digits/semicolons letter (ftfy's remove_terminal_escapes).
fn remove_terminal_escapes(text: &str) -> String {
    if !text.contains('\u{1b}') {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\u{1b}' && chars.get(i + 1) == Some(&'[') {
            let mut j = i + 2;
            while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == ';') {
                j += 1;
            }
            if j < chars.len() && chars[j].is_ascii_alphabetic() {
                i = j + 1;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// One pass of ftfy's per-character fixers.
fn fix_chars(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = c1_to_cp1252(c);
        if let Some(l) = ligature(c) {
            out.push_str(l);
            continue;
        }
        match c as u32 {
            0x3000 => out.push(' '),
            // ftfy's fix_character_width: full- and half-width forms → NFKC.
            0xff01..=0xffef => out.extend(std::iter::once(c).nfkc()),
            0x2bc | 0x2018..=0x201b => out.push('\''),
            0x201c..=0x201f => out.push('"'),
            _ if is_ftfy_control(c) => {}
            _ => out.push(c),
        }
    }
    out
}

/// The parts of `ftfy.fix_text` (default config) that apply here, line by line
/// and to a fixed point as ftfy does.
pub fn ftfy_lite(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // ftfy decides "auto" html unescaping once: the first line with '<' turns
    // it off for the rest of the text.
    let mut unescape = true;
    for segment in text.split_inclusive('\n') {
        if segment.contains('<') {
            unescape = false;
        }
        let mut s = segment.to_string();
        for _ in 0..16 {
            let orig = s.clone();
            if unescape {
                s = ftfy_unescape_html(&s);
            }
            // ftfy removes terminal escapes before control characters (ESC is one).
            s = remove_terminal_escapes(&s);
            s = fix_chars(&s);
            s = s.nfc().collect();
            if s == orig {
                break;
            }
        }
        out.push_str(&s);
    }
    out
}

/// open_clip's `basic_clean`: ftfy, html.unescape twice, strip.
pub fn basic_clean(text: &str) -> String {
    let t = ftfy_lite(text);
    let t = html_unescape(&html_unescape(&t));
    t.trim_matches(py_isspace).to_string()
}

/// open_clip's clean functions (`lower` for SimpleTokenizer, `whitespace` for HF).
pub fn clean_text(text: &str, mode: TextClean) -> String {
    let t = whitespace_clean(&basic_clean(text));
    match mode {
        TextClean::Lower => t.to_lowercase(),
        TextClean::Whitespace => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_follows_open_clip() {
        assert_eq!(clean_text("  A  Photo\tof\n a DOG  ", TextClean::Lower), "a photo of a dog");
        assert_eq!(clean_text("Tom &amp; Jerry", TextClean::Whitespace), "Tom & Jerry");
        // ftfy unescapes to a fixed point, then html.unescape runs twice more.
        assert_eq!(clean_text("&amp;amp;amp;amp;lt;", TextClean::Lower), "<");
        assert_eq!(clean_text("\u{201c}hi\u{201d} it\u{2019}s", TextClean::Lower), "\"hi\" it's");
        assert_eq!(clean_text("\u{fb01}ne \u{ff21}\u{ff22}", TextClean::Lower), "fine ab");
        // ftfy drops C0 controls before the whitespace split sees them.
        assert_eq!(clean_text("a\u{1c}b", TextClean::Lower), "ab");
        assert_eq!(whitespace_clean("a\u{1c}b\u{a0}c"), "a b c");
        assert_eq!(clean_text("\u{1b}[31mred\u{1b}[0m", TextClean::Lower), "red");
        assert_eq!(clean_text("e\u{301}", TextClean::Lower), "\u{e9}");
        assert_eq!(clean_text("", TextClean::Lower), "");
    }
}
