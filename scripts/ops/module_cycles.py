"""Finds import cycles between a crate's modules: module A uses a path into
module B while B uses a path into A (directly or through a longer loop).

Reads each crate's src/ as text: every `crate::a::b`, `super::x` and
`self::x` path in a module's own file (its inline `mod tests` included) is an
edge to the deepest module that path names. A module's uses of its own
descendants are a facade (`pub use child::Item`), not an import, and are left
out; so is a module's use of itself. Exits 1 and prints each cycle found.

Usage: python3 scripts/ops/module_cycles.py CRATE_DIR [CRATE_DIR ...]
"""

import re
import sys
from pathlib import Path

PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)(::\{)?")


def group_heads(text: str, start: int) -> list:
    """First path segment of each item of a `{...}` use group opening at `start`."""
    depth, item, heads = 0, "", []
    for ch in text[start:]:
        if ch == "{":
            depth += 1
            if depth == 1:
                continue
        elif ch == "}":
            depth -= 1
            if depth == 0:
                heads.append(item)
                break
        elif ch == "," and depth == 1:
            heads.append(item)
            item = ""
            continue
        if depth >= 1:
            item += ch
    return [h.strip().split("::")[0].strip() for h in heads if h.strip()]


def modules(src: Path) -> dict:
    """Module path (tuple) -> file, for every .rs file under src."""
    out = {}
    for f in src.rglob("*.rs"):
        rel = f.relative_to(src).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] in ("lib", "main", "mod"):
            parts = parts[:-1]
        out[tuple(parts)] = f
    return out


def resolve(base: tuple, segments: list, known: dict) -> tuple:
    """The deepest known module a path starting at `base` names."""
    best = None
    cur = list(base)
    if tuple(cur) in known:
        best = tuple(cur)
    for s in segments:
        cur.append(s)
        if tuple(cur) in known:
            best = tuple(cur)
        else:
            break
    return best


def edges(known: dict) -> dict:
    graph = {m: set() for m in known}
    for m, f in known.items():
        text = re.sub(r"//[^\n]*", "", f.read_text(encoding="utf-8"))
        paths = []
        for mt in PATH.finditer(text):
            root, rest, brace = mt.group(1), mt.group(2), mt.group(3)
            segs = rest.split("::")[1:] if rest else []
            if brace:
                paths += [(root, segs + [h]) for h in group_heads(text, mt.end() - 1) if re.match(r"^[A-Za-z_]\w*$", h)]
            paths.append((root, segs))
        for root, segs in paths:
            if root == "crate":
                base = ()
            elif root == "self":
                base = m
            else:
                base = m[:-1]
                while segs and segs[0] == "super":
                    base, segs = base[:-1], segs[1:]
            target = resolve(base, segs, known)
            if target is None or target == m or target[: len(m)] == m:
                continue
            graph[m].add(target)
    return graph


def cycles(graph: dict) -> list:
    found, seen = [], set()
    index, low, stack, on = {}, {}, [], set()
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            strong(v)
    return found


def main(argv: list) -> int:
    bad = 0
    for crate in argv:
        src = Path(crate) / "src"
        known = modules(src)
        graph = edges(known)
        n_edges = sum(len(v) for v in graph.values())
        found = cycles(graph)
        for comp in found:
            bad += 1
            names = ["::".join(c) or "(crate root)" for c in comp]
            print(f"{crate}: modules that import each other: {', '.join(names)}")
            for a in comp:
                for b in sorted(graph[a]):
                    if b in comp:
                        print(f"    {'::'.join(a) or '(root)'} -> {'::'.join(b) or '(root)'}")
        print(f"{crate}: {len(known)} modules, {n_edges} imports between them, {len(found)} cycles")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["method", "common", "worker", "coordinator"]))
