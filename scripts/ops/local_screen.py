#!/usr/bin/env python3
"""Run `scripts/local` on a terminal, as README's first command, and check what
the person in front of it sees (issue 22).

Usage:
  scripts/check-local-screen [--out DIR] [--timeout SECONDS] [--keep]

A private tmux server (160 x 50) runs `bash scripts/local --out DIR` (DIR is
emptied first, default out/screen-check, so every job runs). While it runs,
`tmux capture-pane` is read twice a second; the check fails unless

- every screen holds at most one progress block (one `run NAME: N/M jobs` line),
  and at least one screen showed it;
- no screen and not the final scrollback holds a log line per job (`executing`,
  `committed`, or any INFO line: the worker's lines go to DIR/run.log);
- the scrollback holds no copy of the block (it is redrawn in place and cleared
  at the end), and is short;
- scripts/local exits 0, and ends with the PATH line for bin/.

Standard library only; needs tmux (scripts/setup installs it).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAD = re.compile(r"run \S+: \d+/\d+ jobs")
PER_JOB = re.compile(r"\b(executing|committed)\b| INFO ")


def tmux(socket, *args, check=True):
    return subprocess.run(["tmux", "-L", socket, *args], check=check, capture_output=True, text=True).stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="out/screen-check", help="the run's output folder (emptied first)")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds the run may take (default 1200)")
    ap.add_argument("--keep", action="store_true", help="leave the output folder in place")
    args = ap.parse_args()
    if not shutil.which("tmux"):
        sys.exit("check-local-screen: tmux is missing (scripts/setup installs it)")
    out = REPO / args.out
    shutil.rmtree(out, ignore_errors=True)
    socket = f"mll-screen-{os.getpid()}"
    done = "__LOCAL_SCREEN_DONE__"
    # A private server: the shell inherits this environment (CARGO_TARGET_DIR, MLL_CACHE_DIR, ...).
    tmux(socket, "new-session", "-d", "-s", "u", "-x", "160", "-y", "50", "-c", str(REPO))
    tmux(socket, "set-option", "-g", "history-limit", "100000")
    problems, blocks_seen, max_blocks, status = [], 0, 0, None
    try:
        tmux(socket, "send-keys", "-t", "u", f"bash scripts/local --out {args.out}; echo {done} $?", "Enter")
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            time.sleep(0.5)
            screen = tmux(socket, "capture-pane", "-p", "-t", "u")
            heads = [l for l in screen.splitlines() if HEAD.search(l)]
            max_blocks = max(max_blocks, len(heads))
            blocks_seen += bool(heads)
            for line in screen.splitlines():
                if PER_JOB.search(line) and line not in problems:
                    problems.append(line)
            m = re.search(done + r" (\d+)", screen)
            if m:
                status = int(m.group(1))
                break
        history = tmux(socket, "capture-pane", "-p", "-t", "u", "-S", "-")
    finally:
        tmux(socket, "kill-server", check=False)
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    lines = [l for l in history.splitlines() if l.strip()]
    errors = []
    if status is None:
        errors.append(f"scripts/local did not finish within {args.timeout:.0f} s")
    elif status != 0:
        errors.append(f"scripts/local exited {status}")
    if blocks_seen == 0:
        errors.append("no screen showed the progress block")
    if max_blocks > 1:
        errors.append(f"a screen showed {max_blocks} progress blocks (expected one, redrawn in place)")
    copies = [l for l in lines if HEAD.search(l)]
    if copies:
        errors.append(f"the scrollback keeps {len(copies)} copies of the block, e.g. {copies[0]!r}")
    per_job = problems + [l for l in lines if PER_JOB.search(l) and l not in problems]
    if per_job:
        errors.append(f"{len(per_job)} log lines on the terminal, e.g. {per_job[0]!r} (they belong in run.log)")
    if len(lines) > 150:
        errors.append(f"the scrollback has {len(lines)} lines (the run's summary is about 60)")
    if not any("export PATH=" in l and "/bin:" in l for l in lines[-5:]):
        errors.append("scripts/local does not end with the PATH line for bin/")
    print(f"check-local-screen: {blocks_seen} screens showed the block (at most {max_blocks} at once); "
          f"scrollback {len(lines)} lines; scripts/local exited {status}")
    if errors:
        print("\n".join(["check-local-screen FAILED:", *(f"  - {e}" for e in errors), "--- scrollback:", history]), file=sys.stderr)
        sys.exit(1)
    print("check-local-screen: ok")


if __name__ == "__main__":
    main()
