//! WebDataset shards in CLIP_benchmark's layout:
//! `<path>/nshards.txt` (number of shards), `<path>/{i}.tar` for i in 0..n.
//! A sample is a run of consecutive tar members sharing a key (the member path
//! up to the first dot of its file name, as webdataset's `base_plus_ext`): one
//! image (`webp`, `png`, `jpg` or `jpeg`, first found in that order, as
//! CLIP_benchmark's `to_tuple`) and `cls` (the label as decimal text).
//! Samples are ordered by shard, then tar order.
//!
//! Counting reads tar headers only (member data is seeked over), and a range
//! read skips earlier shards by their counts and earlier samples of its first
//! shard without reading their bytes.

use super::{read_classnames_opt, DataError, Dataset, Sample, SampleIter, SampleSource};
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
    pub fn open(path: &Path) -> Result<Self, DataError> {
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
            if !t.is_file() {
                return Err(DataError::Invalid(format!(
                    "{} says {nshards} shards but {} is missing (was the download interrupted?)",
                    nfile.display(),
                    t.display()
                )));
            }
        }
        let classnames = read_classnames_opt(&path.join("classnames.txt"))?;
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
    let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 20, file));
    let entries = archive.entries_with_seek().map_err(|e| DataError::io(tar_path, e))?;
    let mut current: Option<Group> = None;
    let mut pos = 0u64;
    let mut reading = read(0);
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt_tar(tar_path, e))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(|e| corrupt_tar(tar_path, e))?.to_string_lossy().into_owned();
        let Some((key, ext)) = split_key(&path) else { continue };
        if current.as_ref().map(|g| g.key != key).unwrap_or(false) {
            let g = current.take().expect("current group");
            g.validate(tar_path)?;
            pos += 1;
            if !f(g)? {
                return Ok(());
            }
            reading = read(pos);
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
    if let Some(g) = current {
        g.validate(tar_path)?;
        f(g)?;
    }
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
}
