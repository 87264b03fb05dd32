"""Reference for worker/tests/engine/minilm_parity.rs: embeds texts with
sentence-transformers from the given all-MiniLM-L6-v2 folder (no network).

stdin: {"folder": "...", "texts": ["...", ...]}
stdout: {"embeddings": [[...], ...], "input_ids": [[...], ...], "max_seq_length": 256}
"""

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

req = json.load(sys.stdin)
torch.set_num_threads(2)
model = SentenceTransformer(req["folder"], device="cpu")
texts = req["texts"]
emb = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
# The ids the model saw: its own tokenize() applies max_seq_length truncation.
# sentence-transformers 6 renamed tokenize() to preprocess().
tokenize = getattr(model, "preprocess", None) or model.tokenize
ids = []
for t in texts:
    feats = tokenize([t])
    ids.append([int(x) for x, m in zip(feats["input_ids"][0], feats["attention_mask"][0]) if m == 1])
json.dump({"embeddings": emb.tolist(), "input_ids": ids, "max_seq_length": model.max_seq_length}, sys.stdout)
