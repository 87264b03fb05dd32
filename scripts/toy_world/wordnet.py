"""Minimal reader of WordNet 3.0's data.noun (Debian `wordnet-base`).

Line format: `offset lex_filenum ss_type w_cnt word lex_id [word lex_id...] p_cnt
[ptr_symbol offset pos source/target...] | gloss`. `@` and `@i` pointers are
hypernyms (class and instance). Offsets are ImageNet-style wnids `n%08d`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_DATA_NOUN = "/usr/share/wordnet/data.noun"


@dataclass(frozen=True)
class Synset:
    wnid: str
    lemmas: tuple[str, ...]
    definition: str
    hypernyms: tuple[str, ...]


class WordNetError(RuntimeError):
    pass


def load_synsets(wnids: set[str] | None = None, path: str | None = None) -> dict[str, Synset]:
    """Parses data.noun; when `wnids` is given keeps only those and their ancestors."""
    path = path or os.environ.get("MLL_WORDNET_DATA_NOUN", DEFAULT_DATA_NOUN)
    if not os.path.exists(path):
        raise WordNetError(
            f"WordNet noun data not found at {path}: install Debian's wordnet-base "
            "(apt-get install wordnet-base) or set MLL_WORDNET_DATA_NOUN")
    all_syn: dict[str, Synset] = {}
    with open(path, encoding="latin-1") as f:
        for line in f:
            if line.startswith("  "):  # licence header
                continue
            head, _, gloss = line.partition(" | ")
            parts = head.split()
            offset, w_cnt = parts[0], int(parts[3], 16)
            lemmas = tuple(parts[4 + 2 * i].replace("_", " ") for i in range(w_cnt))
            i = 4 + 2 * w_cnt
            p_cnt = int(parts[i])
            hyper = []
            for j in range(p_cnt):
                sym, off, pos = parts[i + 1 + 4 * j: i + 4 + 4 * j]
                if sym in ("@", "@i") and pos == "n":
                    hyper.append("n" + off)
            all_syn["n" + offset] = Synset("n" + offset, lemmas, _definition(gloss), tuple(hyper))
    if wnids is None:
        return all_syn
    keep: dict[str, Synset] = {}
    stack = list(wnids)
    while stack:
        w = stack.pop()
        if w in keep:
            continue
        if w not in all_syn:
            raise WordNetError(f"synset {w} is not in {path}: check the wnid (WordNet 3.0 noun offsets)")
        keep[w] = all_syn[w]
        stack.extend(all_syn[w].hypernyms)
    return keep


def _definition(gloss: str) -> str:
    # The gloss is `definition; "example"; "example"`: keep the definition only.
    gloss = gloss.strip()
    out = []
    for piece in gloss.split(";"):
        if piece.strip().startswith('"'):
            break
        out.append(piece)
    return ";".join(out).strip()
