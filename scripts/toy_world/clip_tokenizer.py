"""Builds open_clip's CLIP BPE tokenizer as a Hugging Face `tokenizer.json`, offline,
from the vocabulary bundled with open_clip (bpe_simple_vocab_16e6.txt.gz).

Token ids match `open_clip.tokenize` for text that open_clip's cleaning leaves
unchanged apart from whitespace and case (ftfy/html fixes are not replicated).
Truncation and padding are not configured here: the consumer applies
`context_length` and `pad_id` from model.json.
"""

from __future__ import annotations

import gzip

SOT, EOT = "<start_of_text>", "<end_of_text>"
# open_clip's SimpleTokenizer pattern (re, IGNORECASE; text is lower-cased first).
SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def build_clip_bpe_tokenizer(bpe_path: str | None = None):
    """Returns a `tokenizers.Tokenizer` equivalent to open_clip's SimpleTokenizer."""
    from tokenizers import Regex, Tokenizer, AddedToken, decoders, models, normalizers, pre_tokenizers, processors

    if bpe_path is None:
        from open_clip.tokenizer import default_bpe

        bpe_path = default_bpe()
    merges_txt = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in merges_txt[1 : 49152 - 256 - 2 + 1]]
    byte_chars = list(_bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges] + [SOT, EOT]
    encoder = {tok: i for i, tok in enumerate(vocab)}
    assert len(encoder) == 49408, f"CLIP vocabulary has {len(encoder)} entries, expected 49408: wrong bpe file?"

    tok = Tokenizer(models.BPE(vocab=encoder, merges=merges, end_of_word_suffix="</w>", continuing_subword_prefix=""))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    tok.add_special_tokens([AddedToken(SOT, special=True, normalized=False), AddedToken(EOT, special=True, normalized=False)])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{SOT} $A {EOT}", special_tokens=[(SOT, encoder[SOT]), (EOT, encoder[EOT])])
    return tok


def check_against_open_clip(tok, texts: list[str], context_length: int = 77) -> None:
    """Raises if any text's ids differ from open_clip.tokenize (after truncation/padding)."""
    import open_clip

    ref = open_clip.tokenize(texts, context_length=context_length).tolist()
    for text, want in zip(texts, ref):
        ids = tok.encode(text).ids
        if len(ids) > context_length:
            ids = ids[:context_length]
            ids[-1] = 49407
        ids = ids + [0] * (context_length - len(ids))
        if ids != want:
            raise RuntimeError(f"CLIP tokenizer mismatch with open_clip on {text!r}: {ids[:12]} vs {want[:12]}")
