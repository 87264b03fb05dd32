#!/usr/bin/env python3
"""Export an open_clip model as a model artifact folder (docs/formats.md).

    scripts/export-open-clip MODEL PRETRAINED OUT_DIR [--random-weights] [--seed N]
                             [--parity-out FILE.safetensors]

Writes OUT_DIR/module.pt (TorchScript, traced in fp32 on CPU, methods
encode_image / encode_text, both L2-normalised), OUT_DIR/model.json and
OUT_DIR/tokenizer.json. The traced module is reloaded and compared with the
eager model before the script succeeds (cosine >= 0.9999 or it fails).

--parity-out writes the inputs used for that comparison and the eager
outputs (safetensors: images, tokens, image_embeddings, text_embeddings) so
that the Rust engine can be checked against the very same numbers.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_clip_tokenizer import build_clip_tokenizer_json, verify_clip_tokenizer  # noqa: E402

FORMAT_VERSION = 1
MIN_COSINE = 0.9999
# CLIP_benchmark's zero-shot protocol multiplies cosines by 100 whatever the
# model learnt, so the artifact records the protocol factor.
LOGIT_SCALE = 100.0
EXAMPLE_TEXTS = [
    "a photo of a dog.",
    "an origami of the golden gate bridge, seen at night with many lights",
    "An ORIGAMI &amp; a \u201ccat\u201d",
]


class Wrapper(torch.nn.Module):
    """What the worker calls: normalised embeddings, nothing else."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def encode_image(self, images):
        return self.model.encode_image(images, normalize=True)

    def encode_text(self, tokens):
        return self.model.encode_text(tokens, normalize=True)

    def forward(self, images):
        return self.encode_image(images)


def die(msg):
    print(f"export-open-clip: error: {msg}", file=sys.stderr)
    sys.exit(1)


def image_size_of(cfg):
    size = cfg.get("size")
    if isinstance(size, (tuple, list)):
        if len(size) != 2 or size[0] != size[1]:
            die(f"non-square image size {size} is not supported by the worker")
        size = size[0]
    if not isinstance(size, int) or size <= 0:
        die(f"the model's preprocess config has no usable image size ({cfg})")
    return size


def resize_mode_of(cfg):
    mode = cfg.get("resize_mode", "shortest")
    if mode not in ("shortest", "squash"):
        die(f"resize_mode '{mode}' is not supported by the worker (shortest|squash)")
    return mode


def interpolation_of(cfg):
    interp = cfg.get("interpolation", "bicubic")
    if interp not in ("bicubic", "bilinear"):
        die(f"interpolation '{interp}' is not supported by the worker (bicubic|bilinear)")
    return interp


def check_against_reference(model_name, tag, meta):
    """Warn loudly when the model's preprocessing differs from the recorded reference."""
    ref_path = os.environ.get("MLL_PREPROCESS_REFERENCE")
    if not ref_path:
        here = os.path.dirname(os.path.abspath(__file__))
        ref_path = os.path.join(here, "..", "..", "..", "shared", "reference", "open_clip", "preprocess_configs.json")
    if not os.path.exists(ref_path):
        return
    with open(ref_path) as f:
        refs = json.load(f)
    for r in refs:
        if r["model"] == model_name and r["tag"] == tag:
            got = (meta["image_size"], meta["resize_mode"], meta["interpolation"], meta["context_length"])
            want = (r["size"], r["resize"], r["interp"], r["ctx"])
            mean_ok = all(abs(a - b) < 1e-6 for a, b in zip(meta["mean"], r["mean"]))
            std_ok = all(abs(a - b) < 1e-6 for a, b in zip(meta["std"], r["std"]))
            if got != want or not mean_ok or not std_ok:
                print(f"export-open-clip: WARNING: preprocessing {got} mean={meta['mean']} std={meta['std']} "
                      f"differs from the reference {want} mean={r['mean']} std={r['std']} ({ref_path})",
                      file=sys.stderr)
            return


def cosine_rows(a, b):
    a = torch.nn.functional.normalize(a.double(), dim=-1)
    b = torch.nn.functional.normalize(b.double(), dim=-1)
    return (a * b).sum(-1)


def hf_tokenizer_json(tokenizer, out_path):
    """Saves the HF text tower's fast tokenizer, padded/truncated like open_clip."""
    inner = getattr(tokenizer, "tokenizer", None)
    backend = getattr(inner, "backend_tokenizer", None)
    if backend is None:
        die("the model's HF tokenizer has no fast (tokenizers) backend; provide tokenizer.json yourself")
    backend.save(out_path)


def main():
    ap = argparse.ArgumentParser(prog="export-open-clip", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("pretrained", help="open_clip pretrained tag (e.g. openai, laion2b_s34b_b79k)")
    ap.add_argument("out_dir")
    ap.add_argument("--random-weights", action="store_true",
                    help="do not load weights (offline tests); the tag still selects QuickGELU and preprocessing")
    ap.add_argument("--seed", type=int, default=0, help="seed for random weights and example inputs")
    ap.add_argument("--parity-out", help="write inputs and eager outputs (safetensors) here")
    ap.add_argument("--batch", type=int, default=2, help="example batch size for tracing")
    args = ap.parse_args()

    import open_clip
    from open_clip.model import get_model_preprocess_cfg
    from open_clip.tokenizer import SimpleTokenizer, HFTokenizer

    cfg = open_clip.get_model_config(args.model)
    if cfg is None:
        die(f"unknown open_clip model '{args.model}' (see open_clip.list_models())")
    hf_name = cfg.get("text_cfg", {}).get("hf_tokenizer_name") or cfg.get("text_cfg", {}).get("hf_model_name")
    if hf_name:
        # HF text towers need the HF tokenizer (and config) files; here they
        # can only come from the local HF cache.
        try:
            from transformers import AutoTokenizer
            AutoTokenizer.from_pretrained(hf_name)
        except Exception as e:
            die(f"{args.model} has a Hugging Face text tower ('{hf_name}') whose tokenizer is not available "
                f"offline ({type(e).__name__}). Provide it: put '{hf_name}' in the HF cache (HF_HOME) on a "
                f"machine with network, or export there; the worker needs its tokenizer.json beside module.pt")

    torch.manual_seed(args.seed)
    torch.set_grad_enabled(False)
    t0 = time.time()
    quick_gelu = args.pretrained == "openai"
    try:
        model = open_clip.create_model(
            args.model,
            pretrained=None if args.random_weights else args.pretrained,
            force_quick_gelu=quick_gelu,
            device="cpu",
            precision="fp32",
        )
    except Exception as e:  # open_clip raises RuntimeError/ValueError/HF errors
        hint = "" if args.random_weights else " (no weights offline? use --random-weights for tests)"
        die(f"cannot build {args.model}/{args.pretrained}: {e}{hint}")
    model.eval()
    if args.random_weights:
        # create_model(pretrained=None) gives the architecture's default
        # preprocessing; the tag's own (mean/std, squash...) is what we want.
        pcfg = open_clip.get_pretrained_cfg(args.model, args.pretrained) or {}
        pp = dict(get_model_preprocess_cfg(model))
        for k in ("mean", "std", "interpolation", "resize_mode"):
            if k in pcfg:
                pp[k] = pcfg[k]
    else:
        pp = dict(get_model_preprocess_cfg(model))
    tokenizer = open_clip.get_tokenizer(args.model)
    build_s = time.time() - t0

    size = image_size_of(pp)
    context_length = int(tokenizer.context_length)
    if isinstance(tokenizer, SimpleTokenizer):
        tok_kind, pad_id, text_clean = "clip_bpe", 0, "lower"
    elif isinstance(tokenizer, HFTokenizer):
        tok_kind = "hf"
        pad_id = tokenizer.tokenizer.pad_token_id
        if pad_id is None:
            die("the HF tokenizer has no pad token id")
        text_clean = "whitespace"
    else:
        die(f"tokenizer {type(tokenizer).__name__} is not supported by the worker (clip_bpe or HF only)")

    os.makedirs(args.out_dir, exist_ok=True)
    tok_path = os.path.join(args.out_dir, "tokenizer.json")
    if tok_kind == "clip_bpe":
        with open(tok_path, "w", encoding="utf-8") as f:
            json.dump(build_clip_tokenizer_json(context_length), f, ensure_ascii=False)
        verify_clip_tokenizer(tok_path, context_length)
    else:
        hf_tokenizer_json(tokenizer, tok_path)

    g = torch.Generator().manual_seed(args.seed + 1)
    images = torch.randn(args.batch, 3, size, size, generator=g)
    texts = (EXAMPLE_TEXTS * args.batch)[: args.batch]
    tokens = tokenizer(texts).to(torch.long)

    wrapper = Wrapper(model).eval()
    t1 = time.time()
    traced = torch.jit.trace_module(
        wrapper,
        {"encode_image": (images,), "encode_text": (tokens,)},
        check_trace=False,
    )
    module_path = os.path.join(args.out_dir, "module.pt")
    tmp = module_path + ".tmp"
    traced.save(tmp)
    trace_s = time.time() - t1

    # Check on a batch size other than the traced one: tracing bakes shapes
    # in when a model does shape arithmetic in Python.
    loaded = torch.jit.load(tmp, map_location="cpu").eval()
    check_images = torch.randn(args.batch + 1, 3, size, size, generator=g)
    check_texts = (EXAMPLE_TEXTS * 3)[: args.batch + 1]
    check_tokens = tokenizer(check_texts).to(torch.long)
    worst = 1.0
    for name, x in (("encode_image", check_images), ("encode_text", check_tokens)):
        eager = getattr(wrapper, name)(x)
        got = getattr(loaded, name)(x)
        if got.shape != eager.shape:
            os.remove(tmp)
            die(f"{name}: traced output shape {tuple(got.shape)} != eager {tuple(eager.shape)}")
        cos = cosine_rows(got, eager).min().item()
        diff = (got - eager).abs().max().item()
        print(f"export-open-clip: {name}: min cosine {cos:.7f}, max abs diff {diff:.2e}")
        worst = min(worst, cos)
    if worst < MIN_COSINE:
        os.remove(tmp)
        die(f"the traced module differs from eager open_clip (min cosine {worst:.6f} < {MIN_COSINE})")
    os.replace(tmp, module_path)
    embed_dim = int(eager.shape[-1])

    meta = {
        "format_version": FORMAT_VERSION,
        "model_key": f"{args.model}/{args.pretrained}",
        "image_size": size,
        "mean": [float(v) for v in pp["mean"]],
        "std": [float(v) for v in pp["std"]],
        "resize_mode": resize_mode_of(pp),
        "interpolation": interpolation_of(pp),
        "context_length": context_length,
        "pad_id": int(pad_id),
        "tokenizer": tok_kind,
        "text_clean": text_clean,
        "logit_scale": LOGIT_SCALE,
        "embed_dim": embed_dim,
        "exporter": {
            "torch": torch.__version__.split("+")[0],
            "open_clip": open_clip.__version__,
            "random_weights": bool(args.random_weights),
            "seed": args.seed if args.random_weights else None,
            "quick_gelu": quick_gelu,
        },
    }
    check_against_reference(args.model, args.pretrained, meta)
    with open(os.path.join(args.out_dir, "model.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")

    if args.parity_out:
        from safetensors.torch import save_file
        save_file({
            "images": check_images.contiguous(),
            "tokens": check_tokens.contiguous(),
            "image_embeddings": wrapper.encode_image(check_images).contiguous(),
            "text_embeddings": wrapper.encode_text(check_tokens).contiguous(),
        }, args.parity_out, metadata={"texts": json.dumps(check_texts), "model_key": meta["model_key"]})

    print(f"export-open-clip: wrote {args.out_dir} ({meta['model_key']}, D={embed_dim}, S={size}, "
          f"build {build_s:.1f}s, trace {trace_s:.1f}s)")


if __name__ == "__main__":
    main()
