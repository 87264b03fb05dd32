//! ImageFolder and WebDataset readers: canonical order, counts, ranges, and
//! the errors a malformed dataset gives.

use mll_common::job::DatasetFormat;
use mll_worker::data::{self, graph::GraphFile, DataError, SampleSource};
use std::path::Path;

fn png(seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(7, 5, |x, y| image::Rgb([seed, x as u8 * 30, y as u8 * 40]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn write_tar(path: &Path, members: &[(&str, Vec<u8>)]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    b.finish().unwrap();
}

/// Two shards: 3 + 2 samples, labels 0..5 % 3, member order varying.
fn make_wds(dir: &Path) {
    std::fs::write(dir.join("nshards.txt"), "2\n").unwrap();
    std::fs::write(dir.join("classnames.txt"), "cat\ndog\nbird\n").unwrap();
    std::fs::write(dir.join("zeroshot_classification_templates.txt"), "a photo of a {c}.\na {c}.\n").unwrap();
    write_tar(
        &dir.join("0.tar"),
        &[
            ("s0.cls", b"0".to_vec()),
            ("s0.png", png(0)),
            ("s1.jpg", png(1)), // content is PNG; the decoder sniffs the format
            ("s1.cls", b"1\n".to_vec()),
            ("s1.txt", b"ignored".to_vec()),
            ("s2.webp", png(2)),
            ("s2.cls", b"2".to_vec()),
        ],
    );
    write_tar(&dir.join("1.tar"), &[("a/s3.png", png(3)), ("a/s3.cls", b"0".to_vec()), ("s4.cls", b"1".to_vec()), ("s4.png", png(4))]);
}

#[test]
fn webdataset_counts_orders_and_reads_ranges() {
    let dir = tempfile::tempdir().unwrap();
    make_wds(dir.path());
    assert_eq!(data::detect_format(dir.path()), DatasetFormat::WebDataset);
    let ds = data::open(dir.path(), DatasetFormat::WebDataset).unwrap();
    assert_eq!(ds.count().unwrap(), 5);
    assert_eq!(ds.classnames().unwrap(), vec!["cat", "dog", "bird"]);
    assert_eq!(ds.templates().unwrap().unwrap(), vec!["a photo of a {c}.", "a {c}."]);
    let all: Vec<_> = ds.samples(0, 5).unwrap().map(Result::unwrap).collect();
    assert_eq!(all.iter().map(|s| s.index).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    assert_eq!(all.iter().map(|s| s.label).collect::<Vec<_>>(), vec![0, 1, 2, 0, 1]);
    for (i, s) in all.iter().enumerate() {
        let SampleSource::Bytes(b) = &s.source else { panic!("tar samples carry bytes") };
        assert_eq!(b, &png(i as u8), "sample {i} ({})", s.name);
    }
    // A range across the shard boundary, and one inside the second shard.
    let mid: Vec<_> = ds.samples(2, 4).unwrap().map(Result::unwrap).collect();
    assert_eq!(mid.iter().map(|s| (s.index, s.label)).collect::<Vec<_>>(), vec![(2, 2), (3, 0)]);
    assert!(mid[1].name.ends_with("1.tar:a/s3"), "{}", mid[1].name);
    let tail: Vec<_> = ds.samples(4, 5).unwrap().map(Result::unwrap).collect();
    assert_eq!(tail.len(), 1);
    assert_eq!(ds.samples(3, 3).unwrap().count(), 0);
    // Past the end is an error, not a short read.
    assert!(matches!(ds.samples(4, 6).unwrap().last().unwrap(), Err(DataError::OutOfRange { .. })));
}

#[test]
fn webdataset_errors_are_helpful() {
    let dir = tempfile::tempdir().unwrap();
    make_wds(dir.path());
    write_tar(&dir.path().join("1.tar"), &[("s3.png", png(3)), ("s4.png", png(4)), ("s4.cls", b"1".to_vec())]);
    let ds = data::open(dir.path(), DatasetFormat::WebDataset).unwrap();
    let err = ds.count().unwrap_err().to_string();
    assert!(err.contains("no cls member") && err.contains("s3") && err.contains("1.tar"), "{err}");

    write_tar(&dir.path().join("1.tar"), &[("s3.png", png(3)), ("s3.cls", b"seven".to_vec())]);
    let ds = data::open(dir.path(), DatasetFormat::WebDataset).unwrap();
    let err = ds.samples(3, 4).unwrap().next().unwrap().unwrap_err().to_string();
    assert!(err.contains("decimal") && err.contains("seven"), "{err}");

    std::fs::remove_file(dir.path().join("1.tar")).unwrap();
    let err = data::open(dir.path(), DatasetFormat::WebDataset).unwrap_err().to_string();
    assert!(err.contains("1.tar") && err.contains("missing"), "{err}");

    std::fs::write(dir.path().join("1.tar"), b"garbage that is not a tar archive").unwrap();
    let ds = data::open(dir.path(), DatasetFormat::WebDataset).unwrap();
    let e = ds.count().unwrap_err();
    assert!(!e.is_transient(), "a corrupt tar is permanent: {e}");
}

fn make_imagefolder(dir: &Path) {
    for (class, files) in [("zebra", &["b.png", "a.png"][..]), ("ant", &["z.jpg", "c.PNG", "notes.txt"][..])] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for (i, f) in files.iter().enumerate() {
            std::fs::write(dir.join(class).join(f), png(i as u8)).unwrap();
        }
    }
}

#[test]
fn imagefolder_orders_by_label_then_file_name() {
    let dir = tempfile::tempdir().unwrap();
    make_imagefolder(dir.path());
    assert_eq!(data::detect_format(dir.path()), DatasetFormat::ImageFolder);
    let ds = data::open(dir.path(), DatasetFormat::ImageFolder).unwrap();
    assert_eq!(ds.classnames().unwrap(), vec!["ant", "zebra"]);
    assert_eq!(ds.count().unwrap(), 4);
    let names: Vec<_> = ds.samples(0, 4).unwrap().map(|s| s.unwrap()).map(|s| (s.label, s.name)).collect();
    assert_eq!(names, vec![(0, "ant/c.PNG".into()), (0, "ant/z.jpg".into()), (1, "zebra/a.png".into()), (1, "zebra/b.png".into())]);
    let one: Vec<_> = ds.samples(2, 3).unwrap().map(|s| s.unwrap().index).collect();
    assert_eq!(one, vec![2]);
    assert!(matches!(ds.samples(3, 5), Err(DataError::OutOfRange { .. })));

    // classnames.txt fixes the label order.
    std::fs::write(dir.path().join("classnames.txt"), "zebra\nant\n").unwrap();
    let ds = data::open(dir.path(), DatasetFormat::ImageFolder).unwrap();
    let labels: Vec<_> = ds.samples(0, 4).unwrap().map(|s| s.unwrap()).map(|s| (s.label, s.name)).collect();
    assert_eq!(labels[0], (0, "zebra/a.png".into()));
    assert_eq!(labels[3], (1, "ant/z.jpg".into()));
}

#[test]
fn imagefolder_errors_are_helpful() {
    let dir = tempfile::tempdir().unwrap();
    let err = data::open(&dir.path().join("nope"), DatasetFormat::ImageFolder).unwrap_err().to_string();
    assert!(err.contains("nope") && err.contains("does not exist"), "{err}");

    make_imagefolder(dir.path());
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let err = data::open(dir.path(), DatasetFormat::ImageFolder).unwrap_err().to_string();
    assert!(err.contains("empty") && err.contains("no images"), "{err}");

    std::fs::write(dir.path().join("classnames.txt"), "ant\nmissing\n").unwrap();
    let err = data::open(dir.path(), DatasetFormat::ImageFolder).unwrap_err().to_string();
    assert!(err.contains("missing") && err.contains("classnames.txt"), "{err}");
}

#[test]
fn graph_file_loads_checks_and_shards_images() {
    let dir = tempfile::tempdir().unwrap();
    let g = serde_json::json!({
        "format_version": 1, "seed": 0,
        "nodes": [
            {"id": "n1", "lemma": "animal", "definition": "a living thing", "parents": [], "text": "animal, which is a living thing", "captions": ["an animal"]},
            {"id": "n2", "lemma": "dog", "definition": "a canine", "parents": [0], "text": "dog, which is a canine", "captions": []}
        ],
        "images": [{"path": "images/n2/0.png", "node": 1}, {"path": "images/n1/0.png", "node": 0}]
    });
    std::fs::write(dir.path().join("graph.json"), g.to_string()).unwrap();
    let gf = GraphFile::load(&dir.path().join("graph.json")).unwrap();
    assert_eq!(gf.image_count(), 2);
    assert_eq!(gf.node_texts(), vec!["animal, which is a living thing", "dog, which is a canine"]);
    let s: Vec<_> = gf.samples(1, 2).unwrap().map(Result::unwrap).collect();
    assert_eq!((s[0].index, s[0].label), (1, 0));
    let SampleSource::File(p) = &s[0].source else { panic!() };
    assert_eq!(p, &dir.path().join("images/n1/0.png"));

    let mut bad = g.clone();
    bad["images"][0]["node"] = 5.into();
    std::fs::write(dir.path().join("graph.json"), bad.to_string()).unwrap();
    let err = GraphFile::load(&dir.path().join("graph.json")).unwrap_err().to_string();
    assert!(err.contains("node 5"), "{err}");
    let mut bad = g;
    bad["images"][0]["path"] = "../x.png".into();
    std::fs::write(dir.path().join("graph.json"), bad.to_string()).unwrap();
    assert!(GraphFile::load(&dir.path().join("graph.json")).is_err());
}
