"""Converters: a dataset's source files -> samples (encoded image bytes, file
extension, label). Each converter gets the catalog entry and `files`, a dict
from the source's file name (or "torchvision", "mirror") to a local path, and
yields samples in the dataset's canonical order.

The names here are the catalog's `converter` values (mll_common::catalog::CONVERTERS
lists the same names; tests check they agree).
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".ppm", ".bmp", ".JPEG")


class ConvertError(Exception):
    pass


def png(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(arr)).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def need(files: dict, name: str, entry: dict) -> Path:
    if name not in files:
        raise ConvertError(f"{entry['name']}: the converter needs {name}, which no source provided")
    return Path(files[name])


def unpack(path: Path, work: Path) -> Path:
    """A folder as is; a zip/tar(.gz) extracted into work. Returns the folder."""
    if path.is_dir():
        return path
    dest = work / (path.name + ".d")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            z.extractall(dest)
    elif tarfile.is_tarfile(path):
        with tarfile.open(path) as t:
            t.extractall(dest, filter="data")
    else:
        raise ConvertError(f"{path} is neither a folder, a zip nor a tar archive")
    return dest


def class_root(root: Path, names: list[str], split: str | None = None) -> Path:
    """The folder under root whose subfolders are the classes (archives often
    wrap it in folders; one holding train/ and test/ is resolved by the split)."""
    hits = [c for c in [root] + sorted(p for p in root.rglob("*") if p.is_dir())
            if set(names) <= {p.name for p in c.iterdir() if p.is_dir()}]
    if len(hits) > 1 and split:
        hits = [h for h in hits if split in h.relative_to(root).parts] or hits
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise ConvertError(f"{root}: no folder holds the class folders {names[:3]}... ({len(names)} expected)")
    raise ConvertError(f"{root}: several folders hold the class folders ({', '.join(str(h) for h in hits[:4])}); "
                       f"give the one of split '{split}'")


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def ext_of(p: Path) -> str:
    e = p.suffix.lower().lstrip(".")
    return "jpg" if e == "jpeg" else e


def read_image_file(p: Path):
    """Keeps JPEG/PNG/WebP bytes as they are; converts other formats (PPM...) to PNG."""
    ext = ext_of(p)
    if ext in ("jpg", "png", "webp"):
        return p.read_bytes(), ext
    with Image.open(p) as im:
        return png(im.convert("RGB")), "png"


# ------------------------------------------------------------------ converters
def sklearn_digits(entry, files, work):
    from sklearn.datasets import load_digits
    d = load_digits()
    for img, label in zip(d.images, d.target):
        # 8x8 grey levels 0..16 -> 0..255.
        yield png((img * (255.0 / 16.0)).round().astype(np.uint8)), "png", int(label)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format), gzipped or not."""
    opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ConvertError(f"{path}: not an IDX file (bad magic)")
    dtype = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}.get(data[2])
    if dtype is None:
        raise ConvertError(f"{path}: unknown IDX type 0x{data[2]:02x}")
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ConvertError(f"{path}: header says {dims} but holds {arr.size} values (truncated?)")
    return arr.reshape(dims)


def mnist_idx(entry, files, work):
    images = read_idx(need(files, "t10k-images-idx3-ubyte.gz", entry))
    labels = read_idx(need(files, "t10k-labels-idx1-ubyte.gz", entry))
    if len(images) != len(labels):
        raise ConvertError(f"MNIST: {len(images)} images but {len(labels)} labels")
    for img, label in zip(images, labels):
        yield png(img), "png", int(label)


def flowers102_mat(entry, files, work):
    from scipy.io import loadmat
    labels = loadmat(need(files, "imagelabels.mat", entry))["labels"].ravel()
    setid = loadmat(need(files, "setid.mat", entry))
    split_key = {"test": "tstid", "train": "trnid", "val": "valid"}[entry["split"]]
    ids = setid[split_key].ravel()
    jpg = class_free_root(unpack(need(files, "102flowers.tgz", entry), work), "image_00001.jpg")
    for i in ids:
        p = jpg / f"image_{int(i):05d}.jpg"
        if not p.is_file():
            raise ConvertError(f"Flowers102: {p.name} listed in setid.mat is missing from 102flowers.tgz")
        # imagelabels.mat counts classes from 1.
        yield p.read_bytes(), "jpg", int(labels[int(i) - 1]) - 1


def class_free_root(root: Path, probe: str) -> Path:
    hits = list(root.rglob(probe))
    if not hits:
        raise ConvertError(f"{root}: no {probe} inside (is it the right archive?)")
    return hits[0].parent


def gtsrb_csv(entry, files, work):
    images = unpack(need(files, "GTSRB_Final_Test_Images.zip", entry), work)
    gt = unpack(need(files, "GTSRB_Final_Test_GT.zip", entry), work)
    csvs = list(gt.rglob("GT-final_test.csv"))
    if not csvs:
        raise ConvertError("GTSRB: GT-final_test.csv not found in GTSRB_Final_Test_GT.zip")
    ppm_dir = class_free_root(images, "00000.ppm")
    with open(csvs[0], newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    if not rows or "Filename" not in rows[0] or "ClassId" not in rows[0]:
        raise ConvertError(f"{csvs[0]}: expected ';'-separated columns Filename and ClassId")
    for r in sorted(rows, key=lambda r: r["Filename"]):
        p = ppm_dir / r["Filename"]
        if not p.is_file():
            raise ConvertError(f"GTSRB: {r['Filename']} in the ground truth CSV is missing from the images zip")
        data, ext = read_image_file(p)
        yield data, ext, int(r["ClassId"])


def pcam_h5(entry, files, work):
    import h5py

    def open_h5(name):
        p = need(files, name, entry)
        if p.read_bytes()[:2] == b"\x1f\x8b":
            out = work / p.name.removesuffix(".gz")
            with gzip.open(p, "rb") as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
            p = out
        return h5py.File(p, "r")

    with open_h5("camelyonpatch_level_2_split_test_x.h5.gz") as fx, open_h5("camelyonpatch_level_2_split_test_y.h5.gz") as fy:
        x, y = fx["x"], fy["y"]
        if len(x) != len(y):
            raise ConvertError(f"PCAM: {len(x)} images but {len(y)} labels")
        for i in range(len(x)):
            yield png(x[i]), "png", int(np.asarray(y[i]).ravel()[0])


def middle_frame(video: Path) -> bytes:
    import av
    with av.open(str(video)) as c:
        stream = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(stream)]
    if not frames:
        raise ConvertError(f"{video}: no decodable video frames")
    buf = io.BytesIO()
    Image.fromarray(frames[len(frames) // 2]).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def ucf101_midframes(entry, files, work):
    """CoOp's UCF-101-midframes (<Class>/<video>.jpg) or the videos (<Class>/v_*.avi).
    Split "all" (UCF101, the released MLL loader's reading): every video. Split
    "test" (UCF101-test): only the videos of split_zhou_UCF101.json's test list,
    which must then be inside the folder or zip."""
    (name, src), = [(k, v) for k, v in files.items()]
    root = unpack(Path(src), work)
    folders = [c.replace(" ", "_") for c in entry["classnames"]]
    croot = class_root(root, folders, entry["split"])
    wanted = None
    if entry["split"] == "test":
        split = list(root.rglob("split_zhou_UCF101.json"))
        if not split:
            raise ConvertError("CoOp's split_zhou_UCF101.json is not in the folder: the test split needs its list "
                               "(or prepare UCF101, every video, as the released MLL code reads it)")
        wanted = {Path(item[0]).stem for item in json.loads(split[0].read_text())["test"]}
    for label, folder in enumerate(folders):
        for p in sorted((croot / folder).iterdir()):
            if wanted is not None and p.stem not in wanted:
                continue
            if p.suffix.lower() in (".avi", ".mp4", ".mkv", ".webm"):
                yield middle_frame(p), "jpg", label
            elif p.suffix.lower() in IMAGE_EXTS:
                data, ext = read_image_file(p)
                yield data, ext, label


def imagefolder_archive(entry, files, work):
    """<class>/<image> trees: labels from folder_order, else the wnids (sample
    sets), else the class names (spaces as '_' also accepted)."""
    (name, src), = [(k, v) for k, v in files.items()]
    root = unpack(Path(src), work)
    folders = entry.get("folder_order") or entry.get("_wnids") or entry["classnames"]
    try:
        croot = class_root(root, folders, entry["split"])
    except ConvertError:
        folders = [f.replace(" ", "_") for f in folders]
        croot = class_root(root, folders, entry["split"])
    for label, folder in enumerate(folders):
        for p in images_in(croot / folder):
            data, ext = read_image_file(p)
            yield data, ext, label


def imagenetv2_folders(entry, files, work):
    """ImageNetV2's folders are named 0..999: the class index, whose wnid is the i-th of imagenet_synsets.txt."""
    (name, src), = [(k, v) for k, v in files.items()]
    root = unpack(Path(src), work)
    n = len(entry["_wnids"])
    croot = class_root(root, [str(i) for i in range(n)], entry["split"])
    for i in range(n):
        for p in images_in(croot / str(i)):
            data, ext = read_image_file(p)
            yield data, ext, i


def imagenet_val(entry, files, work):
    """ILSVRC2012_img_val.tar + LOC_val_solution.csv (ImageId, PredictionString starting with the wnid)."""
    tar = need(files, "ILSVRC2012_img_val.tar", entry)
    sol = files.get("LOC_val_solution.csv")
    if sol is None:
        raise ConvertError("imagenet-val needs the labels too: --from-file imagenet-val=LOC_val_solution.csv "
                           "(Kaggle's ImageNet localization challenge) beside the tar")
    index = {w: i for i, w in enumerate(entry["_wnids"])}
    with open(sol, newline="") as f:
        labels = {r["ImageId"]: index[r["PredictionString"].split()[0]] for r in csv.DictReader(f)}
    root = unpack(Path(tar), work)
    for p in images_in(root):
        if p.stem not in labels:
            raise ConvertError(f"imagenet-val: {p.name} has no row in LOC_val_solution.csv")
        data, ext = read_image_file(p)
        yield data, ext, labels[p.stem]


def wds_mirror(entry, files, work):
    """Samples of CLIP_benchmark WebDataset shards (the mirror's split folders, in order)."""
    for folder in files["mirror"]:
        n = int((Path(folder) / "nshards.txt").read_text().strip())
        for i in range(n):
            yield from read_shard(Path(folder) / f"{i}.tar")


def read_shard(path: Path):
    """(bytes, ext, label) of each sample of a tar shard in tar order."""
    key, members = None, {}

    def flush():
        img = next((e for e in ("webp", "png", "jpg", "jpeg") if e in members), None)
        if img is None or "cls" not in members:
            raise ConvertError(f"{path}: sample {key} lacks an image or a cls member")
        return members[img], ("jpg" if img == "jpeg" else img), int(members["cls"].decode().strip())

    with tarfile.open(path) as t:
        for m in t:
            if not m.isfile():
                continue
            base = m.name.rsplit("/", 1)[-1]
            if "." not in base or base.startswith("."):
                continue
            k = m.name[: len(m.name) - len(base) + base.index(".")]
            ext = base[base.index(".") + 1:].lower()
            if key is not None and k != key:
                yield flush()
                members = {}
            key = k
            members[ext] = t.extractfile(m).read()
    if key is not None:
        yield flush()


def torchvision_ds(entry, files, work):
    """Any torchvision dataset class: PIL images and integer targets."""
    ds = files["torchvision"]
    for i in range(len(ds)):
        img, label = ds[i]
        buf = io.BytesIO()
        fmt = "PNG" if img.mode in ("L", "P") or img.size[0] * img.size[1] <= 96 * 96 else "JPEG"
        img.convert("RGB").save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        yield buf.getvalue(), "png" if fmt == "PNG" else "jpg", int(label)


CONVERTERS = {
    "torchvision": torchvision_ds,
    "imagefolder_archive": imagefolder_archive,
    "flowers102_mat": flowers102_mat,
    "gtsrb_csv": gtsrb_csv,
    "mnist_idx": mnist_idx,
    "pcam_h5": pcam_h5,
    "ucf101_midframes": ucf101_midframes,
    "wds_mirror": wds_mirror,
    "imagenet_val": imagenet_val,
    "imagenetv2_folders": imagenetv2_folders,
    "sklearn_digits": sklearn_digits,
}
