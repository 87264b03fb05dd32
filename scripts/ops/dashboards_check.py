#!/usr/bin/env python3
"""Checks the Grafana dashboards (run by scripts/check-dashboards).

- every k8s/grafana/*.json is valid JSON, a dashboard with a uid unique across
  files, and listed in k8s/grafana/kustomization.yaml (so it is deployed);
- panel ids are unique within a dashboard (rows' nested panels included) and
  each query target has a refId unique within its panel and a datasource;
- every metric named in a PromQL expression (panel targets and query
  variables) is declared in common/src/telemetry.rs or allow-listed in
  scripts/ops/external_metrics.txt (histogram _bucket/_sum/_count parts map to
  their histogram);
- rate/irate/increase read counters (or histogram parts), never gauges, and
  histogram_quantile reads a _bucket series.
Prints every problem and exits 1 if there was any.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import promql  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, required=True)
    a = ap.parse_args()
    repo = a.repo.resolve()
    problems: list[str] = []
    try:
        ours = promql.telemetry_metrics(repo / "common/src/telemetry.rs")
    except (OSError, ValueError) as e:
        print(f"FAIL {e}")
        return 1
    external = promql.external_metrics(repo / "scripts/ops/external_metrics.txt")
    clash = set(ours) & set(external)
    if clash:
        problems.append(f"external_metrics.txt lists metrics the binaries export themselves: {sorted(clash)}")
    known = {**external, **ours}

    gdir = repo / "k8s/grafana"
    files = sorted(gdir.glob("*.json"))
    if not files:
        problems.append(f"no dashboards in {gdir}")
    kust = (gdir / "kustomization.yaml").read_text() if (gdir / "kustomization.yaml").is_file() else ""
    uids: dict[str, str] = {}
    n_queries = 0
    used: set[str] = set()
    for f in files:
        try:
            dash = promql.load_dashboard(f)
        except json.JSONDecodeError as e:
            problems.append(f"{f.name}: not valid JSON: {e}")
            continue
        if not isinstance(dash, dict) or not isinstance(dash.get("panels"), list) or not dash.get("title"):
            problems.append(f"{f.name}: not a Grafana dashboard (needs a title and a panels list)")
            continue
        uid = dash.get("uid")
        if not uid:
            problems.append(f"{f.name}: no uid (links and provisioning need a stable one)")
        elif uid in uids:
            problems.append(f"{f.name}: uid {uid!r} is also used by {uids[uid]}")
        else:
            uids[uid] = f.name
        if not re.search(rf"^\s*-\s*{re.escape(f.name)}\s*$", kust, re.M):
            problems.append(f"{f.name}: not listed in k8s/grafana/kustomization.yaml (it would not be deployed)")
        ids: dict[int, str] = {}
        for p in promql.all_panels(dash["panels"]):
            pid, title = p.get("id"), p.get("title", "")
            if not isinstance(pid, int):
                problems.append(f"{f.name}: panel '{title}' has no integer id")
            elif pid in ids:
                problems.append(f"{f.name}: panel id {pid} is used by '{ids[pid]}' and '{title}'")
            else:
                ids[pid] = title
            if "gridPos" not in p:
                problems.append(f"{f.name}: panel {pid} '{title}' has no gridPos")
            refs = [t.get("refId") for t in p.get("targets", [])]
            if len(refs) != len(set(refs)) or None in refs:
                problems.append(f"{f.name}: panel {pid} '{title}' has missing or repeated refIds {refs}")
            if p.get("type") != "row" and p.get("targets") and not (p.get("datasource") or all(t.get("datasource") for t in p["targets"])):
                problems.append(f"{f.name}: panel {pid} '{title}' has no datasource")
            for t in p.get("targets", []):
                if not str(t.get("expr", "")).strip():
                    problems.append(f"{f.name}: panel {pid} '{title}' target {t.get('refId')} has an empty expr")
        for q in promql.queries(f, dash):
            n_queries += 1
            names = promql.metric_names(q.expr)
            if not names:
                problems.append(f"{q.where()}: names no metric: {q.expr}")
            for name in sorted(names):
                base = promql.base_name(name, known)
                if base is None:
                    problems.append(f"{q.where()}: metric {name} is neither declared in common/src/telemetry.rs "
                                    f"nor allow-listed in scripts/ops/external_metrics.txt: {q.expr}")
                else:
                    used.add(base)
            for fn, name in promql.counter_like_args(q.expr):
                base = promql.base_name(name, known)
                if base is None:
                    continue
                part = name != base
                if known[base] == "gauge" or (known[base] == "histogram" and not part):
                    problems.append(f"{q.where()}: {fn}() over {name}, a {known[base]}: {fn} needs a counter")
            for inner in re.findall(r"histogram_quantile\s*\([^,]*,(.*)", q.expr):
                if "_bucket" not in inner:
                    problems.append(f"{q.where()}: histogram_quantile without a _bucket series: {q.expr}")
    unused = sorted(set(ours) - used)
    for p in problems:
        print(f"FAIL {p}")
    note = f"; declared but on no dashboard: {', '.join(unused)}" if unused else ""
    print(f"check-dashboards: {len(files)} dashboards, {n_queries} queries, {len(used)} metrics used{note}; "
          f"{len(problems)} problems", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
