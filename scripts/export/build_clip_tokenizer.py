#!/usr/bin/env python3
"""Build open_clip's CLIP BPE tokenizer as a Hugging Face tokenizer.json, offline.

    build_clip_tokenizer.py OUT.json [--context-length 77]

The vocabulary and merges come from open_clip's bundled
bpe_simple_vocab_16e6.txt.gz, laid out exactly as SimpleTokenizer does
(byte characters, their '</w>' forms, merges, <start_of_text>, <end_of_text>),
so ids are identical. Text cleaning (html unescape, whitespace collapse,
lower-casing) is NOT in the file: the worker's engine does it (text.rs), as
open_clip's clean_fn does before its regex.
"""
import argparse
import gzip
import json
import os
import sys

# open_clip's SimpleTokenizer regex without its special-token alternatives:
# those are added tokens here and matched before pre-tokenisation.
CLIP_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
SOT, EOT = "<start_of_text>", "<end_of_text>"

VERIFY_TEXTS = [
    "a photo of a dog.",
    "A PHOTO of   a CAT!!!",
    "it's a bird's nest, isn't it? they'll've",
    "naïve café résumé Ærøskøbing",
    "日本語のテキスト 中文 한국어",
    "emoji 🐶🐱 and 👩‍👩‍👧 family",
    "numbers 123 4.56 7,890",
    "",
    "word " * 100,
]


def build_clip_tokenizer_json(context_length=77, bpe_path=None):
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    bpe_path = bpe_path or default_bpe()
    merges = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = merges[1:49152 - 256 - 2 + 1]
    merges = [tuple(m.split()) for m in merges]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += [SOT, EOT]
    ids = {tok: i for i, tok in enumerate(vocab)}
    if len(ids) != len(vocab):
        raise SystemExit("build_clip_tokenizer: duplicate vocabulary entries; is the BPE file intact?")
    sot, eot = ids[SOT], ids[EOT]
    return {
        "version": "1.0",
        "truncation": {"direction": "Right", "max_length": context_length, "strategy": "LongestFirst", "stride": 0},
        "padding": {
            "strategy": {"Fixed": context_length}, "direction": "Right", "pad_to_multiple_of": None,
            "pad_id": 0, "pad_type_id": 0, "pad_token": "!",
        },
        "added_tokens": [
            {"id": sot, "content": SOT, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True},
            {"id": eot, "content": EOT, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True},
        ],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": CLIP_PATTERN}, "behavior": "Removed", "invert": True},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            ],
        },
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": SOT, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": EOT, "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": SOT, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": EOT, "type_id": 0}}],
            "special_tokens": {
                SOT: {"id": SOT, "ids": [sot], "tokens": [SOT]},
                EOT: {"id": EOT, "ids": [eot], "tokens": [EOT]},
            },
        },
        "decoder": {"type": "BPEDecoder", "suffix": "</w>"},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
            "end_of_word_suffix": "</w>", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": ids, "merges": [f"{a} {b}" for a, b in merges],
        },
    }


def verify_clip_tokenizer(path, context_length=77, texts=VERIFY_TEXTS):
    """Fails unless the file gives open_clip's ids (after open_clip's cleaning)."""
    from tokenizers import Tokenizer
    from open_clip.tokenizer import SimpleTokenizer

    ref = SimpleTokenizer(context_length=context_length)
    tok = Tokenizer.from_file(path)
    for text in texts:
        want = ref([text])[0].tolist()
        got = tok.encode(ref.clean_fn(text)).ids
        if got != want:
            raise SystemExit(f"build_clip_tokenizer: {path} disagrees with open_clip on {text!r}:\n"
                             f"  open_clip: {want}\n  tokenizer.json: {got}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--context-length", type=int, default=77)
    args = ap.parse_args()
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(build_clip_tokenizer_json(args.context_length), f, ensure_ascii=False)
    verify_clip_tokenizer(args.out, args.context_length)
    print(f"build_clip_tokenizer: wrote {args.out} (verified against open_clip)", file=sys.stderr)


if __name__ == "__main__":
    main()
