#!/usr/bin/env python3
"""Run README.md's shell blocks as written, after `bash scripts/local` (issue 22).

Usage:
  scripts/check-readme [--list] [--no-local]

Every fenced ```sh block of README.md runs, in order, in a fresh
`bash -euo pipefail` from the repository root, as a new user would type it: no
MLL__BROKER__* or MLL__STORE__* variable, no --config profile. A block that
cannot run here (a GPU cluster, network downloads, the two commands
themselves) is marked on the line before it with

  <!-- readme-commands: skip (WHY) -->

and the reason is printed; a skip without a reason fails the check. First
`bash scripts/local` runs (README's first command; quick once the toy run is
done) unless --no-local. --list prints the blocks and what happens to each.

Standard library only.
"""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SKIP = re.compile(r"^<!-- readme-commands: skip(?: \((?P<why>.+)\))? -->$")


def blocks(text):
    """(line number, skip reason or None, code) of every ```sh block."""
    lines = text.splitlines()
    out, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```sh":
            start = i + 1
            j = start
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            prev = next((lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), "")
            m = SKIP.match(prev)
            why = None
            if m:
                why = m.group("why") or ""
            out.append((start, why, "\n".join(lines[start:j])))
            i = j + 1
        else:
            i += 1
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--list", action="store_true", help="print the blocks and whether each runs; run nothing")
    ap.add_argument("--no-local", action="store_true", help="do not run scripts/local first")
    args = ap.parse_args()
    found = blocks((REPO / "README.md").read_text(encoding="utf-8"))
    unexplained = [line for line, why, _ in found if why == ""]
    if unexplained:
        sys.exit(f"check-readme: README.md blocks at lines {unexplained} are skipped without a reason: "
                 "write <!-- readme-commands: skip (WHY) -->")
    if args.list:
        for line, why, code in found:
            print(f"--- README.md:{line}: " + (f"skipped ({why})" if why else "runs"))
            print(code)
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLL__BROKER__", "MLL__STORE__")) and k not in ("MLL_CONFIG", "MLL_CONFIG_DIR")}
    if not args.no_local:
        print("check-readme: bash scripts/local (README's first command)", flush=True)
        subprocess.run(["bash", "scripts/local"], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    ran = 0
    for line, why, code in found:
        if why:
            print(f"check-readme: README.md:{line}: skipped ({why})")
            continue
        print(f"check-readme: README.md:{line}: running\n{code}", flush=True)
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stdout, r.stderr, sep="\n", file=sys.stderr)
            sys.exit(f"check-readme: the block at README.md:{line} failed (exit {r.returncode})")
        ran += 1
    print(f"check-readme: ok, {ran} blocks ran, {len(found) - ran} skipped")


if __name__ == "__main__":
    main()
