#!/usr/bin/env python3
"""Wait until a benchmark spec's inputs are prepared, or fail saying which are not.

    wait_inputs.py --benchmark FILE [--timeout SECONDS] [--poll SECONDS]

Run before `coordinator submit` (the Kubernetes coordinator Job's init
container) while the prepare and export Jobs fill the shared volume. Ready
when every dataset of the spec is listed in <data root>/manifest.json
(scripts/prepare-data) and every hub model's folder holds module.pt and
model.json (scripts/export-hub renames a folder into place only after
`worker check` passed). Fails at once (exit 2) when a needed dataset or model
is recorded as failed in manifest.json / hub-manifest.json, and after
--timeout with the list of what is still missing. Standard library only.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path


def load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def missing_inputs(spec: dict, root: Path) -> tuple[list[str], list[str]]:
    """(still missing, failed for good) as human-readable lines."""
    manifest, hub_manifest = load(root / "manifest.json"), load(root / "hub-manifest.json")
    prepared = {e.get("path") for e in manifest.get("datasets", {}).values()}
    failed_ds = {f.get("path"): (n, f) for n, f in manifest.get("failures", {}).items()}
    missing, failed = [], []
    for d in spec.get("datasets", []):
        path = d.get("path")
        if path in prepared:
            continue
        if path in failed_ds:
            n, f = failed_ds[path]
            failed.append(f"dataset {d.get('name', n)} ({path}): prepare-data failed: {f.get('message')}; "
                          f"what to do: {f.get('hint')}")
        else:
            missing.append(f"dataset {d.get('name')} ({root / path}) is not in {root / 'manifest.json'}")
    for m in spec.get("hub", []):
        folder = root / m["artifact"]
        if (folder / "module.pt").is_file() and (folder / "model.json").is_file():
            continue
        rec = hub_manifest.get("models", {}).get(m["key"], {})
        if rec.get("status") == "FAILED":
            failed.append(f"model {m['key']}: export-hub failed: {rec.get('detail')}")
        else:
            missing.append(f"model {m['key']}: {folder} has no module.pt/model.json yet")
    return missing, failed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--benchmark", required=True)
    ap.add_argument("--timeout", type=float, default=48 * 3600)
    ap.add_argument("--poll", type=float, default=30)
    a = ap.parse_args(argv)
    spec_path = Path(a.benchmark)
    with open(spec_path, "rb") as f:
        spec = tomllib.load(f)
    root = (spec_path.parent / spec.get("data_root", ".")).resolve()
    deadline = time.monotonic() + a.timeout
    last = None
    while True:
        missing, failed = missing_inputs(spec, root)
        if failed:
            for line in failed:
                print(f"wait_inputs: FAILED {line}", file=sys.stderr)
            print("wait_inputs: the prepare or export Job failed for inputs this run needs; fix them and run "
                  "that Job again (kubectl -n mll logs job/mll-prepare, job/mll-export)", file=sys.stderr)
            return 2
        if not missing:
            print(f"wait_inputs: every dataset and model of {spec_path} is ready under {root}", file=sys.stderr)
            return 0
        if time.monotonic() >= deadline:
            for line in missing:
                print(f"wait_inputs: MISSING {line}", file=sys.stderr)
            print(f"wait_inputs: gave up after {a.timeout:.0f}s: are the prepare and export Jobs running? "
                  f"(kubectl -n mll get jobs)", file=sys.stderr)
            return 2
        if len(missing) != last:
            print(f"wait_inputs: waiting for {len(missing)} inputs (first: {missing[0]})", file=sys.stderr, flush=True)
            last = len(missing)
        time.sleep(a.poll)


if __name__ == "__main__":
    sys.exit(main())
