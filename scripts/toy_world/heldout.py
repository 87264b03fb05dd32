#!/usr/bin/env python3
"""A target dataset held out of the toy spec (docs/toy-world.md, "A held-out
task"): a sixth domain mixture for `coordinator adapt`, rendered by the toy
world's own generator code.

    scripts/toy-world heldout --out out/toy-world/heldout/toy-heldout [--seed 0]

Its classes are target classes of four spec datasets (pets, traffic, groceries
and the tools of toy-mixed) in a new mixture, rendered in the "photo" style
(no spec dataset uses it) from a random stream of their own, so every image is
new. The toy text towers only know the texts they were fitted on, so the
classes keep their names and the default templates; each class is rendered
from the same concept vector as in its source dataset. Writes an ImageFolder
with classnames.txt and zeroshot_classification_templates.txt, plus
captions.json ({class: [captions]}) beside them. It imports the generator
instead of changing it, so the world's stamp (a hash of generate.py) stays as
it is. Deterministic; returns at once when its stamp matches.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate as G  # noqa: E402
import world as W  # noqa: E402

NAME = "toy-heldout"
STYLE = "photo"
# (class, the spec dataset it comes from): 3 animals, 3 vehicles, 2 foods, 4 tools.
CLASSES = [
    ("puppy", "toy-pets"), ("kitten", "toy-pets"), ("pony", "toy-pets"),
    ("sedan", "toy-traffic"), ("sailboat", "toy-traffic"), ("motorbike", "toy-traffic"),
    ("tangerine", "toy-groceries"), ("brie", "toy-groceries"),
    ("mallet", "toy-mixed"), ("spanner", "toy-mixed"), ("hatchet", "toy-mixed"), ("baguette", "toy-mixed"),
]
PER_CLASS = 40
STAMP = "heldout.stamp"


def stamp_value(seed: int) -> dict:
    h = hashlib.sha256()
    for name in G.GENERATOR_SOURCES + ("heldout.py",):
        h.update(name.encode() + b"\0" + (HERE / name).read_bytes() + b"\0")
    return {"hash": h.hexdigest(), "seed": seed}


def write(out: Path, seed: int) -> None:
    sub = lambda name: np.random.default_rng([seed, int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)])  # noqa: E731
    # The same streams as generate(), so concept vectors and texture fields match the world's.
    u_concept, u_class = G.concept_vectors(sub("vectors"))
    renderer = G.Renderer(sub("renderer"))
    dom_of = {lemma: dom for _, lemma, dom in W.CONCEPTS}
    shape_of = {}
    for d in W.DOMAINS:
        for i, (_, lemma, _) in enumerate([c for c in W.CONCEPTS if c[2] == d]):
            shape_of[lemma] = i
    spec = {ds["name"]: {c: (rel, desc) for c, rel, desc in ds["classes"]} for ds in W.TARGETS}
    r = sub("heldout/" + NAME)
    captions = {}
    for cname, source in CLASSES:
        rel, desc = spec[source][cname]
        folder = out / cname
        folder.mkdir(parents=True)
        for i in range(PER_CLASS):
            arr = renderer.render(u_class[(source, cname)], dom_of[rel], shape_of[rel], W.STYLES[STYLE], r)
            (folder / f"{i:04d}.png").write_bytes(G.png_bytes(arr))
        captions[cname] = G.class_captions(cname, desc)
    (out / "classnames.txt").write_text("".join(c + "\n" for c, _ in CLASSES))
    (out / "zeroshot_classification_templates.txt").write_text("".join(t + "\n" for t in W.TEMPLATES["default"]))
    (out / "captions.json").write_text(json.dumps(captions, indent=1) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="toy-world heldout", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="folder to write the held-out dataset into")
    ap.add_argument("--seed", type=int, default=0, help="the toy world's seed")
    args = ap.parse_args(argv)
    out = Path(args.out)
    want = stamp_value(args.seed)
    try:
        if json.loads((out / STAMP).read_text()) == want:
            print(f"held-out dataset in {out} is up to date")
            return 0
    except (OSError, ValueError):
        if out.exists() and any(out.iterdir()):
            print(f"error: {out} is not empty and has no {STAMP}; remove it or choose another --out", file=sys.stderr)
            return 1
    tmp = out.parent / f".{out.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        write(tmp, args.seed)
        (tmp / STAMP).write_text(json.dumps(want) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"held-out dataset {NAME} written to {out} ({len(CLASSES)} classes x {PER_CLASS} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
