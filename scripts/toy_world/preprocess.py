"""Image preprocessing with torchvision's semantics on PIL images (what the Rust
engine reproduces): resize the short side to S with bicubic (PIL, antialiased;
long side = int(S * long / short)), centre crop with top = round((h - S) / 2),
/255, normalise. `squash` resizes to S x S without crop."""

from __future__ import annotations

import numpy as np
from PIL import Image


def preprocess(img: Image.Image, size: int, resize_mode: str, mean, std, interpolation: str = "bicubic") -> np.ndarray:
    resample = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}[interpolation]
    img = img.convert("RGB")
    w, h = img.size
    if resize_mode == "squash":
        img = img.resize((size, size), resample)
    elif resize_mode == "shortest":
        if w <= h:
            nw, nh = size, int(size * h / w)
        else:
            nw, nh = int(size * w / h), size
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), resample)
        top = int(round((nh - size) / 2.0))
        left = int(round((nw - size) / 2.0))
        img = img.crop((left, top, left + size, top + size))
    else:
        raise ValueError(f"unknown resize_mode {resize_mode!r} (expected 'shortest' or 'squash')")
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return x.transpose(2, 0, 1).copy()
