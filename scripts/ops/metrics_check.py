#!/usr/bin/env python3
"""Checks /metrics outputs (run by scripts/check-metrics).

Each SOURCE is an http(s) URL to scrape, a file, or '-' for stdin. For each:
- `promtool check metrics` (Prometheus' own parser and naming lint) must pass;
- every mll_* family in it must be declared in common/src/telemetry.rs with the
  same type (the dashboards are checked against those declarations).
Declared metrics missing from an output are listed for information: a labelled
metric has no series until its first observation.
Prints every problem and exits 1 if there was any.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import promql  # noqa: E402


def fetch(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    if re.match(r"^https?://", source):
        with urllib.request.urlopen(source, timeout=10) as r:
            return r.read().decode()
    return Path(source).read_text()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, required=True)
    ap.add_argument("--promtool", default="promtool")
    ap.add_argument("sources", nargs="+")
    a = ap.parse_args()
    declared = promql.telemetry_metrics(a.repo / "common/src/telemetry.rs")
    problems = []
    for src in a.sources:
        try:
            text = fetch(src)
        except Exception as e:  # noqa: BLE001 - any failure to read is reported the same way
            problems.append(f"{src}: cannot read it: {e} (is the binary running and serving /metrics there?)")
            continue
        if not text.strip():
            problems.append(f"{src}: empty output")
            continue
        r = subprocess.run([a.promtool, "check", "metrics"], input=text, capture_output=True, text=True)
        if r.returncode != 0:
            msg = (r.stdout + r.stderr).strip().replace("\n", "\n    ")
            problems.append(f"{src}: promtool check metrics failed (exit {r.returncode}):\n    {msg}")
        types = dict(re.findall(r"^# TYPE (\S+) (\S+)", text, re.M))
        for name, typ in sorted(types.items()):
            if not name.startswith("mll_"):
                continue
            if name not in declared:
                problems.append(f"{src}: exports {name}, which common/src/telemetry.rs does not declare")
            elif declared[name] != typ:
                problems.append(f"{src}: {name} is a {typ}, telemetry.rs declares a {declared[name]}")
        absent = sorted(set(declared) - set(types))
        note = f"; no series yet for {', '.join(absent)}" if absent else ""
        print(f"check-metrics: {src}: {sum(1 for n in types if n.startswith('mll_'))} mll families{note}", file=sys.stderr)
    for p in problems:
        print(f"FAIL {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
