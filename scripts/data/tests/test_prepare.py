"""scripts/prepare-data end to end: the real digits through the real path, every
converter on fixtures written in the real formats, and the failure paths.
Run by scripts/test (`python -m pytest scripts/data/tests`)."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import re
import shutil
import tarfile
import threading
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import sys

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE.parent))
import converters  # noqa: E402
import prepare  # noqa: E402

CATALOG = REPO / "configs" / "catalog" / "datasets.toml"


def catalog_entries():
    with open(CATALOG, "rb") as f:
        return {d["name"]: d for d in tomllib.load(f)["dataset"]}


def q(v):
    return json.dumps(v)


def write_catalog(path: Path, entries: list[dict]) -> Path:
    """A catalog file with the given entries (the shipped format)."""
    lines = ["version = 1"]
    for e in entries:
        lines.append("[[dataset]]")
        for k, v in e.items():
            if k != "sources":
                lines.append(f"{k} = {q(v)}")
        for s in e["sources"]:
            lines.append("[[dataset.sources]]")
            lines += [f"{k} = {q(v)}" for k, v in s.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def entry(name, converter, samples, classes, sources, role="target", **extra):
    e = {"name": name, "role": role, "split": "test", "path": f"datasets/{name}/test", "converter": converter,
         "samples": samples, "samples_source": "test fixture", "classes": classes, "classes_source": "test fixture"}
    if role != "sample":
        e["classnames"] = [f"class {i}" for i in range(classes)]
        e["templates"] = ["a photo of {c}."]
    e.update(extra)
    e["sources"] = sources
    return e


def run(catalog: Path, out: Path, *args) -> int:
    return prepare.main(["--catalog", str(catalog), "--out", str(out), "--no-progress", "--offline", *args])


def shard_samples(folder: Path):
    n = int((folder / "nshards.txt").read_text())
    return [s for i in range(n) for s in converters.read_shard(folder / f"{i}.tar")]


def assert_nothing_half_written(out: Path, name: str, path: str):
    assert not (out / path).exists(), f"{out / path} exists after a failure"
    m = out / "manifest.json"
    if m.exists():
        assert name not in json.loads(m.read_text())["datasets"]
    leftovers = list((out / ".tmp-prepare").glob("*")) if (out / ".tmp-prepare").exists() else []
    assert leftovers == [], leftovers


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# ------------------------------------------------------------------ catalog
def test_converter_names_agree_with_the_rust_catalog():
    rust = (REPO / "coordinator/src/spec/catalog.rs").read_text()
    block = re.search(r"pub const CONVERTERS: \[&str; \d+\] = \[(.*?)\];", rust, re.S).group(1)
    assert sorted(re.findall(r'"([a-z0-9_]+)"', block)) == sorted(converters.CONVERTERS)
    for e in catalog_entries().values():
        assert e["converter"] in converters.CONVERTERS, e["name"]


# ------------------------------------------------------------------ digits, the real data
def test_digits_prepared_through_the_real_path(tmp_path, capsys):
    assert run(CATALOG, tmp_path, "--only", "digits") == 0
    folder = tmp_path / "datasets/digits/all"
    samples = shard_samples(folder)
    assert len(samples) == 1797
    labels = [label for _, _, label in samples]
    assert sorted(set(labels)) == list(range(10))
    from sklearn.datasets import load_digits
    d = load_digits()
    assert labels == [int(t) for t in d.target]
    first = np.asarray(Image.open(io.BytesIO(samples[0][0])))
    assert np.array_equal(first, (d.images[0] * (255 / 16)).round().astype(np.uint8))
    assert (folder / "classnames.txt").read_text().split() == [str(i) for i in range(10)]
    # CLIP_benchmark's layout: the class names and templates also above the split folder.
    for name in ("classnames.txt", "zeroshot_classification_templates.txt"):
        assert (folder.parent / name).read_text() == (folder / name).read_text()
    m = json.loads((tmp_path / "manifest.json").read_text())["datasets"]["digits"]
    assert (m["samples"], m["classes"]) == (1797, 10)
    assert m["content_sha256"] == prepare.content_sha256(folder)
    assert (tmp_path / "catalog/datasets.toml").read_bytes() == CATALOG.read_bytes()
    # Deterministic bytes, and a rerun skips the verified dataset.
    again = tmp_path / "again"
    assert run(CATALOG, again, "--only", "digits") == 0
    assert prepare.content_sha256(again / "datasets/digits/all") == m["content_sha256"]
    capsys.readouterr()
    (folder.parent / "classnames.txt").unlink()
    assert run(CATALOG, tmp_path, "--only", "digits") == 0
    assert "digits: skipped" in capsys.readouterr().err
    assert (folder.parent / "classnames.txt").read_text() == (folder / "classnames.txt").read_text(), "a skip restores the copy"


# ------------------------------------------------------------------ MNIST IDX from the digits
def write_idx(path: Path, arr: np.ndarray):
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_mnist_idx_converter_on_idx_files_written_from_the_digits(tmp_path):
    from sklearn.datasets import load_digits
    d = load_digits()
    images = (d.images * (255 / 16)).round().astype(np.uint8)
    img, lab = tmp_path / "t10k-images-idx3-ubyte.gz", tmp_path / "t10k-labels-idx1-ubyte.gz"
    write_idx(img, images)
    write_idx(lab, d.target)
    cat = write_catalog(tmp_path / "c.toml", [entry("mnistlike", "mnist_idx", 1797, 10, [
        {"kind": "url", "url": "https://example.invalid/a", "file": img.name, "checksum": f"sha256:{sha256(img)}"},
        {"kind": "url", "url": "https://example.invalid/b", "file": lab.name, "checksum": f"sha256:{sha256(lab)}"}])])
    out = tmp_path / "out"
    assert run(cat, out, "--from-file", f"mnistlike={img}", "--from-file", f"mnistlike={lab}") == 0
    samples = shard_samples(out / "datasets/mnistlike/test")
    assert len(samples) == 1797
    assert [s[2] for s in samples] == [int(t) for t in d.target]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(samples[5][0]))), images[5])


# ------------------------------------------------------------------ fixtures in the real formats
def jpg_bytes(color, size=(20, 16)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def test_flowers102_mat_labels_and_setid(tmp_path):
    from scipy.io import savemat
    n = 9
    labels = np.array([[3, 1, 2, 3, 1, 2, 3, 1, 2]], dtype=np.uint8)  # 1-based, as imagelabels.mat
    savemat(tmp_path / "imagelabels.mat", {"labels": labels})
    savemat(tmp_path / "setid.mat", {"trnid": np.array([[1, 2, 3]]), "valid": np.array([[4, 5]]),
                                     "tstid": np.array([[9, 6, 7, 8]], dtype=np.uint16)})
    with tarfile.open(tmp_path / "102flowers.tgz", "w:gz") as t:
        for i in range(1, n + 1):
            data = jpg_bytes((i * 20, 0, 0))
            info = tarfile.TarInfo(f"jpg/image_{i:05d}.jpg")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    files = [tmp_path / f for f in ("102flowers.tgz", "imagelabels.mat", "setid.mat")]
    cat = write_catalog(tmp_path / "c.toml", [entry("flowers", "flowers102_mat", 4, 3, [
        {"kind": "url", "url": f"https://example.invalid/{p.name}", "file": p.name, "checksum": f"md5:{hashlib.md5(p.read_bytes()).hexdigest()}"}
        for p in files])])
    out = tmp_path / "out"
    assert run(cat, out, *[a for p in files for a in ("--from-file", f"flowers={p}")]) == 0
    samples = shard_samples(out / "datasets/flowers/test")
    # tstid order: images 9, 6, 7, 8 with labels 2, 2, 3, 1 (1-based) -> 1, 1, 2, 0.
    assert [s[2] for s in samples] == [1, 1, 2, 0]
    red = np.asarray(Image.open(io.BytesIO(samples[0][0])))[..., 0].mean()
    assert abs(red - 180) < 8


def test_gtsrb_test_csv_tree(tmp_path):
    rows = [("00000.ppm", 2), ("00001.ppm", 0), ("00002.ppm", 1), ("00003.ppm", 2)]
    with zipfile.ZipFile(tmp_path / "GTSRB_Final_Test_Images.zip", "w") as z:
        for name, label in rows:
            buf = io.BytesIO()
            Image.new("RGB", (30, 32), (label * 100, 50, 50)).save(buf, format="PPM")
            z.writestr(f"GTSRB/Final_Test/Images/{name}", buf.getvalue())
    with zipfile.ZipFile(tmp_path / "GTSRB_Final_Test_GT.zip", "w") as z:
        text = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n"
        text += "".join(f"{n};30;32;5;5;25;27;{c}\n" for n, c in rows)
        z.writestr("GT-final_test.csv", text)
    cat = write_catalog(tmp_path / "c.toml", [entry("gtsrb", "gtsrb_csv", 4, 3, [
        {"kind": "url", "url": f"https://example.invalid/{n}", "file": n, "checksum": "none published"}
        for n in ("GTSRB_Final_Test_Images.zip", "GTSRB_Final_Test_GT.zip")])])
    out = tmp_path / "out"
    assert run(cat, out, "--from-file", f"gtsrb={tmp_path / 'GTSRB_Final_Test_Images.zip'}",
               "--from-file", f"gtsrb={tmp_path / 'GTSRB_Final_Test_GT.zip'}") == 0
    samples = shard_samples(out / "datasets/gtsrb/test")
    assert [s[2] for s in samples] == [2, 0, 1, 2]
    assert all(s[1] == "png" for s in samples)  # PPM re-encoded losslessly
    assert np.asarray(Image.open(io.BytesIO(samples[0][0])))[0, 0].tolist() == [200, 50, 50]


def test_pcam_hdf5(tmp_path):
    import h5py
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (6, 96, 96, 3), dtype=np.uint8)
    y = np.array([0, 1, 1, 0, 1, 0], dtype=np.uint8).reshape(6, 1, 1, 1)
    for name, key, arr in (("camelyonpatch_level_2_split_test_x.h5", "x", x), ("camelyonpatch_level_2_split_test_y.h5", "y", y)):
        with h5py.File(tmp_path / name, "w") as f:
            f.create_dataset(key, data=arr)
        with open(tmp_path / name, "rb") as src, gzip.open(tmp_path / (name + ".gz"), "wb") as dst:
            dst.write(src.read())
    cat = write_catalog(tmp_path / "c.toml", [entry("pcam", "pcam_h5", 6, 2, [
        {"kind": "manual", "file": "camelyonpatch_level_2_split_test_x.h5.gz", "note": "drive"},
        {"kind": "manual", "file": "camelyonpatch_level_2_split_test_y.h5.gz", "note": "drive"}])])
    out = tmp_path / "out"
    assert run(cat, out, "--from-file", f"pcam={tmp_path / 'camelyonpatch_level_2_split_test_x.h5.gz'}",
               "--from-file", f"pcam={tmp_path / 'camelyonpatch_level_2_split_test_y.h5.gz'}") == 0
    samples = shard_samples(out / "datasets/pcam/test")
    assert [s[2] for s in samples] == [0, 1, 1, 0, 1, 0]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(samples[3][0]))), x[3])


def write_video(path: Path, frames: int, level_of):
    import av
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            img = np.full((48, 64, 3), level_of(i), dtype=np.uint8)
            for packet in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)


def test_ucf101_middle_frames_of_videos(tmp_path):
    root = tmp_path / "UCF-101"
    classes = ["Apply_Eye_Makeup", "Archery"]
    test_videos = []
    for c, cls in enumerate(classes):
        (root / cls).mkdir(parents=True)
        for g in range(2):
            name = f"v_{cls}_g{g + 1:02d}_c01"
            # 9 frames; the middle one (index 4) is bright, the others dark.
            write_video(root / cls / f"{name}.avi", 9, lambda i: 230 if i == 4 else 20)
            if g == 0 or c == 1:
                test_videos.append([f"{cls}/{name}.jpg", c, cls])
    (root / "split_zhou_UCF101.json").write_text(json.dumps({"train": [], "val": [], "test": test_videos}))
    cat = write_catalog(tmp_path / "c.toml", [entry("ucf", "ucf101_midframes", 3, 2, [
        {"kind": "manual", "file": "UCF-101", "note": "videos"}],
        classnames=["Apply Eye Makeup", "Archery"])])
    out = tmp_path / "out"
    assert run(cat, out, "--from-file", f"ucf={root}") == 0
    samples = shard_samples(out / "datasets/ucf/test")
    assert [s[2] for s in samples] == [0, 1, 1]
    for data, ext, _ in samples:
        assert ext == "jpg"
        assert np.asarray(Image.open(io.BytesIO(data))).mean() > 180, "not the middle frame"
    # Split "all" (the catalog's UCF101, as the released MLL loader reads it): every video, split list or not.
    (root / "split_zhou_UCF101.json").unlink()
    cat = write_catalog(tmp_path / "all.toml", [entry("ucf", "ucf101_midframes", 4, 2, [
        {"kind": "manual", "file": "UCF-101", "note": "videos"}],
        classnames=["Apply Eye Makeup", "Archery"], split="all", path="datasets/ucf/all")])
    assert run(cat, out, "--from-file", f"ucf={root}") == 0
    assert [s[2] for s in shard_samples(out / "datasets/ucf/all")] == [0, 0, 1, 1]
    # The test split without its list is refused, not silently every video.
    cat = write_catalog(tmp_path / "test.toml", [entry("ucf2", "ucf101_midframes", 3, 2, [
        {"kind": "manual", "file": "UCF-101", "note": "videos"}],
        classnames=["Apply Eye Makeup", "Archery"])])
    assert run(cat, out, "--from-file", f"ucf2={root}") == 1


def test_imagenet_v2_integer_folders_become_wnid_folders(tmp_path):
    wnids = ["n01440764", "n01443537", "n01484850"]
    (tmp_path / "wnids.txt").write_text("\n".join(wnids) + "\n")
    with tarfile.open(tmp_path / "v2.tar.gz", "w:gz") as t:
        for i in range(3):
            for k in range(2):
                data = jpg_bytes((i * 80, k * 100, 0))
                info = tarfile.TarInfo(f"imagenetv2-matched-frequency-format-val/{i}/{k}abc.jpeg")
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    e = entry("v2", "imagenetv2_folders", 6, 3, [{"kind": "manual", "file": "v2.tar.gz", "note": "x"}],
              role="sample", wnids=str(tmp_path / "wnids.txt"))
    cat = write_catalog(tmp_path / "c.toml", [e])
    out = tmp_path / "out"
    assert run(cat, out, "--from-file", f"v2={tmp_path / 'v2.tar.gz'}") == 0
    folder = out / "datasets/v2/test"
    assert sorted(p.name for p in folder.iterdir()) == wnids
    assert all(len(list((folder / w).iterdir())) == 2 for w in wnids)
    assert json.loads((out / "manifest.json").read_text())["datasets"]["v2"]["layout"] == "wnid_folders"


# ------------------------------------------------------------------ failure paths
class Server:
    """Serves files from a folder on 127.0.0.1; `cut` truncates the first full
    response of a file to that many bytes (a dropped connection)."""

    def __init__(self, root: Path, cut: int | None = None):
        self.root, self.cut, self.ranges, self.cut_done = root, cut, [], False
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                p = outer.root / self.path.lstrip("/")
                if not p.is_file():
                    self.send_error(404)
                    return
                data = p.read_bytes()
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                    body = data[start:]
                else:
                    self.send_response(200)
                    body = data
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut is not None and not outer.cut_done and not rng:
                    outer.cut_done = True
                    self.wfile.write(body[: outer.cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __exit__(self, *a):
        self.httpd.shutdown()
        self.httpd.server_close()


def idx_pair(tmp_path: Path):
    from sklearn.datasets import load_digits
    d = load_digits()
    srv = tmp_path / "srv"
    srv.mkdir()
    write_idx(srv / "t10k-images-idx3-ubyte.gz", (d.images * 15).astype(np.uint8))
    write_idx(srv / "t10k-labels-idx1-ubyte.gz", d.target)
    return srv


def served_mnist_catalog(tmp_path, base, srv, bad_sum=False):
    sources = []
    for n in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        s = sha256(srv / n)
        if bad_sum and n.startswith("t10k-images"):
            s = "0" * 64
        sources.append({"kind": "url", "url": f"{base}/{n}", "file": n, "checksum": f"sha256:{s}"})
    return write_catalog(tmp_path / "c.toml", [entry("served", "mnist_idx", 1797, 10, sources)])


def online(catalog, out, *args):
    return prepare.main(["--catalog", str(catalog), "--out", str(out), "--no-progress", *args])


def test_checksum_mismatch_fails_clearly_and_keeps_nothing(tmp_path, capsys):
    srv = idx_pair(tmp_path)
    out = tmp_path / "out"
    with Server(srv) as base:
        cat = served_mnist_catalog(tmp_path, base, srv, bad_sum=True)
        assert online(cat, out) == 1
    err = capsys.readouterr().err
    assert "served: FAILED" in err and "sha256 is" in err and "0" * 64 in err, err
    assert_nothing_half_written(out, "served", "datasets/served/test")
    dl = out / ".downloads/served"
    assert not (dl / "t10k-images-idx3-ubyte.gz").exists() and not (dl / "t10k-images-idx3-ubyte.gz.part").exists()


def test_truncated_download_is_resumed(tmp_path, capsys):
    srv = idx_pair(tmp_path)
    out = tmp_path / "out"
    size = (srv / "t10k-images-idx3-ubyte.gz").stat().st_size
    server = Server(srv, cut=size // 3)
    with server as base:
        cat = served_mnist_catalog(tmp_path, base, srv)
        assert online(cat, out) == 1  # the connection dropped: a clear failure, the .part kept
        err = capsys.readouterr().err
        assert "run again to resume" in err, err
        part = out / ".downloads/served/t10k-images-idx3-ubyte.gz.part"
        assert part.exists() and part.stat().st_size == size // 3
        assert_nothing_half_written(out, "served", "datasets/served/test")
        assert online(cat, out) == 0
    assert f"bytes={size // 3}-" in server.ranges, server.ranges
    assert (out / ".downloads/served/t10k-images-idx3-ubyte.gz").stat().st_size == size
    assert len(shard_samples(out / "datasets/served/test")) == 1797


def folder_zip(tmp_path: Path, corrupt: bool) -> Path:
    z = tmp_path / "tree.zip"
    with zipfile.ZipFile(z, "w") as f:
        for c in range(2):
            for i in range(3):
                data = jpg_bytes((c * 200, i * 50, 0))
                if corrupt and (c, i) == (1, 2):
                    data = data[: len(data) // 2]
                f.writestr(f"tree/class_{c}/{i}.jpg", data)
    return z


def test_corrupt_image_fails_and_keeps_nothing(tmp_path, capsys):
    z = folder_zip(tmp_path, corrupt=True)
    cat = write_catalog(tmp_path / "c.toml", [entry("tree", "imagefolder_archive", 6, 2,
                                                    [{"kind": "manual", "file": "tree.zip", "note": "x"}],
                                                    folder_order=["class_0", "class_1"])])
    out = tmp_path / "out"
    assert run(cat, out, "--from-file", f"tree={z}") == 1
    err = capsys.readouterr().err
    assert "tree: FAILED" in err and "does not decode" in err, err
    assert_nothing_half_written(out, "tree", "datasets/tree/test")
    # The same tree without the broken file prepares.
    z = folder_zip(tmp_path, corrupt=False)
    assert run(cat, out, "--from-file", f"tree={z}") == 0


def test_wrong_class_count_fails_and_keeps_nothing(tmp_path, capsys):
    e = catalog_entries()["digits"]
    e = dict(e, classes=11, classnames=e["classnames"] + ["ten"])
    cat = write_catalog(tmp_path / "c.toml", [e])
    out = tmp_path / "out"
    assert run(cat, out) == 1
    err = capsys.readouterr().err
    assert "10 distinct labels, the catalog expects 11 classes" in err, err
    assert_nothing_half_written(out, "digits", e["path"])


def test_missing_manual_file_says_what_to_do_and_others_go_on(tmp_path, capsys):
    fer = catalog_entries()["FER2013"]
    cat = write_catalog(tmp_path / "c.toml", [fer, catalog_entries()["digits"]])
    out = tmp_path / "out"
    assert run(cat, out) == 1
    err = capsys.readouterr().err
    assert "what to do: FER2013 needs Kaggle dataset msambare/fer2013" in err, err
    assert "--from-file FER2013=fer2013.zip" in err
    assert "ok      digits" in err  # the failure did not stop the next dataset
    assert_nothing_half_written(out, "FER2013", fer["path"])
    assert (out / "datasets/digits/all/nshards.txt").exists()


def test_imagefolder_archive_with_catalog_folder_order(tmp_path):
    """FER2013's Kaggle folders are named differently from its class names: folder_order maps them."""
    fer = catalog_entries()["FER2013"]
    z = tmp_path / "fer2013.zip"
    with zipfile.ZipFile(z, "w") as f:
        for c, folder in enumerate(fer["folder_order"]):
            for split in ("train", "test"):
                buf = io.BytesIO()
                Image.new("L", (48, 48), c * 30).save(buf, format="JPEG")
                f.writestr(f"{split}/{folder}/im{c}.jpg", buf.getvalue())
    e = dict(fer, samples=7)
    cat = write_catalog(tmp_path / "c.toml", [e])
    out = tmp_path / "out"
    # A zip holding train/ and test/: the converter must take the split's folder.
    # Given as DIR/<NAME>/<file> through --manual-dir, as the Kubernetes prepare Job does.
    manual = tmp_path / "manual" / "FER2013"
    manual.mkdir(parents=True)
    shutil.move(z, manual / z.name)
    code = run(cat, out, "--manual-dir", str(tmp_path / "manual"))
    assert code == 0
    samples = shard_samples(out / fer["path"])
    assert [s[2] for s in samples] == list(range(7))
