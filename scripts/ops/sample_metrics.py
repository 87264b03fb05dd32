#!/usr/bin/env python3
"""Renders /metrics text the way the binaries' prometheus crate does, from the
declarations in common/src/telemetry.rs (names, help, types, labels, bucket
bounds), with made-up label values and values. It stands in for the binaries
where they cannot run: to test scripts/check-metrics and check-prometheus
themselves. It is not evidence that the binaries' output is right; run the
checks on the real /metrics for that.

  sample_metrics.py render [--role worker|coordinator|all] [--scrape N]
  sample_metrics.py serve PORT [--role ...]   (counters grow with every scrape)
"""
from __future__ import annotations

import argparse
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LABEL_VALUES = {
    "kind": ["embed", "label", "evaluate"],
    "status": ["committed", "requeued", "dead_lettered"],
    "stage": ["embed", "label", "evaluate"],
    "run": ["sample-run"],
    "queue": ["work", "dead_letter"],
    "component": ["broker", "store"],
    "result": ["hit", "miss"],
    "reason": ["permanent"],
}


def declarations(telemetry_rs: Path) -> list[dict]:
    src = telemetry_rs.read_text()
    consts = {m.group(1): [float(x) for x in m.group(2).replace(" ", "").split(",") if x]
              for m in re.finditer(r"const\s+(\w+)\s*:\s*&\[f64\]\s*=\s*&\[([^\]]*)\]", src)}
    out = []
    pat = re.compile(r"\b(counter_vec|counter|gauge_vec|gauge|histogram_vec|histogram)\s*\(\s*&\w+\s*,\s*"
                     r"\"([^\"]+)\"\s*,\s*\"((?:[^\"\\]|\\.)*)\"\s*(?:,\s*&\[([^\]]*)\])?\s*(?:,\s*(\w+))?\s*,?\s*\)")
    for fn, name, help_, labels, buckets in pat.findall(src):
        out.append({
            "type": fn.removesuffix("_vec"), "name": name, "help": help_,
            "labels": re.findall(r"\"(\w+)\"", labels or ""),
            "buckets": consts.get(buckets, []) if buckets else [],
        })
    if not out:
        raise SystemExit(f"{telemetry_rs}: no metric declarations found")
    # Every "mll_..." literal must have been parsed (rustfmt may wrap a call over
    # lines, with a trailing comma): otherwise samples would silently miss metrics.
    missing = set(re.findall(r"\"(mll_[a-z0-9_]+)\"", src)) - {d["name"] for d in out}
    if missing:
        raise SystemExit(f"{telemetry_rs}: cannot parse the declarations of {sorted(missing)}; update {__file__}")
    return out


def role_of(name: str) -> str:
    if name.startswith("mll_worker_"):
        return "worker"
    if name.startswith(("mll_coordinator_", "mll_run_", "mll_queue_")):
        return "coordinator"
    return "both"


def label_sets(labels: list[str]):
    sets = [{}]
    for l in labels:
        sets = [dict(s, **{l: v}) for s in sets for v in LABEL_VALUES.get(l, ["x"])]
    return sets


def fmt_labels(d: dict) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in d.items()) + "}" if d else ""


def fmt_num(x: float) -> str:
    if x == float("inf"):
        return "+Inf"
    return str(int(x)) if float(x).is_integer() else repr(x)


def render(decls: list[dict], role: str, scrape: int) -> str:
    lines = []
    for i, d in enumerate(decls):
        if role != "all" and role_of(d["name"]) not in (role, "both"):
            continue
        lines.append(f"# HELP {d['name']} {d['help']}")
        lines.append(f"# TYPE {d['name']} {d['type']}")
        for j, ls in enumerate(label_sets(d["labels"])):
            base = (i + 1) * (j + 2)
            if d["type"] == "counter":
                lines.append(f"{d['name']}{fmt_labels(ls)} {base * (scrape + 1)}")
            elif d["type"] == "gauge":
                lines.append(f"{d['name']}{fmt_labels(ls)} {base * 10}")
            else:
                n = 4 * (scrape + 1)  # observations so far, spread over the buckets
                bounds = d["buckets"] + [float("inf")]
                for k, b in enumerate(bounds):
                    c = min(n, n * (k + 1) // max(1, len(bounds) // 2))
                    lines.append(f"{d['name']}_bucket{fmt_labels(dict(ls, le=fmt_num(b)))} {c}")
                lines.append(f"{d['name']}_sum{fmt_labels(ls)} {fmt_num(0.5 * n)}")
                lines.append(f"{d['name']}_count{fmt_labels(ls)} {n}")
    return "\n".join(lines) + "\n"


def serve(port: int, decls: list[dict], role: str) -> None:
    count = {"n": 0}
    lock = threading.Lock()

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            with lock:
                n = count["n"]
                count["n"] += 1
            body = render(decls, role, n).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["render", "serve"])
    ap.add_argument("port", nargs="?", type=int)
    ap.add_argument("--role", choices=["worker", "coordinator", "all"], default="all")
    ap.add_argument("--scrape", type=int, default=1)
    a = ap.parse_args()
    decls = declarations(REPO / "common/src/telemetry.rs")
    if a.mode == "render":
        sys.stdout.write(render(decls, a.role, a.scrape))
    else:
        if a.port is None:
            ap.error("serve needs a PORT")
        serve(a.port, decls, a.role)
    return 0


if __name__ == "__main__":
    sys.exit(main())
