#!/usr/bin/env python3
"""Sanity check of a generated toy world, independent of the Rust code: loads each
TorchScript model with torch, reads the files as written (PNG folders, WebDataset
tars), preprocesses with PIL like torchvision, tokenizes with each model's
tokenizer.json, and prints zero-shot top-1 per (model, dataset) under the
CLIP_benchmark protocol, the graph-node accuracy per (model, domain), and the best
model per class of the mixed dataset.

    scripts/toy-world check --world out/toy-world [--spec configs/benchmarks/toy.toml]

Exits non-zero when the world lacks the structure it is built for (a specialist
not best on its domain, INB best everywhere, one model best on every mixed class,
the spec out of date).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import world as W  # noqa: E402
from preprocess import preprocess  # noqa: E402


def load_dataset(root: Path, fmt: str):
    from PIL import Image

    names = (root / "classnames.txt").read_text().splitlines()
    images, labels = [], []
    if fmt == "imagefolder":
        for label, c in enumerate(names):
            for p in sorted((root / c).iterdir()):
                images.append(Image.open(p).convert("RGB"))
                labels.append(label)
    else:
        n = int((root / "nshards.txt").read_text())
        for s in range(n):
            with tarfile.open(root / f"{s}.tar") as tar:
                groups: dict[str, dict] = {}
                order = []
                for m in tar.getmembers():
                    key, ext = m.name.rsplit(".", 1)
                    if key not in groups:
                        groups[key] = {}
                        order.append(key)
                    groups[key][ext] = tar.extractfile(m).read()
                for key in order:
                    images.append(Image.open(io.BytesIO(groups[key]["png"])).convert("RGB"))
                    labels.append(int(groups[key]["cls"].decode()))
    return names, images, np.asarray(labels)


class Model:
    def __init__(self, folder: Path):
        import torch
        from tokenizers import Tokenizer

        self.meta = json.loads((folder / "model.json").read_text())
        self.module = torch.jit.load(str(folder / "module.pt"))
        self.tok = Tokenizer.from_file(str(folder / "tokenizer.json"))

    def tokens(self, texts):
        import torch

        L, pad = self.meta["context_length"], self.meta["pad_id"]
        rows = []
        for t in texts:
            ids = self.tok.encode(t).ids
            if len(ids) > L:
                ids = ids[:L]
                ids[-1] = 49407
            rows.append(ids + [pad] * (L - len(ids)))
        return torch.tensor(rows, dtype=torch.int64)

    def encode_text(self, texts):
        import torch

        with torch.no_grad():
            return self.module.encode_text(self.tokens(texts)).numpy()

    def encode_images(self, images):
        import torch

        m = self.meta
        x = np.stack([preprocess(im, m["image_size"], m["resize_mode"], m["mean"], m["std"], m["interpolation"])
                      for im in images])
        with torch.no_grad():
            return self.module.encode_image(torch.from_numpy(x)).numpy()

    def classifier(self, names, templates):
        return self.prompt_classifier([[t.format(c=c) for t in templates] for c in names])

    def prompt_classifier(self, prompts_per_class):
        """CLIP_benchmark's zero-shot head: per class, the normalised mean of its
        normalised prompt embeddings."""
        w = []
        for texts in prompts_per_class:
            e = self.encode_text(texts)
            e = e / np.linalg.norm(e, axis=1, keepdims=True)
            m = e.mean(0)
            w.append(m / np.linalg.norm(m))
        return np.stack(w)


def mll_reference(world: Path, graph, models, probs, ds_labels, weight="entropy", verbose=False, alpha=0.7, n_nodes=5) -> dict[str, float]:
    """MLL as docs/method.md ("Selection", "Reuse") states it, with the
    clip_benchmark preset's selection, k = 1: match class captions to node
    captions with MiniLM, score each model per selected node by F1 of its graph
    labels, pick the best model per class, reuse with entropy weights (or 1/H)."""
    from PIL import Image
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(world / "models" / "all-MiniLM-L6-v2"), device="cpu")

    def embed(caps):
        e = st.encode(caps, normalize_embeddings=True).mean(0)
        return e / np.linalg.norm(e)

    eg = np.stack([embed(n["captions"]) for n in graph["nodes"]])
    truth = np.asarray([im["node"] for im in graph["images"]])
    pil = [Image.open(world / im["path"]).convert("RGB") for im in graph["images"]]
    labels = {k: (m.encode_images(pil), m.encode_text([n["text"] for n in graph["nodes"]])) for k, m in models.items()}
    keys = list(models)
    out = {}
    for ds in W.TARGETS:
        caps = json.loads((world / "captions" / f"{ds['name']}.json").read_text())
        names = [c for c, _, _ in ds["classes"]]
        a = np.stack([embed(caps[c]) for c in names]) @ eg.T            # C x V
        z = np.zeros((len(graph["nodes"]), len(names)))
        for y in range(len(names)):
            top = np.argsort(-a[y], kind="stable")[:n_nodes]
            z[top, y] = a[y, top]
        vsel = np.flatnonzero(z.any(1))
        mask = np.isin(truth, vsel)
        r = np.zeros((len(keys), len(names)))
        for i, k in enumerate(keys):
            img, txt = labels[k]
            pred = vsel[(img[mask] @ txt[vsel].T).argmax(1)]
            t = truth[mask]
            f1 = np.zeros(len(graph["nodes"]))
            for v in vsel:
                tp = np.sum((pred == v) & (t == v))
                den = np.sum(pred == v) + np.sum(t == v)
                f1[v] = 2 * tp / den if den else 0.0
            p = f1 @ z
            r[i] = alpha * p + (1 - alpha) * p.mean()
        chosen = r.argmax(0)  # first maximum = hub order on ties
        if verbose:
            print(ds["name"], [keys[i].split("/")[0][4:] for i in chosen], file=sys.stderr)
            for y in range(len(names)):
                top = np.argsort(-a[y], kind="stable")[:n_nodes]
                print("  ", names[y], [graph["nodes"][v]["lemma"] for v in top], np.round(r[:, y], 2), file=sys.stderr)
        q = np.zeros_like(probs[(keys[0], ds["name"])])
        for y, mi in enumerate(chosen):
            pm = np.clip(probs[(keys[mi], ds["name"])], 1e-12, None)
            h = -(pm * np.log(pm)).sum(1)
            w = h if weight == "entropy" else 1.0 / h
            q[:, y] = w * pm[:, y]
        out[ds["name"]] = float((q.argmax(1) == ds_labels[ds["name"]]).mean())
    return out


def table(rows, cols, cells, fmt="{:.3f}") -> str:
    out = ["| model | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for r in rows:
        out.append(f"| {r} | " + " | ".join(fmt.format(cells[r][c]) for c in cols) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="toy-world check")
    ap.add_argument("--world", required=True)
    ap.add_argument("--mll", action="store_true", help="also run a Python reference of MLL selection + reuse (k = 1)")
    ap.add_argument("--weight", choices=["entropy", "inverse_entropy"], default="entropy",
                    help="MLL reuse weight: H (the paper's text, the default) or 1/H (released code)")
    ap.add_argument("--verbose", action="store_true", help="print MLL's selected nodes and models per class")
    ap.add_argument("--spec", help="benchmark spec to compare with the world's (e.g. configs/benchmarks/toy.toml)")
    args = ap.parse_args(argv)
    world = Path(args.world)
    problems = []

    if args.spec:
        import tomllib

        from generate import GenerateError, spec_toml

        text = Path(args.spec).read_text()
        spec = tomllib.loads(text)
        try:
            if tomllib.loads(spec_toml(spec["data_root"], world)) != spec:
                problems.append(f"{args.spec} does not match the world definition: regenerate it with "
                                f"`scripts/toy-world generate --print-spec {spec['data_root']} > {args.spec}`")
        except GenerateError as e:
            problems.append(str(e))

    models = {cfg["key"]: Model(world / "models" / cfg["key"]) for cfg in W.HUB}
    keys = list(models)

    # Zero-shot accuracy per (model, dataset), CLIP_benchmark protocol.
    acc = {k: {} for k in keys}
    per_class = {}
    probs, ds_labels = {}, {}
    for ds in W.TARGETS:
        names, images, labels = load_dataset(world / "datasets" / ds["name"], ds["format"])
        templates = (world / "datasets" / ds["name"] / "zeroshot_classification_templates.txt").read_text().splitlines()
        for k, m in models.items():
            logits = 100.0 * m.encode_images(images) @ m.classifier(names, templates).T
            pred = logits.argmax(1)
            e = np.exp(logits - logits.max(1, keepdims=True))
            probs[(k, ds["name"])] = e / e.sum(1, keepdims=True)
            ds_labels[ds["name"]] = labels
            acc[k][ds["name"]] = float((pred == labels).mean())
            if ds["domain"] == "mixed":
                per_class.setdefault(ds["name"], {})[k] = [float((pred[labels == c] == c).mean()) for c in range(len(names))]
    dcols = [ds["name"] for ds in W.TARGETS]
    for k in keys:
        acc[k]["mean"] = float(np.mean([acc[k][d] for d in dcols]))
    print("## Zero-shot top-1 per (model, target dataset), CLIP_benchmark protocol\n")
    print(table(keys, dcols + ["mean"], acc))

    # Graph-node accuracy per (model, domain): images of leaf nodes, classified
    # among the leaf nodes of their domain using the node texts.
    graph = json.loads((world / "graph.json").read_text())
    dom_of = {w: d for w, _, d in W.CONCEPTS}
    node_acc = {k: {} for k in keys}
    from PIL import Image
    for dom in W.DOMAINS:
        leaf_idx = [i for i, n in enumerate(graph["nodes"]) if dom_of.get(n["id"]) == dom]
        imgs = [(im["path"], leaf_idx.index(im["node"])) for im in graph["images"] if im["node"] in leaf_idx]
        pil = [Image.open(world / p).convert("RGB") for p, _ in imgs]
        y = np.asarray([l for _, l in imgs])
        for k, m in models.items():
            t = m.encode_text([graph["nodes"][i]["text"] for i in leaf_idx])
            node_acc[k][dom] = float(((m.encode_images(pil) @ t.T).argmax(1) == y).mean())
    print("\n## Graph leaf-node accuracy per (model, domain) (node texts, images of leaf nodes)\n")
    print(table(keys, W.DOMAINS, node_acc))

    # Best model per class of the mixed dataset(s).
    for dsname, pc in per_class.items():
        ds = next(d for d in W.TARGETS if d["name"] == dsname)
        names = [c for c, _, _ in ds["classes"]]
        print(f"\n## Best model per class of {dsname}\n")
        print("| class | best model | its accuracy | generalist-l accuracy |\n|---|---|---|---|")
        bests = set()
        oracle = []
        for c, cname in enumerate(names):
            best = max(keys, key=lambda k: (pc[k][c], -keys.index(k)))
            bests.add(best)
            oracle.append(pc[best][c])
            print(f"| {cname} | {best} | {pc[best][c]:.3f} | {pc['toy-generalist-l/v1'][c]:.3f} |")
        best_single = max(acc[k][dsname] for k in keys)
        print(f"\nper-class oracle mean recall {np.mean(oracle):.3f} vs best single model {best_single:.3f}")
        if len(bests) < 3:
            problems.append(f"{dsname}: only {len(bests)} distinct per-class best models")

    # imagenet_top1 as the generator measured it, re-measured here from the files
    # (sample images, node texts, each model's tokenizer.json) with this script's code.
    written = json.loads((world / W.IMAGENET_ANALOG_FILE).read_text())
    wnids = [w for w, _, _ in W.CONCEPTS]
    node = {n["id"]: n for n in graph["nodes"]}
    s_imgs, s_labels = [], []
    for name, _ in W.SAMPLE_DATASETS:
        for y, w in enumerate(wnids):
            for p in sorted((world / "samples" / name / w).iterdir()):
                s_imgs.append(Image.open(p).convert("RGB"))
                s_labels.append(y)
    s_labels = np.asarray(s_labels)
    top1 = {}
    for k, m in models.items():
        w_cls = m.prompt_classifier([[node[w]["text"], node[w]["definition"]] for w in wnids])
        top1[k] = float(((m.encode_images(s_imgs) @ w_cls.T).argmax(1) == s_labels).mean())
    print("\n## imagenet_top1: zero-shot top-1 on the ImageNet analog (all sample images, 42 leaf concepts)\n")
    print("| model | measured here | in the world (generator) |\n|---|---|---|")
    for k in keys:
        print(f"| {k} | {top1[k]:.4f} | {written.get(k, float('nan')):.4f} |")
        if abs(top1[k] - written.get(k, -1.0)) > 1e-4:
            problems.append(f"imagenet_top1 of {k}: measured {top1[k]:.4f} here but the generator wrote {written.get(k)}")
    inb = max(keys, key=lambda k: (written[k], -keys.index(k)))
    wins = {d: max(keys, key=lambda k: acc[k][d]) for d in dcols}
    print("\nbest model per dataset: " + ", ".join(f"{d}: {k}" for d, k in wins.items()) + f"; INB = {inb}")
    hub_avg = np.mean([acc[k]["mean"] for k in keys])
    oracle = np.mean([acc[wins[d]][d] for d in dcols])
    print(f"mean over datasets: INB {acc[inb]['mean']:.3f}, hub average {hub_avg:.3f}, per-dataset oracle {oracle:.3f}")
    for spec_key, dom in [("toy-animals/v1", "animals"), ("toy-vehicles/v1", "vehicles"), ("toy-food/v1", "food"),
                          ("toy-tools/v1", "tools"), ("toy-digits/v1", "digits")]:
        best = max(keys, key=lambda k: node_acc[k][dom])
        if best != spec_key:
            problems.append(f"graph domain {dom}: best model is {best}, expected {spec_key}")
    if all(w == inb for w in wins.values()):
        problems.append(f"INB ({inb}) is best on every dataset: selection would not matter")
    if args.mll:
        mll = mll_reference(world, graph, models, probs, ds_labels, args.weight, args.verbose)
        print(f"\n## Python reference of MLL (docs/method.md, "The method, step by step"; k = 1, alpha = 0.7, 5 nodes per class, F1, {args.weight} weights)\n")
        print("| dataset | MLL | INB | hub average | oracle |\n|---|---|---|---|---|")
        for d in dcols:
            print(f"| {d} | {mll[d]:.3f} | {acc[inb][d]:.3f} | {np.mean([acc[k][d] for k in keys]):.3f} | {acc[wins[d]][d]:.3f} |")
        mean_mll = np.mean([mll[d] for d in dcols])
        print(f"| mean | {mean_mll:.3f} | {acc[inb]['mean']:.3f} | {hub_avg:.3f} | {oracle:.3f} |")
        if not (mean_mll > acc[inb]["mean"] and mean_mll > hub_avg):
            problems.append("MLL's mean reuse accuracy is not above INB's and the hub average")
    for p in problems:
        print(f"PROBLEM: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
