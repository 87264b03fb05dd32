"""Reference for the Rust preprocessing test: writes generated JPEG/PNG images
of odd sizes and, for each, open_clip's own eval transform output before
normalisation (mean 0, std 1), as raw little-endian f32 CHW.

usage: preprocess_ref.py OUT_DIR SIZE
Writes OUT_DIR/manifest.json: [{"file", "mode", "interpolation", "ref"}].
"""
import json
import os
import sys

import numpy as np
from PIL import Image
from open_clip.transform import image_transform


def make_image(w, h, seed):
    # Smooth gradients plus texture and a sharp edge: natural-ish content that
    # still exercises the filter near edges (pure noise would mostly measure
    # JPEG decoder differences).
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([
        127 + 100 * np.sin(x / (7 + seed) + y / 13),
        127 + 100 * np.cos(y / (5 + seed)) * np.sin(x / 17),
        (x * 255 / max(w - 1, 1) + y * 0) % 256,
    ], axis=-1)
    img += rng.normal(0, 12, img.shape)
    img[h // 3: h // 2, w // 4: w // 2] = [250, 20, 40]
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def main():
    out, size = sys.argv[1], int(sys.argv[2])
    os.makedirs(out, exist_ok=True)
    sizes = [(500, 333), (333, 500), (64, 48), (640, 640), (225, 301), (1023, 227)]
    cases = [("shortest", "bicubic"), ("squash", "bicubic"), ("shortest", "bilinear")]
    transforms = {
        c: image_transform(size, is_train=False, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), resize_mode=c[0], interpolation=c[1])
        for c in cases
    }
    manifest = []
    for i, (w, h) in enumerate(sizes):
        img = make_image(w, h, i)
        for ext, kw in (("jpg", {"quality": 92}), ("png", {})):
            name = f"img{i}_{w}x{h}.{ext}"
            img.save(os.path.join(out, name), **kw)
            # Read back through PIL, as open_clip's data loaders do.
            loaded = Image.open(os.path.join(out, name))
            for mode, interp in cases:
                t = transforms[(mode, interp)](loaded).numpy().astype("<f4")
                assert t.shape == (3, size, size), t.shape
                ref = f"{name}.{mode}.{interp}.f32"
                t.tofile(os.path.join(out, ref))
                manifest.append({"file": name, "mode": mode, "interpolation": interp, "ref": ref})
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f)


if __name__ == "__main__":
    main()
