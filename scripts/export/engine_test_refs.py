#!/usr/bin/env python3
"""References for the worker's engine tests (worker/tests/engine/engine_parity.rs).

    engine_test_refs.py tokens MODEL < {"texts": [...]}        -> {"ids": [[...]], "cleaned": [...]}
    engine_test_refs.py clip-tokenizer OUT.json [--context-length N]
    engine_test_refs.py tiny-module OUT_DIR                     -> module.pt, no_text.pt

`tokens` prints open_clip's own tokenizer output (get_tokenizer(MODEL)) and
its cleaned text. `tiny-module` writes a small traced module with the
artifact's two methods (and one lacking encode_text) for fast loader tests.
"""
import json
import os
import sys

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def tokens(model):
    import open_clip

    texts = json.load(sys.stdin)["texts"]
    tok = open_clip.get_tokenizer(model)
    ids = tok(texts).tolist()
    cleaned = [tok.clean_fn(t) for t in texts]
    json.dump({"ids": ids, "cleaned": cleaned, "context_length": tok.context_length}, sys.stdout, ensure_ascii=False)


def clip_tokenizer(out, context_length):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from build_clip_tokenizer import build_clip_tokenizer_json, verify_clip_tokenizer

    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(build_clip_tokenizer_json(context_length), f, ensure_ascii=False)
    verify_clip_tokenizer(tmp, context_length)
    os.replace(tmp, out)


def tiny_module(out_dir):
    import torch

    torch.manual_seed(0)

    class Tiny(torch.nn.Module):
        def __init__(self, with_text=True):
            super().__init__()
            self.proj = torch.nn.Linear(3 * 8 * 8, 16)
            self.emb = torch.nn.Embedding(49408, 16)
            self.with_text = with_text

        def encode_image(self, images):
            return torch.nn.functional.normalize(self.proj(images.flatten(1)), dim=-1)

        def encode_text(self, tokens):
            return torch.nn.functional.normalize(self.emb(tokens).mean(1), dim=-1)

        def forward(self, images):
            return self.encode_image(images)

    os.makedirs(out_dir, exist_ok=True)
    images = torch.randn(2, 3, 8, 8)
    toks = torch.randint(0, 49408, (2, 77))
    m = torch.jit.trace_module(Tiny().eval(), {"encode_image": (images,), "encode_text": (toks,)})
    m.save(os.path.join(out_dir, "module.pt"))
    m = torch.jit.trace_module(Tiny().eval(), {"encode_image": (images,)})
    m.save(os.path.join(out_dir, "no_text.pt"))


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    cmd = sys.argv[1]
    if cmd == "tokens":
        tokens(sys.argv[2])
    elif cmd == "clip-tokenizer":
        ctx = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--context-length" else 77
        clip_tokenizer(sys.argv[2], ctx)
    elif cmd == "tiny-module":
        tiny_module(sys.argv[2])
    else:
        sys.exit(f"unknown command {cmd!r}\n{__doc__}")


if __name__ == "__main__":
    main()
