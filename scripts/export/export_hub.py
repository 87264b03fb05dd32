#!/usr/bin/env python3
"""Export every model of a benchmark spec's hub (scripts/export-hub runs this).

    scripts/export-hub --benchmark FILE --out DIR [--jobs N] [--random-weights] [--worker BIN] [--only KEY ...]

Each hub entry `<arch>/<tag>` with artifact folder A is exported by
scripts/export/export_open_clip.py into DIR/.tmp-export/, checked with `worker check`
and only then renamed to DIR/A (DIR is the data root the spec's artifact paths
are relative to). An existing DIR/A is kept when its model.json names the same
model (and the same --random-weights choice) and `worker check` passes.
Each export runs in its own process: one failing model does not stop the
others; the summary lists every model with its outcome and exit status 1 if
any failed. Hugging Face text towers (roberta, xlm-roberta, NLLB) get their
tokenizer.json from the HF tokenizer through the same exporter.

Network: real weights come from the open_clip / Hugging Face hubs, and HF text
towers also need their tokenizer files (HF cache, HF_HOME); --random-weights
needs no network for CLIP-BPE models.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def find_worker(given: str | None) -> Path:
    cands = [given] if given else []
    target = os.environ.get("CARGO_TARGET_DIR", str(REPO / "target"))
    cands += [f"{target}/release/worker", f"{target}/debug/worker", shutil.which("worker")]
    for c in cands:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return Path(c)
    sys.exit("export-hub: error: no worker binary to check exports with (tried --worker, $CARGO_TARGET_DIR/"
             "{release,debug}/worker, PATH); build it (`cargo build -p mll-worker`) or pass --worker BIN")


def worker_check(worker: Path, folder: Path) -> tuple[bool, str]:
    r = subprocess.run([str(worker), "check", str(folder), "--json"], capture_output=True, text=True,
                       env=dict(os.environ, MLL__WORKER__DEVICE="cpu"))
    return r.returncode == 0, (r.stderr.strip().splitlines() or [""])[-1]


def matches(folder: Path, key: str, random_weights: bool) -> bool:
    try:
        meta = json.loads((folder / "model.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("model_key") == key and bool(meta.get("exporter", {}).get("random_weights")) == random_weights


def export_one(key: str, artifact: str, args, worker: Path) -> tuple[str, str, float]:
    """(status, detail, seconds): status is kept, exported or FAILED."""
    t0 = time.time()
    final = Path(args.out) / artifact
    if final.exists() and matches(final, key, args.random_weights):
        ok, detail = worker_check(worker, final)
        if ok:
            return "kept", "model.json matches and worker check passes", time.time() - t0
    arch, tag = key.split("/", 1)
    tmp = Path(args.out) / ".tmp-export" / artifact.replace("/", "__")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(HERE / "export_open_clip.py"), arch, tag, str(tmp)]
    if args.random_weights:
        cmd += ["--random-weights", "--seed", str(args.seed)]
    log = Path(args.out) / ".tmp-export" / (artifact.replace("/", "__") + ".log")
    with open(log, "w") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        lines = [l for l in log.read_text().splitlines() if l.strip()]
        err = next((l for l in reversed(lines) if "error" in l.lower()), lines[-1] if lines else "no output")
        return "FAILED", f"export_open_clip.py exit {r.returncode}: {err} (log {log})", time.time() - t0
    ok, detail = worker_check(worker, tmp)
    if not ok:
        shutil.rmtree(tmp, ignore_errors=True)
        return "FAILED", f"worker check rejects the export: {detail}", time.time() - t0
    final.parent.mkdir(parents=True, exist_ok=True)
    old = tmp.with_name(tmp.name + ".old")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    log.unlink(missing_ok=True)
    return "exported", "", time.time() - t0


def write_hub_manifest(out: Path, hub: list, results: dict):
    """DIR/hub-manifest.json: each model's last outcome (the coordinator's wait-inputs step reads it)."""
    path = out / "hub-manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        manifest = {"version": 1, "models": {}}
    for m in hub:
        status, detail, _ = results[m["key"]]
        manifest["models"][m["key"]] = {"artifact": m["artifact"], "status": status, "detail": detail}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="export-hub", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchmark", required=True, help="benchmark spec (TOML) whose [[hub]] to export")
    ap.add_argument("--out", required=True, help="data root the spec's artifact paths are relative to (e.g. /data)")
    ap.add_argument("--jobs", type=int, default=1, help="exports at once (each a process; default 1)")
    ap.add_argument("--random-weights", action="store_true", help="random weights (offline tests)")
    ap.add_argument("--seed", type=int, default=0, help="seed for --random-weights")
    ap.add_argument("--worker", help="worker binary for `worker check` (default: from $CARGO_TARGET_DIR or PATH)")
    ap.add_argument("--only", nargs="+", metavar="KEY", help="export only these hub keys")
    args = ap.parse_args(argv)

    with open(args.benchmark, "rb") as f:
        hub = tomllib.load(f).get("hub", [])
    if args.only:
        unknown = set(args.only) - {m["key"] for m in hub}
        if unknown:
            ap.error(f"--only: {', '.join(sorted(unknown))} not in the spec's hub")
        hub = [m for m in hub if m["key"] in args.only]
    if not hub:
        ap.error(f"{args.benchmark} has no [[hub]] models")
    for m in hub:
        if "/" not in m["key"]:
            ap.error(f"hub key '{m['key']}' is not <architecture>/<pretrained>")
    worker = find_worker(args.worker)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results = {}
    with cf.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futs = {pool.submit(export_one, m["key"], m["artifact"], args, worker): m["key"] for m in hub}
        for n, fut in enumerate(cf.as_completed(futs), 1):
            key = futs[fut]
            try:
                results[key] = fut.result()
            except Exception as e:  # isolate: a bug on one model must not lose the others' results
                results[key] = ("FAILED", f"{type(e).__name__}: {e}", 0.0)
            print(f"export-hub: [{n}/{len(hub)}] {key}: {results[key][0]}", file=sys.stderr, flush=True)
    print("\nexport-hub summary:", file=sys.stderr)
    for m in hub:
        status, detail, secs = results[m["key"]]
        print(f"  {status:<8} {m['key']:<48} {secs:6.1f}s  {detail}", file=sys.stderr)
    write_hub_manifest(Path(args.out), hub, results)
    failed = [k for k, r in results.items() if r[0] == "FAILED"]
    counts = {s: sum(r[0] == s for r in results.values()) for s in ("exported", "kept", "FAILED")}
    print(f"export-hub: {counts['exported']} exported, {counts['kept']} kept, {counts['FAILED']} failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
