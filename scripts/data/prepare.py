#!/usr/bin/env python3
"""Prepare the benchmark's datasets from the catalog (scripts/prepare-data runs this).

    scripts/prepare-data --catalog FILE --out DIR [--only NAME ...] [--from-file NAME=PATH ...]
                         [--manual-dir DIR] [--captions DIR] [--shard-size N] [--offline] [--no-progress]

For each catalog entry: take its sources in order of preference (official
URL, torchvision, the public WebDataset mirror, a file you give with
--from-file), download with resume and checksum into DIR/.downloads, convert
to the cluster's layout (targets: CLIP_benchmark WebDataset shards with
nshards.txt in the split folder, classnames.txt and
zeroshot_classification_templates.txt in the split folder and, as
CLIP_benchmark reads them, in the dataset folder above it; sample
sets: <wnid>/<image> folders for `coordinator graph build`), verify (sample
and class counts against the catalog, every image decodes, labels in range),
and record it in DIR/manifest.json with its content hash.

A dataset is written into DIR/.tmp-prepare/ and renamed into place only after
it verified, so a failed or interrupted run leaves nothing a later run would
take as prepared. Rerunning skips datasets whose manifest entry matches the
folder and the catalog entry. A dataset that fails does not stop the others;
the failures are listed at the end with what to do. Exit 1 if any failed.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import time
import tomllib
import traceback
from pathlib import Path

from PIL import Image
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from converters import CONVERTERS, ConvertError, read_shard  # noqa: E402
from download import DownloadError, download, verify_checksum  # noqa: E402

MANIFEST_VERSION = 1


class Failure(Exception):
    """A dataset that could not be prepared: `message` says why, `hint` what to do."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


# ------------------------------------------------------------------ hashing
def file_sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def tree_files(root: Path) -> list[Path]:
    return sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix())


def listing_sha256(root: Path) -> str:
    """sha256 of 'relative path NUL size LF' over the sorted files: cheap, what the coordinator checks at submit."""
    h = hashlib.sha256()
    for p in tree_files(root):
        h.update(f"{p.relative_to(root).as_posix()}\0{p.stat().st_size}\n".encode())
    return h.hexdigest()


def content_sha256(root: Path) -> str:
    """sha256 of 'relative path NUL sha256(file) LF' over the sorted files."""
    h = hashlib.sha256()
    for p in tree_files(root):
        h.update(f"{p.relative_to(root).as_posix()}\0{file_sha256(p)}\n".encode())
    return h.hexdigest()


def entry_sha256(entry: dict) -> str:
    return hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()


# ------------------------------------------------------------------ writers
class WdsWriter:
    """CLIP_benchmark's WebDataset layout: {i}.tar with <key>.<ext> + <key>.cls, nshards.txt."""

    def __init__(self, root: Path, shard_size: int):
        self.root, self.shard_size = root, shard_size
        self.n, self.tar, self.shards = 0, None, 0

    def add(self, data: bytes, ext: str, label: int):
        if self.n % self.shard_size == 0:
            self.close_shard()
            self.tar = tarfile.open(self.root / f"{self.shards}.tar", "w", format=tarfile.USTAR_FORMAT)
            self.shards += 1
        key = f"s{self.n:07d}"
        for name, payload in ((f"{key}.{ext}", data), (f"{key}.cls", str(label).encode())):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(payload), 0, 0o644  # fixed mtime: same input, same bytes
            self.tar.addfile(info, io.BytesIO(payload))
        self.n += 1

    def close_shard(self):
        if self.tar is not None:
            self.tar.close()
            self.tar = None

    def finish(self, entry: dict):
        self.close_shard()
        (self.root / "nshards.txt").write_text(f"{self.shards}\n")
        (self.root / "classnames.txt").write_text("".join(c + "\n" for c in entry["classnames"]))
        (self.root / "zeroshot_classification_templates.txt").write_text("".join(t + "\n" for t in entry["templates"]))


def write_benchmark_layout(entry: dict, final: Path):
    """CLIP_benchmark's build_wds_dataset reads classnames.txt and the templates
    from the dataset folder above `<split>/nshards.txt`: copy them there when
    the dataset's folder is its split folder (every catalog target), so that
    `clip_benchmark eval --dataset wds/NAME --dataset_root <that folder> --split
    SPLIT` runs on a prepared dataset as on a published mirror."""
    if entry["role"] == "sample" or final.name != entry["split"]:
        return
    for name in ("classnames.txt", "zeroshot_classification_templates.txt"):
        text = (final / name).read_text()
        dest = final.parent / name
        if dest.exists() and dest.read_text() == text:
            continue
        tmp = dest.with_name(f".{name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, dest)


class WnidWriter:
    """Sample sets: <wnid>/<index>.<ext>, as `coordinator graph build --samples` reads them."""

    def __init__(self, root: Path, wnids: list[str]):
        self.root, self.wnids, self.n = root, wnids, 0

    def add(self, data: bytes, ext: str, label: int):
        if not 0 <= label < len(self.wnids):
            raise ConvertError(f"label {label} is outside 0..{len(self.wnids) - 1}")
        d = self.root / self.wnids[label]
        d.mkdir(exist_ok=True)
        (d / f"{self.n:07d}.{ext}").write_bytes(data)
        self.n += 1

    def finish(self, entry: dict):
        pass


# ------------------------------------------------------------------ verify
def decode_check(data: bytes, where: str):
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except Exception as e:  # PIL raises many types for broken files
        raise Failure(f"{where}: the image does not decode ({type(e).__name__}: {e})",
                      "the source file is corrupt: delete its download under DIR/.downloads and run again") from e


def verify(entry: dict, root: Path, progress: bool) -> dict:
    """Re-reads the written dataset; returns {samples, classes}. Raises Failure on any mismatch."""
    n_classes = entry["classes"]
    labels: dict[int, int] = {}
    bar = tqdm(total=entry["samples"], desc=f"verify {entry['name']}", unit="img", disable=not progress, leave=False)
    if entry["role"] == "sample":
        for label, wnid in enumerate(entry["_wnids"]):
            d = root / wnid
            for p in sorted(d.iterdir()) if d.is_dir() else []:
                decode_check(p.read_bytes(), str(p.relative_to(root)))
                labels[label] = labels.get(label, 0) + 1
                bar.update(1)
    else:
        nshards = int((root / "nshards.txt").read_text())
        names = (root / "classnames.txt").read_text().splitlines()
        if names != entry["classnames"]:
            raise Failure(f"{root}/classnames.txt differs from the catalog's class names")
        for i in range(nshards):
            for j, (data, ext, label) in enumerate(read_shard(root / f"{i}.tar")):
                decode_check(data, f"{i}.tar sample {j}")
                if not 0 <= label < n_classes:
                    raise Failure(f"{i}.tar sample {j}: label {label} is outside 0..{n_classes - 1} "
                                  f"(the catalog says {n_classes} classes)")
                labels[label] = labels.get(label, 0) + 1
                bar.update(1)
    bar.close()
    total = sum(labels.values())
    if total != entry["samples"]:
        raise Failure(f"{total} samples, the catalog expects {entry['samples']} ({entry['samples_source']})",
                      "the source differs from the one the catalog describes (another split or version?)")
    if len(labels) != n_classes:
        raise Failure(f"{len(labels)} distinct labels, the catalog expects {n_classes} classes ({entry['classes_source']})",
                      "the source differs from the one the catalog describes (another split or version?)")
    return {"samples": total, "classes": len(labels)}


# ------------------------------------------------------------------ sources
def source_options(entry: dict):
    """Sources grouped into alternatives, in the catalog's order: all `url` files
    together, all `manual` files together, each mirror / torchvision / python alone."""
    options, seen = [], {}
    for s in entry["sources"]:
        k = s["kind"]
        if k in ("url", "manual"):
            if k not in seen:
                seen[k] = {"kind": k, "sources": []}
                options.append(seen[k])
            seen[k]["sources"].append(s)
        else:
            options.append({"kind": k, "sources": [s]})
    return options


def match_given(entry: dict, sources: list, given: list[Path]) -> dict:
    """Maps --from-file paths to the sources' file names (by name; a single path
    fills a single-file dataset whatever its name)."""
    files = {}
    names = [s["file"] for s in sources]
    for p in given:
        if p.name in names:
            files[p.name] = p
        elif len(names) == 1 and len(given) == 1:
            files[names[0]] = p
        else:
            files[p.name] = p  # e.g. extra label files a converter looks for
    return files


def acquire(entry: dict, option: dict, args, given: list[Path]):
    """(converter name, files) for one source option; raises Failure when it cannot be had."""
    name, kind = entry["name"], option["kind"]
    dl = Path(args.out) / ".downloads" / name
    progress = not args.no_progress
    if kind == "python":
        return entry["converter"], {}
    if kind == "manual":
        if not given:
            s = option["sources"][0]
            raise Failure(f"needs a file you provide: {', '.join(x['file'] for x in option['sources'])}",
                          f"{name} needs {s['note']}: --from-file {name}={s['file']}")
        files = match_given(entry, option["sources"], given)
        for s in option["sources"]:
            if s["file"] in files and s.get("checksum"):
                verify_given(files[s["file"]], s["checksum"], name)
        return entry["converter"], files
    if kind == "url":
        files = match_given(entry, option["sources"], given) if given else {}
        for s in option["sources"]:
            if s["file"] in files:
                verify_given(files[s["file"]], s["checksum"], name)
                continue
            if args.offline:
                raise Failure(f"{s['file']} is not here and --offline forbids downloading {s['url']}",
                              f"download it elsewhere and pass --from-file {name}={s['file']}")
            try:
                files[s["file"]] = download(s["url"], dl / s["file"], s["checksum"], progress=progress)
            except DownloadError as e:
                raise Failure(str(e), f"run again to resume, or download {s['url']} yourself and pass "
                                      f"--from-file {name}={s['file']}") from e
        return entry["converter"], files
    if kind == "wds_mirror":
        s = option["sources"][0]
        if args.offline:
            raise Failure(f"the WebDataset mirror {s['url']} needs the network (--offline)")
        folders = []
        for split in s["splits"]:
            folder = dl / "mirror" / split
            try:
                n_file = download(f"{s['url']}/{split}/nshards.txt", folder / "nshards.txt", None, progress=progress)
                n = int(n_file.read_text().strip())
                for i in range(n):
                    download(f"{s['url']}/{split}/{i}.tar", folder / f"{i}.tar", None, progress=progress)
            except (DownloadError, ValueError) as e:
                raise Failure(f"mirror {s['url']}/{split}: {e}", "run again to resume the mirror's shards") from e
            folders.append(folder)
        return "wds_mirror", {"mirror": folders}
    if kind == "torchvision":
        s = option["sources"][0]
        import torchvision.datasets as tvd
        cls = getattr(tvd, s["class"])
        root = dl / "torchvision"
        download_ok = not args.offline
        dirs = [p for p in given if p.is_dir()]
        if dirs:
            root, download_ok = dirs[0], False
        kw = {"train": s["split"] == "train"} if s["class"] in ("CIFAR100", "CIFAR10", "MNIST") else {"split": s["split"]}
        try:
            ds = cls(str(root), download=download_ok, **kw)
        except Exception as e:  # torchvision raises RuntimeError/URLError/md5 errors
            raise Failure(f"torchvision {s['class']}: {type(e).__name__}: {e}",
                          f"torchvision's download failed or is disabled; pass the files with --from-file {name}=ROOT "
                          f"(a folder laid out as torchvision's {s['class']} expects)") from e
        return "torchvision", {"torchvision": ds}
    raise Failure(f"unknown source kind {kind}")


def verify_given(path: Path, checksum, name: str):
    if not path.exists():
        raise Failure(f"{path} does not exist", f"check the path given with --from-file {name}=...")
    if path.is_file():
        try:
            verify_checksum(path, checksum)
        except DownloadError as e:
            raise Failure(str(e).replace("it was removed, run again to download it afresh", "replace it"),
                          f"the file given with --from-file {name}= is not the published one") from e


# ------------------------------------------------------------------ one dataset
def prepare_one(entry: dict, args, given: list[Path], manifest: dict) -> str:
    """Prepares one dataset; returns 'skipped' or 'prepared'. Raises Failure."""
    out = Path(args.out)
    final = out / entry["path"]
    digest = entry_sha256(entry)
    rec = manifest["datasets"].get(entry["name"])
    if final.exists():
        if rec and rec.get("entry_sha256") == digest and rec.get("listing_sha256") == listing_sha256(final):
            write_benchmark_layout(entry, final)
            return "skipped"
        if not rec:
            raise Failure(f"{final} exists but the manifest does not list it (prepared by something else?)",
                          f"move {final} away, then run again")
    if entry["classnames"] and len(entry["classnames"]) != entry["classes"]:
        raise Failure(f"the catalog lists {len(entry['classnames'])} class names for {entry['classes']} classes",
                      "fix the catalog entry")
    tmp_root = out / ".tmp-prepare"
    tmp = tmp_root / f"{entry['name']}.{os.getpid()}"
    work = tmp_root / f"{entry['name']}.{os.getpid()}.work"
    for stale in tmp_root.glob(f"{entry['name']}.*") if tmp_root.exists() else []:
        shutil.rmtree(stale, ignore_errors=True)  # left by an interrupted run
    tmp.mkdir(parents=True)
    work.mkdir(parents=True)
    try:
        errors = []
        for option in source_options(entry):
            try:
                converter, files = acquire(entry, option, args, given)
            except Failure as f:
                errors.append(f)
                continue
            writer = (WnidWriter(tmp, entry["_wnids"]) if entry["role"] == "sample"
                      else WdsWriter(tmp, args.shard_size))
            bar = tqdm(total=entry["samples"], desc=f"convert {entry['name']}", unit="img",
                       disable=args.no_progress, leave=False)
            try:
                for data, ext, label in CONVERTERS[converter](entry, files, work):
                    writer.add(data, ext, label)
                    bar.update(1)
            except (ConvertError, OSError, KeyError, ValueError) as e:
                raise Failure(f"converting from {option['kind']} ({converter}): {type(e).__name__}: {e}",
                              "the source files are not what the catalog describes") from e
            finally:
                bar.close()
            writer.finish(entry)
            break
        else:
            last = errors[-1] if errors else Failure("no sources")
            msg = "; ".join(f"{o['kind']}: {e}" for o, e in zip(source_options(entry), errors))
            hints = [e.hint for e in errors if e.hint]
            manual_hint = next((h for h in hints if "--from-file" in h), last.hint)
            raise Failure(f"no source could be used ({msg})", manual_hint)
        counts = verify(entry, tmp, not args.no_progress)
        listing, content = listing_sha256(tmp), content_sha256(tmp)
        final.parent.mkdir(parents=True, exist_ok=True)
        old = None
        if final.exists():
            old = tmp_root / f"{entry['name']}.{os.getpid()}.old"
            os.replace(final, old)
        os.replace(tmp, final)
        write_benchmark_layout(entry, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        manifest["datasets"][entry["name"]] = {
            "path": entry["path"], "role": entry["role"], "split": entry["split"],
            "layout": "wnid_folders" if entry["role"] == "sample" else "webdataset",
            "samples": counts["samples"], "classes": counts["classes"],
            "listing_sha256": listing, "content_sha256": content, "entry_sha256": digest,
        }
        write_manifest(out, manifest)
        return "prepared"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def read_manifest(out: Path) -> dict:
    p = out / "manifest.json"
    if p.exists():
        m = json.loads(p.read_text())
        if m.get("version") == MANIFEST_VERSION:
            return m
    return {"version": MANIFEST_VERSION, "datasets": {}}


def write_manifest(out: Path, manifest: dict):
    p = out / "manifest.json"
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, p)


def load_wnids(entry: dict) -> list[str]:
    p = Path(entry["wnids"])
    if not p.is_absolute():  # a file of timm's class lists (an absolute path: a test's own list)
        import timm
        p = Path(timm.__file__).parent / "data" / "_info" / entry["wnids"]
    if not p.is_file():
        raise Failure(f"{p} not found (the timm package lists the ImageNet wnids)", "install timm in the venv")
    return [w.strip() for w in p.read_text().splitlines() if w.strip()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="prepare-data", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    here = Path(__file__).resolve().parents[2]
    ap.add_argument("--catalog", default=str(here / "configs/catalog/datasets.toml"), help="the dataset catalog (TOML)")
    ap.add_argument("--out", required=True, help="the data root (e.g. /data)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="prepare only these catalog entries")
    ap.add_argument("--from-file", action="append", default=[], metavar="NAME=PATH",
                    help="a file or folder you downloaded for dataset NAME (repeat for several files)")
    ap.add_argument("--manual-dir", metavar="DIR",
                    help="files you downloaded, as DIR/<NAME>/<file>: each is --from-file NAME=DIR/NAME/file")
    ap.add_argument("--captions", metavar="DIR", help="copy MLL's caption files (<Dataset>.json) from DIR to OUT/captions")
    ap.add_argument("--shard-size", type=int, default=5000, help="samples per WebDataset shard (default 5000)")
    ap.add_argument("--offline", action="store_true", help="never use the network (only --from-file and bundled data)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)

    with open(args.catalog, "rb") as f:
        catalog = tomllib.load(f)
    entries = {d["name"]: d for d in catalog["dataset"]}
    given: dict[str, list[Path]] = {}
    for item in args.from_file:
        if "=" not in item:
            ap.error(f"--from-file {item}: expected NAME=PATH")
        k, v = item.split("=", 1)
        if k not in entries:
            ap.error(f"--from-file {item}: '{k}' is not in the catalog ({', '.join(entries)})")
        given.setdefault(k, []).append(Path(v).expanduser().resolve())
    if args.manual_dir and Path(args.manual_dir).is_dir():
        for d in sorted(Path(args.manual_dir).iterdir()):
            if d.is_dir() and d.name in entries:
                given.setdefault(d.name, []).extend(sorted(p.resolve() for p in d.iterdir()))
    names = args.only or list(entries)
    unknown = [n for n in names if n not in entries]
    if unknown:
        ap.error(f"--only: {', '.join(unknown)} not in the catalog ({', '.join(entries)})")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # Specs under OUT/benchmarks find the catalog at OUT/catalog/datasets.toml.
    (out / "catalog").mkdir(exist_ok=True)
    shutil.copyfile(args.catalog, out / "catalog" / "datasets.toml")
    if args.captions:
        (out / "captions").mkdir(exist_ok=True)
        for p in sorted(Path(args.captions).glob("*.json")):
            shutil.copyfile(p, out / "captions" / p.name)
    manifest = read_manifest(out)
    results, failures = [], []
    for name in names:
        entry = dict(entries[name])
        entry.setdefault("classnames", [])
        t0 = time.time()
        try:
            if entry["role"] == "sample":
                entry["_wnids"] = load_wnids(entry)
            status = prepare_one(entry, args, given.get(name, []), manifest)
            results.append((name, status, time.time() - t0))
            print(f"prepare-data: {name}: {status} ({entry['samples']} samples, {entry['classes']} classes) -> "
                  f"{out / entry['path']}", file=sys.stderr)
        except Failure as f:
            failures.append((name, str(f), f.hint))
            print(f"prepare-data: {name}: FAILED: {f}", file=sys.stderr)
        except Exception as e:  # an unexpected bug must not stop the other datasets
            failures.append((name, f"{type(e).__name__}: {e}", "a bug in prepare-data: report it with this trace"))
            traceback.print_exc()
    # The last run's failures, for whoever waits on this manifest (the coordinator's
    # wait-inputs step fails at once on a dataset it needs instead of timing out).
    manifest = read_manifest(out)
    manifest.setdefault("failures", {})
    for name, _, _ in results:
        manifest["failures"].pop(name, None)
    for name, msg, hint in failures:
        manifest["failures"][name] = {"path": entries[name]["path"], "message": msg, "hint": hint}
    write_manifest(out, manifest)
    print("\nprepare-data summary:", file=sys.stderr)
    for name, status, secs in results:
        print(f"  ok      {name:<32} {status} in {secs:.1f}s", file=sys.stderr)
    for name, msg, hint in failures:
        print(f"  FAILED  {name:<32} {msg}", file=sys.stderr)
        if hint:
            print(f"          what to do: {hint}", file=sys.stderr)
    print(f"manifest: {out / 'manifest.json'}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
