#!/usr/bin/env python3
"""Preprocessing throughput of PIL + open_clip's eval transform (torchvision),
on one thread, for comparison with the Rust preprocessing
(`cargo run --release -p mll-worker --example bench_preprocess -- DIR`).

usage:
  scripts/bench-preprocess make DIR [--count N]   # writes N seeded JPEGs of ImageNet-like sizes
  scripts/bench-preprocess run DIR [--size 224] [--repeat 3]

Both sides read every file into memory first and time decode + resize + crop
+ to-tensor + normalise only; then each stage alone, in ms per image.
"""
import argparse
import io
import os
import time

import numpy as np


def make(args):
    from PIL import Image
    os.makedirs(args.dir, exist_ok=True)
    rng = np.random.default_rng(0)
    sizes = [(500, 375), (375, 500), (500, 333), (640, 480), (800, 600), (500, 500), (333, 500), (1024, 683)]
    for i in range(args.count):
        w, h = sizes[i % len(sizes)]
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        img = np.stack([127 + 100 * np.sin(x / (5 + i % 7) + y / 11), 127 + 90 * np.cos(y / (4 + i % 5)),
                        (x + y + i) % 256], -1)
        img += rng.normal(0, 10, img.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(os.path.join(args.dir, f"{i:04d}.jpg"), quality=90)
    print(f"wrote {args.count} JPEGs to {args.dir}")


def run(args):
    import torch
    from PIL import Image
    from open_clip.transform import image_transform
    torch.set_num_threads(1)
    tf = image_transform(args.size, is_train=False)
    files = sorted(f for f in os.listdir(args.dir) if f.endswith((".jpg", ".png", ".webp")))
    blobs = [open(os.path.join(args.dir, f), "rb").read() for f in files]
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        for b in blobs:
            tf(Image.open(io.BytesIO(b)))
        best = min(best, time.perf_counter() - t0)
    print(f"python PIL+torchvision: {len(blobs)} images, best of {args.repeat}: {best:.3f} s, "
          f"{len(blobs) / best:.1f} images/s on 1 thread")

    # Per stage: decode (PIL decodes lazily, so force it with load()), then
    # each step of the Compose (Resize, CenterCrop, RGB, ToTensor, Normalize).
    names = ["decode"] + [getattr(t, "__name__", type(t).__name__) for t in tf.transforms]
    stage_best = [float("inf")] * len(names)
    for _ in range(args.repeat):
        acc = [0.0] * len(names)
        for b in blobs:
            t0 = time.perf_counter()
            x = Image.open(io.BytesIO(b))
            x.load()
            acc[0] += time.perf_counter() - t0
            for i, t in enumerate(tf.transforms, 1):
                t0 = time.perf_counter()
                x = t(x)
                acc[i] += time.perf_counter() - t0
        stage_best = [min(s, a) for s, a in zip(stage_best, acc)]
    print(f"per image (best of {args.repeat}): " +
          ", ".join(f"{n} {1e3 * s / len(blobs):.3f} ms" for n, s in zip(names, stage_best)))


def main():
    p = argparse.ArgumentParser(prog="bench-preprocess")
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir")
    m.add_argument("--count", type=int, default=200)
    r = sub.add_parser("run")
    r.add_argument("dir")
    r.add_argument("--size", type=int, default=224)
    r.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    make(args) if args.cmd == "make" else run(args)


if __name__ == "__main__":
    main()
