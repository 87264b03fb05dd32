#!/usr/bin/env python3
"""Writes a tiny random CLIP-like model artifact (docs/formats.md: module.pt,
model.json, tokenizer.json) for smoke tests of prepared data: 32x32 input,
16-dim embeddings, the real CLIP BPE tokenizer. Seconds on a CPU.

    tiny_model.py OUT_DIR [--seed N]
"""
import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from build_clip_tokenizer import build_clip_tokenizer_json  # noqa: E402

SIZE, DIM, VOCAB, CTX = 32, 16, 49408, 77


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.image = torch.nn.Linear(3 * 4 * 4, DIM)
        self.text = torch.nn.Embedding(VOCAB, DIM)

    def encode_image(self, images):
        x = torch.nn.functional.adaptive_avg_pool2d(images, 4).flatten(1)
        return torch.nn.functional.normalize(self.image(x), dim=-1)

    def encode_text(self, tokens):
        return torch.nn.functional.normalize(self.text(tokens).mean(1), dim=-1)

    def forward(self, images):
        return self.encode_image(images)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    m = Tiny().eval()
    with torch.no_grad():
        traced = torch.jit.trace_module(m, {"encode_image": torch.zeros(2, 3, SIZE, SIZE),
                                            "encode_text": torch.zeros(2, CTX, dtype=torch.long)})
    traced.save(str(out / "module.pt"))
    (out / "tokenizer.json").write_text(json.dumps(build_clip_tokenizer_json(CTX), ensure_ascii=False))
    meta = {"format_version": 1, "model_key": f"tiny/random-s{a.seed}", "image_size": SIZE,
            "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "resize_mode": "shortest", "interpolation": "bicubic",
            "context_length": CTX, "pad_id": 0, "tokenizer": "clip_bpe", "text_clean": "lower",
            "logit_scale": 100.0, "embed_dim": DIM,
            "exporter": {"torch": torch.__version__.split("+")[0], "random_weights": True, "seed": a.seed}}
    (out / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"tiny_model: wrote {out}")


if __name__ == "__main__":
    main()
