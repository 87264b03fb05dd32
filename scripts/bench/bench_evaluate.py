#!/usr/bin/env python3
"""Evaluate throughput on CPU, the Python side (docs/benchmarks.md, "Evaluate on CPU"):
open_clip's eval transform + torch.utils.data.DataLoader feeding the exported
TorchScript module, with the same zero-shot classifier and top-1/top-5 counting
as `worker eval` (clip_benchmark protocol: mean of the L2-normalised template
embeddings per class, renormalised; logits = logit_scale * img @ W^T).
Driven by scripts/bench-evaluate, which times `worker eval` on the same data.

usage:
  scripts/bench/bench_evaluate.py make DIR [--count N] [--classes C]   # seeded ImageFolder of JPEGs (cached)
  scripts/bench/bench_evaluate.py run MODEL_DIR DATA_DIR [--threads 2] [--workers 2] [--batch-size 64] [--json OUT]
"""
import argparse
import json
import os
import sys
import time

T_START = time.perf_counter()

import numpy as np  # noqa: E402

TEMPLATES = ["a photo of a {c}.", "a blurry photo of a {c}.", "a close-up photo of the {c}."]
CLASSNAMES = ["tench", "goldfish", "white shark", "tiger shark", "hammerhead", "electric ray",
              "stingray", "rooster", "hen", "ostrich", "brambling", "goldfinch"]
# ImageNet-like sizes: most ImageNet validation images are 500x375 or 375x500.
SIZES = [(500, 375), (375, 500), (500, 375), (375, 500), (500, 333), (333, 500), (500, 500), (640, 480)]


def make(args):
    from PIL import Image
    if args.classes > len(CLASSNAMES):
        sys.exit(f"--classes {args.classes}: at most {len(CLASSNAMES)} class names are defined")
    marker = os.path.join(args.dir, ".complete")
    want = f"count={args.count} classes={args.classes} v1\n"
    if os.path.exists(marker) and open(marker).read() == want:
        print(f"dataset cached: {args.dir} ({args.count} images, {args.classes} classes)")
        return
    names = CLASSNAMES[:args.classes]
    os.makedirs(args.dir, exist_ok=True)
    rng = np.random.default_rng(0)
    for c, name in enumerate(names):
        os.makedirs(os.path.join(args.dir, name), exist_ok=True)
    for i in range(args.count):
        c = i % args.classes
        w, h = SIZES[i % len(SIZES)]
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        # Smooth class-dependent patterns plus noise: JPEG sizes and decode cost
        # close to photographs, unlike flat colours.
        img = np.stack([127 + 100 * np.sin(x / (5 + c) + y / (7 + i % 11)),
                        127 + 90 * np.cos(y / (4 + i % 5) + c),
                        (x * (c + 1) / 3 + y + i) % 256], -1)
        img += rng.normal(0, 12, img.shape)
        path = os.path.join(args.dir, names[c], f"{i:05d}.jpg")
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)
    with open(os.path.join(args.dir, "classnames.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    with open(os.path.join(args.dir, "zeroshot_classification_templates.txt"), "w") as f:
        f.write("\n".join(TEMPLATES) + "\n")
    with open(marker, "w") as f:
        f.write(want)
    print(f"wrote {args.count} JPEGs in {args.classes} classes to {args.dir}")


def read_lines(path):
    with open(path) as f:
        return [l.rstrip("\n") for l in f if l.strip()]


class ImageFolderDataset:
    """The worker's ImageFolder order: classnames.txt gives the class folders
    in label order, files sorted by name within each class."""

    def __init__(self, root, classnames, transform):
        self.transform = transform
        self.samples = []
        for label, name in enumerate(classnames):
            d = os.path.join(root, name)
            for f in sorted(os.listdir(d)):
                if f.lower().endswith((".jpg", ".jpeg", ".png", ".webp")):
                    self.samples.append((os.path.join(d, f), label))

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        from PIL import Image
        path, label = self.samples[i]
        with Image.open(path) as im:
            return self.transform(im.convert("RGB")), label


def run(args):
    import torch
    import open_clip
    from open_clip.transform import image_transform
    t_import = time.perf_counter()
    torch.set_num_threads(args.threads)
    meta = json.load(open(os.path.join(args.model, "model.json")))
    if meta.get("tokenizer") != "clip_bpe":
        sys.exit(f"{args.model}: tokenizer {meta.get('tokenizer')!r}; this benchmark handles clip_bpe models only")
    transform = image_transform(meta["image_size"], is_train=False, mean=meta["mean"], std=meta["std"],
                                resize_mode=meta["resize_mode"], interpolation=meta["interpolation"])
    classnames = read_lines(os.path.join(args.data, "classnames.txt"))
    tpl_path = os.path.join(args.data, "zeroshot_classification_templates.txt")
    templates = read_lines(tpl_path) if os.path.exists(tpl_path) else ["a photo of a {c}."]

    t0 = time.perf_counter()
    model = torch.jit.load(os.path.join(args.model, "module.pt"), map_location="cpu").eval()
    t_load = time.perf_counter() - t0

    t0 = time.perf_counter()
    tokenizer = open_clip.SimpleTokenizer(context_length=meta["context_length"])
    with torch.no_grad():
        prompts = [t.replace("{c}", c) for c in classnames for t in templates]
        emb = model.encode_text(tokenizer(prompts))  # the export L2-normalises
        w = emb.view(len(classnames), len(templates), -1).mean(1)
        w = w / w.norm(dim=-1, keepdim=True)
    t_classifier = time.perf_counter() - t0

    ds = ImageFolderDataset(args.data, classnames, transform)
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, num_workers=args.workers, shuffle=False)
    c = len(classnames)
    k = min(5, c)
    n = np.zeros(c, np.int64)
    top1 = np.zeros(c, np.int64)
    top5 = np.zeros(c, np.int64)
    t0 = time.perf_counter()
    with torch.no_grad():
        for images, labels in loader:
            feats = model.encode_image(images)
            logits = meta["logit_scale"] * feats @ w.T
            top = logits.topk(k, dim=1).indices
            for row, label in zip(top.tolist(), labels.tolist()):
                n[label] += 1
                top1[label] += row[0] == label
                top5[label] += label in row
    t_loop = time.perf_counter() - t0
    total = time.perf_counter() - T_START
    images = int(n.sum())
    out = {
        "images": images,
        "threads": torch.get_num_threads(),
        "dataloader_workers": args.workers,
        "batch_size": args.batch_size,
        "import_s": t_import - T_START,
        "load_s": t_load,
        "classifier_s": t_classifier,
        "loop_s": t_loop,
        "total_s": total,
        "images_per_s_loop": images / t_loop,
        "images_per_s_total": images / total,
        "top1": float(top1.sum() / images),
        "top5": float(top5.sum() / images),
        "classes": [{"name": cn, "n": int(a), "top1": int(b), "top5": int(d)}
                    for cn, a, b, d in zip(classnames, n, top1, top5)],
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    print(f"python: {images} images, load {t_load:.2f} s, classifier {t_classifier:.2f} s, "
          f"loop {t_loop:.2f} s ({images / t_loop:.2f} images/s), whole process {total:.2f} s")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir")
    m.add_argument("--count", type=int, default=400)
    m.add_argument("--classes", type=int, default=10)
    r = sub.add_parser("run")
    r.add_argument("model")
    r.add_argument("data")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--batch-size", type=int, default=64)
    r.add_argument("--json")
    args = p.parse_args()
    make(args) if args.cmd == "make" else run(args)


if __name__ == "__main__":
    main()
