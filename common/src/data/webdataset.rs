//! WebDataset shards in CLIP_benchmark's layout:
//! `<path>/nshards.txt` (number of shards), `<path>/{i}.tar` for i in 0..n,
//! where `<path>` is a split folder (`<dataset>/test`) and `classnames.txt`
//! and `zeroshot_classification_templates.txt` lie in `<dataset>`, the folder
//! above it, as CLIP_benchmark's `build_wds_dataset` reads them (and as its
//! published mirrors hold them); files of those names inside the split folder
//! win (older preparations wrote them there).
//! A sample is a run of consecutive tar members sharing a key (the member path
//! up to the first dot of its file name, as webdataset's `base_plus_ext`): one
//! image (`webp`, `png`, `jpg` or `jpeg`, first found in that order, as
//! CLIP_benchmark's `to_tuple`) and `cls` (the label as decimal text).
//! Samples are ordered by shard, then tar order.
//!
//! Counting reads tar headers only (member data is seeked over), and a range
//! read skips earlier shards by their counts and earlier samples of its first
//! shard without reading their bytes.

use super::{read_classnames_opt, Confine, DataError, Dataset, Sample, SampleIter, SampleSource};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const IMAGE_KEYS: [&str; 4] = ["webp", "png", "jpg", "jpeg"];

#[derive(Debug)]
pub struct WebDataset {
    path: PathBuf,
    nshards: usize,
    classnames: Option<Vec<String>>,
    /// Samples per shard, filled in as shards are first scanned.
    counts: Arc<Mutex<Vec<Option<u64>>>>,
}

impl WebDataset {
    /// Every shard and text file must resolve inside `path` (see [`Confine`]).
    pub fn open(path: &Path) -> Result<Self, DataError> {
        Self::open_confined(path, &Confine::within(path))
    }

    /// As [`WebDataset::open`], with symbolic links allowed within `confine`.
    pub fn open_confined(path: &Path, confine: &Confine) -> Result<Self, DataError> {
        let nfile = path.join("nshards.txt");
        let text = std::fs::read_to_string(&nfile).map_err(|e| DataError::io(&nfile, e))?;
        let nshards: usize = text.trim().parse().map_err(|_| {
            DataError::Invalid(format!(
                "{} should hold the number of shards as a decimal integer, found {:?}",
                nfile.display(),
                text.trim()
            ))
        })?;
        if nshards == 0 {
            return Err(DataError::Invalid(format!("{} says 0 shards: the dataset is empty", nfile.display())));
        }
        for i in 0..nshards {
            let t = path.join(format!("{i}.tar"));
            confine.check(&t)?;
            if !t.is_file() {
                return Err(DataError::Invalid(format!(
                    "{} says {nshards} shards but {} is missing (was the download interrupted?)",
                    nfile.display(),
                    t.display()
                )));
            }
        }
        let classnames = match layout_file(path, "classnames.txt") {
            Some(file) => {
                confine.check(&file)?;
                read_classnames_opt(&file)?
            }
            None => None,
        };
        if let Some(file) = layout_file(path, "zeroshot_classification_templates.txt") {
            confine.check(&file)?;
        }
        Ok(WebDataset { path: path.to_path_buf(), nshards, classnames, counts: Arc::new(Mutex::new(vec![None; nshards])) })
    }

    pub fn nshards(&self) -> usize {
        self.nshards
    }

    fn shard_count(&self, shard: usize) -> Result<u64, DataError> {
        if let Some(c) = self.counts.lock().expect("counts lock")[shard] {
            return Ok(c);
        }
        let mut n = 0u64;
        for_each_group(
            &shard_path(&self.path, shard),
            |_| false,
            |_| {
                n += 1;
                Ok(true)
            },
        )?;
        self.counts.lock().expect("counts lock")[shard] = Some(n);
        Ok(n)
    }
}

/// `<path>/<name>`, else `<path>/../<name>` (CLIP_benchmark's place), when
/// either exists.
fn layout_file(path: &Path, name: &str) -> Option<PathBuf> {
    let own = path.join(name);
    if own.is_file() {
        return Some(own);
    }
    path.parent().map(|p| p.join(name)).filter(|p| p.is_file())
}

fn shard_path(root: &Path, i: usize) -> PathBuf {
    root.join(format!("{i}.tar"))
}

/// One sample's members: (extension, data if read).
struct Group {
    key: String,
    members: Vec<(String, Option<Vec<u8>>)>,
}

impl Group {
    /// Checks the group has an image and a `cls` member (headers only).
    fn validate(&self, tar: &Path) -> Result<(), DataError> {
        let has = |ext: &str| self.members.iter().any(|(e, _)| e == ext);
        if !IMAGE_KEYS.iter().any(|k| has(k)) {
            let found: Vec<&str> = self.members.iter().map(|(e, _)| e.as_str()).collect();
            return Err(DataError::Invalid(format!(
                "{}: sample '{}' has no image member (found {found:?}; expected one of webp, png, jpg, jpeg)",
                tar.display(),
                self.key
            )));
        }
        if !has("cls") {
            return Err(DataError::Invalid(format!(
                "{}: sample '{}' has no cls member (each sample needs <key>.cls holding its label as decimal text; CLIP_benchmark's layout)",
                tar.display(),
                self.key
            )));
        }
        Ok(())
    }

    fn into_sample(self, tar: &Path, index: u64) -> Result<Sample, DataError> {
        let name = format!("{}:{}", tar.display(), self.key);
        let take = |ext: &str, members: &mut Vec<(String, Option<Vec<u8>>)>| {
            members.iter().position(|(e, _)| e == ext).and_then(|i| members[i].1.take())
        };
        let mut members = self.members;
        let cls = take("cls", &mut members).ok_or_else(|| DataError::Invalid(format!("{name}: cls member was not read")))?;
        let text = String::from_utf8_lossy(&cls);
        let label: i64 = text
            .trim()
            .parse()
            .map_err(|_| DataError::Invalid(format!("{name}: cls member should be the label as decimal text, found {:?}", text.trim())))?;
        if label < 0 {
            return Err(DataError::Invalid(format!("{name}: negative label {label}")));
        }
        let bytes = IMAGE_KEYS
            .iter()
            .find_map(|k| take(k, &mut members))
            .ok_or_else(|| DataError::Invalid(format!("{name}: image member was not read")))?;
        Ok(Sample { index, label, name, source: SampleSource::Bytes(bytes) })
    }
}

/// webdataset's `base_plus_ext`: key = path up to the first dot of the file
/// name, extension = the rest (lower-cased). None for names without a dot.
fn split_key(path: &str) -> Option<(&str, String)> {
    let base_start = path.rfind('/').map(|i| i + 1).unwrap_or(0);
    let dot = path[base_start..].find('.')? + base_start;
    if dot == base_start {
        return None; // hidden files such as ".DS_Store"
    }
    Some((&path[..dot], path[dot + 1..].to_ascii_lowercase()))
}

/// Walks a tar's samples in order. `read(pos)` says whether to read the data
/// of the sample at position `pos` within the shard; `f` gets each finished
/// (validated) group and returns false to stop early.
fn for_each_group(
    tar_path: &Path,
    read: impl Fn(u64) -> bool,
    mut f: impl FnMut(Group) -> Result<bool, DataError>,
) -> Result<(), DataError> {
    let file = File::open(tar_path).map_err(|e| DataError::io(tar_path, e))?;
    let len = file.metadata().map_err(|e| DataError::io(tar_path, e))?.len();
    let cut = |what: String| {
        DataError::Invalid(format!(
            "{} is truncated: {what} (the copy or download was cut short; fetch the shard again)",
            tar_path.display()
        ))
    };
    if len == 0 {
        return Err(cut("it is empty (0 bytes)".into()));
    }
    let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 20, file));
    let entries = archive.entries_with_seek().map_err(|e| DataError::io(tar_path, e))?;
    let mut current: Option<Group> = None;
    let mut pos = 0u64;
    let mut reading = read(0);
    // Where the last member's data ends (in 512-byte blocks), and the keys of
    // the samples already passed: a key seen again is a second sample under
    // the same name.
    let mut data_end = 0u64;
    let mut seen = std::collections::HashSet::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt_tar(tar_path, e))?;
        data_end = (entry.raw_file_position() + entry.size()).div_ceil(512) * 512;
        if entry.raw_file_position() + entry.size() > len {
            let name = entry.path().map(|p| p.display().to_string()).unwrap_or_default();
            return Err(cut(format!(
                "member '{name}' ends at byte {} but the file has {len} bytes",
                entry.raw_file_position() + entry.size()
            )));
        }
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(|e| corrupt_tar(tar_path, e))?.to_string_lossy().into_owned();
        let Some((key, ext)) = split_key(&path) else { continue };
        if current.as_ref().map(|g| g.key != key).unwrap_or(false) {
            let g = current.take().expect("current group");
            g.validate(tar_path)?;
            pos += 1;
            seen.insert(g.key.clone());
            if !f(g)? {
                return Ok(());
            }
            reading = read(pos);
        }
        if current.is_none() && seen.contains(key) {
            return Err(DataError::Invalid(format!(
                "{}: sample key '{key}' appears twice (two samples share a key, or one sample's members are not consecutive); \
                 keys must be unique within a shard, as webdataset groups consecutive members",
                tar_path.display()
            )));
        }
        let group = current.get_or_insert_with(|| Group { key: key.to_string(), members: Vec::new() });
        let wanted = ext == "cls" || IMAGE_KEYS.contains(&ext.as_str());
        let data = if reading && wanted {
            let mut buf = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut buf).map_err(|e| corrupt_tar(tar_path, e))?;
            Some(buf)
        } else {
            None
        };
        group.members.push((ext, data));
    }
    // A tar ends with two zero blocks; without them it was cut at a member
    // boundary (the tar reader just sees fewer members).
    if len < data_end + 1024 {
        return Err(cut(format!("no end-of-archive blocks after the last member (byte {data_end} of {len})")));
    }
    let Some(g) = current else {
        return Err(DataError::Invalid(format!(
            "{} holds no samples: an empty shard counts for nothing (re-create the shards, or lower nshards.txt)",
            tar_path.display()
        )));
    };
    g.validate(tar_path)?;
    f(g)?;
    Ok(())
}

fn corrupt_tar(path: &Path, e: std::io::Error) -> DataError {
    match e.kind() {
        std::io::ErrorKind::InvalidData
        | std::io::ErrorKind::InvalidInput
        | std::io::ErrorKind::UnexpectedEof
        | std::io::ErrorKind::Other => {
            DataError::Invalid(format!("{} is not a readable tar archive: {e} (re-create or re-download the shard)", path.display()))
        }
        _ => DataError::io(path, e),
    }
}

impl Dataset for WebDataset {
    fn path(&self) -> &Path {
        &self.path
    }

    fn count(&self) -> Result<u64, DataError> {
        (0..self.nshards).map(|i| self.shard_count(i)).sum()
    }

    fn samples(&self, start: u64, end: u64) -> Result<SampleIter<'_>, DataError> {
        if start > end {
            return Err(DataError::OutOfRange { path: self.path.clone(), start, end, count: self.count()? });
        }
        // Find the shard holding `start` from the (cached) header counts.
        let mut first = 0u64;
        let mut shard = 0usize;
        while shard < self.nshards {
            let c = self.shard_count(shard)?;
            if first + c > start {
                break;
            }
            first += c;
            shard += 1;
        }
        if start == end {
            return Ok(Box::new(std::iter::empty()));
        }
        if shard == self.nshards {
            return Err(DataError::OutOfRange { path: self.path.clone(), start, end, count: first });
        }
        // Stream on a reader thread: the tar iterator borrows its archive, and
        // a thread lets reading overlap with whatever consumes the samples.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Sample, DataError>>(64);
        let root = self.path.clone();
        let nshards = self.nshards;
        std::thread::Builder::new()
            .name("webdataset-reader".into())
            .spawn(move || {
                let mut index = first;
                for s in shard..nshards {
                    let tar = shard_path(&root, s);
                    let shard_first = index;
                    let mut stop = false;
                    let r = for_each_group(
                        &tar,
                        |pos| shard_first + pos >= start && shard_first + pos < end,
                        |g| {
                            let i = index;
                            index += 1;
                            if i < start {
                                return Ok(true);
                            }
                            let sample = g.into_sample(&tar, i)?;
                            if tx.send(Ok(sample)).is_err() {
                                stop = true; // the consumer went away
                                return Ok(false);
                            }
                            if index >= end {
                                stop = true;
                                return Ok(false);
                            }
                            Ok(true)
                        },
                    );
                    if let Err(e) = r {
                        let _ = tx.send(Err(e));
                        return;
                    }
                    if stop {
                        return;
                    }
                }
                if index < end {
                    let _ = tx.send(Err(DataError::OutOfRange { path: root.clone(), start, end, count: index }));
                }
            })
            .map_err(|e| DataError::io(&self.path, e))?;
        Ok(Box::new(rx.into_iter()))
    }

    fn classnames(&self) -> Option<Vec<String>> {
        self.classnames.clone()
    }

    fn templates(&self) -> Result<Option<Vec<String>>, DataError> {
        match layout_file(&self.path, "zeroshot_classification_templates.txt") {
            Some(file) => super::read_lines_opt(&file),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_at_the_first_dot_of_the_file_name() {
        assert_eq!(split_key("s000001.jpg"), Some(("s000001", "jpg".to_string())));
        assert_eq!(split_key("dir.x/s1.seg.PNG"), Some(("dir.x/s1", "seg.png".to_string())));
        assert_eq!(split_key("README"), None);
        assert_eq!(split_key("a/.hidden"), None);
    }

    /// A tar of (member name, bytes), as webdataset's writer lays samples out.
    fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn open_with(shard: &[u8]) -> Result<u64, DataError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("nshards.txt"), "1\n").unwrap();
        std::fs::write(dir.path().join("0.tar"), shard).unwrap();
        WebDataset::open(dir.path())?.count()
    }

    /// An empty, cut or key-repeating shard is an error naming what is wrong,
    /// never fewer samples counted as if complete.
    #[test]
    fn empty_truncated_and_repeated_shards_are_refused() {
        let img: &[u8] = &[7u8; 700];
        let good = tar_of(&[("a.png", img), ("a.cls", b"0"), ("b.png", img), ("b.cls", b"1")]);
        assert_eq!(open_with(&good).unwrap(), 2);
        let err = |bytes: &[u8]| open_with(bytes).unwrap_err().to_string();
        assert!(err(b"").contains("is truncated: it is empty (0 bytes)"), "{}", err(b""));
        // Layout: a.png header at 0, data from 512; a.cls at 1536; b.png at
        // 2560, data 3072..3772; b.cls at 4096, its data padded to 5120; two
        // zero blocks. Cut inside b.png's data:
        let cut = &good[..512 * 6 + 128];
        assert!(err(cut).contains("is truncated: member 'b.png' ends at byte"), "{}", err(cut));
        // Cut right after b.cls: every member whole, the end blocks gone.
        let b_cls_end = 512 * 10;
        assert!(err(&good[..b_cls_end]).contains("no end-of-archive blocks"), "{}", err(&good[..b_cls_end]));
        // Cut after a.cls: the tar reader would see one whole sample.
        assert!(err(&good[..512 * 5]).contains("no end-of-archive blocks"), "{}", err(&good[..512 * 5]));
        let repeated = tar_of(&[("a.png", img), ("a.cls", b"0"), ("b.png", img), ("b.cls", b"1"), ("a.jpg", img), ("a.cls", b"0")]);
        assert!(err(&repeated).contains("sample key 'a' appears twice"), "{}", err(&repeated));
        let empty = tar_of(&[]);
        assert!(err(&empty).contains("holds no samples"), "{}", err(&empty));
    }
}
