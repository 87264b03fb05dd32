"""Shared pieces of the dashboard and Prometheus checks: where the metric
names come from (common/src/telemetry.rs plus an allow-list of external
metrics), how dashboards are read, and a small PromQL tokenizer that finds the
metric names an expression reads. Standard library only.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

# Words that look like identifiers in PromQL but name no metric.
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless",
    "atan2", "inf", "nan", "start", "end",
    # aggregation operators (also caught as calls when followed by '(')
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
    "group", "limitk", "limit_ratio",
}
IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@dataclass
class Query:
    dashboard: str
    panel_id: int | None
    panel_title: str
    ref: str
    expr: str  # as written, Grafana variables included
    kind: str  # "panel" or "variable"

    def where(self) -> str:
        p = f"panel {self.panel_id} '{self.panel_title}'" if self.kind == "panel" else f"variable '{self.panel_title}'"
        return f"{self.dashboard}: {p} ({self.ref})"


def telemetry_metrics(telemetry_rs: Path) -> dict[str, str]:
    """Metric name -> type (counter, gauge, histogram) declared in telemetry.rs."""
    src = telemetry_rs.read_text()
    found = {}
    for fn, name in re.findall(r"\b(counter_vec|counter|gauge_vec|gauge|histogram_vec|histogram)\s*\(\s*&\w+\s*,\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\"", src):
        found[name] = fn.removesuffix("_vec")
    # Every "mll_..." literal must have been seen as a declaration: otherwise
    # the parser above has fallen behind the Rust source.
    literals = set(re.findall(r"\"(mll_[a-z0-9_]+)\"", src))
    missing = literals - set(found)
    if missing:
        raise ValueError(f"{telemetry_rs}: cannot tell the type of {sorted(missing)}: is it declared with a helper "
                         f"other than counter/gauge/histogram(_vec)? Update scripts/ops/promql.py")
    if not found:
        raise ValueError(f"{telemetry_rs}: no metric declarations found")
    return found


def external_metrics(path: Path) -> dict[str, str]:
    """Allow-list: 'name type  # comment' lines."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, typ = line.split()
            out[name] = typ
    return out


def substitute_variables(expr: str, values: dict[str, str] | None = None) -> str:
    """Replaces Grafana variables by values Prometheus accepts."""
    values = {"__rate_interval": "1m", "__interval": "30s", "__range": "1h", "__range_s": "3600", **(values or {})}

    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return values.get(name, ".*")

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", repl, expr)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (Grafana variables allowed)."""
    s = substitute_variables(expr)
    names = set(re.findall(r"__name__\s*=\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\"", s))
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', s)  # string literals
    s = re.sub(r"\{[^{}]*\}", " ", s)  # label matchers
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", r" ", s)  # label lists
    s = re.sub(r"\[[^\[\]]*\]", " ", s)  # ranges and subqueries
    s = re.sub(r"\boffset\s+-?[0-9a-z]+", " ", s)
    s = re.sub(r"(?<![a-zA-Z_:])[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?[a-zA-Z]*", " ", s)  # numbers, durations
    for m in IDENT.finditer(s):
        word = m.group(0)
        rest = s[m.end():].lstrip()
        if rest.startswith("(") or word.lower() in KEYWORDS:
            continue  # a function call or a keyword
        names.add(word)
    return names


def counter_like_args(expr: str) -> list[tuple[str, str]]:
    """(function, metric) for rate/irate/increase/histogram_quantile over a plain selector."""
    s = substitute_variables(expr)
    out = []
    for fn, inner in re.findall(r"\b(rate|irate|increase|resets)\s*\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", s):
        out.append((fn, inner))
    return out


def base_name(name: str, known: dict[str, str]) -> str | None:
    """The declared metric a series name belongs to (histogram parts map to the histogram)."""
    if name in known:
        return name
    for suf in HISTOGRAM_SUFFIXES:
        if name.endswith(suf) and known.get(name[: -len(suf)]) == "histogram":
            return name[: -len(suf)]
    return None


def load_dashboard(path: Path) -> dict:
    return json.loads(path.read_text())


def all_panels(panels: list):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def queries(path: Path, dash: dict) -> list[Query]:
    out = []
    for p in all_panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            if "expr" in t:
                out.append(Query(path.name, p.get("id"), p.get("title", ""), t.get("refId", "?"), t["expr"], "panel"))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        m = re.fullmatch(r"\s*label_values\(\s*(.*?)\s*,\s*\w+\s*\)\s*", q)
        if m:
            q = m.group(1)
        else:
            m = re.fullmatch(r"\s*query_result\((.*)\)\s*", q)
            q = m.group(1) if m else q
        out.append(Query(path.name, None, v.get("name", "?"), "query", q, "variable"))
    return out
