"""Per-sample zero-shot predictions by the real CLIP_benchmark package (1.6.2)
on a WebDataset folder in CLIP_benchmark's own layout, for `worker eval`'s.

usage: clip_benchmark_ref.py MODEL_DIR DATASET_ROOT SPLIT DATASET_NAME

CLIP_benchmark reads the dataset (its `build_dataset("wds/NAME", root=DATASET_ROOT,
split=SPLIT)`: DATASET_ROOT/SPLIT/nshards.txt and the shards, DATASET_ROOT/
classnames.txt and zeroshot_classification_templates.txt), builds its
classifier (`zero_shot_classifier`) and runs `run_classification`, batched as
its CLI does for WebDataset. The model is the exported module.pt (torch.jit)
behind encode_image/encode_text, with open_clip's eval transform and
tokenizer from model.json: the same model `worker eval` loads. Prints JSON:
{"predicted": [...], "labels": [...], "classnames": [...], "margins": [...]}
(margin: top-1 minus top-2 logit per sample).
"""
import json
import os
import sys

import open_clip
import torch
from clip_benchmark.datasets.builder import build_dataset
from clip_benchmark.metrics.zeroshot_classification import run_classification, zero_shot_classifier
from open_clip.transform import image_transform

model_dir, root, split, name = sys.argv[1:5]
torch.set_num_threads(2)
meta = json.load(open(os.path.join(model_dir, "model.json")))
module = torch.jit.load(os.path.join(model_dir, "module.pt"), map_location="cpu")
tokenizer = open_clip.get_tokenizer(meta["model_key"].split("/")[0])
tf = image_transform(meta["image_size"], is_train=False, mean=tuple(meta["mean"]), std=tuple(meta["std"]),
                     resize_mode=meta["resize_mode"], interpolation=meta["interpolation"])

ds = build_dataset(dataset_name=f"wds/{name}", root=root, transform=tf, split=split, download=False)
loader = torch.utils.data.DataLoader(ds.batched(64), batch_size=None, shuffle=False, num_workers=0)
classifier = zero_shot_classifier(module, tokenizer, ds.classes, ds.templates, "cpu", amp=False)
logits, target = run_classification(module, classifier, loader, "cpu", amp=False)
top2 = logits.topk(2, 1, True, True)
print(json.dumps({
    "predicted": top2.indices[:, 0].tolist(),
    "labels": target.tolist(),
    "classnames": list(ds.classes),
    "margins": (top2.values[:, 0] - top2.values[:, 1]).tolist(),
}))
