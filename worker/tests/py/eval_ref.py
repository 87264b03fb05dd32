"""Reference for `worker eval`: the same zero-shot evaluation done in Python.

usage: eval_ref.py MODEL_DIR IMAGEFOLDER_DIR [bare]

Loads the exported module.pt with torch.jit, preprocesses with open_clip's eval
transform from model.json's settings (PIL + torchvision), tokenises with
open_clip's tokenizer, builds CLIP_benchmark's classifier (per class: encode
every template, L2-normalise, mean, re-normalise), logits = logit_scale ·
img · Wᵀ, and counts per-class n / top-1 / top-5 exactly as CLIP_benchmark
(topk over min(5, C)). With `bare`, the classifier is the released MLL
reuse.py's: the class names tokenised alone (no template), encoded and
L2-normalised. Prints JSON: {"n": [...], "top1": [...], "top5": [...],
"min_margin": smallest top-1/top-2 logit gap, "classnames": [...]}.
"""
import json
import os
import sys

import open_clip
import torch
from open_clip.transform import image_transform
from PIL import Image

model_dir, data_dir = sys.argv[1], sys.argv[2]
bare = len(sys.argv) > 3 and sys.argv[3] == "bare"
torch.set_num_threads(1)
meta = json.load(open(os.path.join(model_dir, "model.json")))
module = torch.jit.load(os.path.join(model_dir, "module.pt"), map_location="cpu")
tokenizer = open_clip.get_tokenizer(meta["model_key"].split("/")[0])
tf = image_transform(meta["image_size"], is_train=False, mean=tuple(meta["mean"]), std=tuple(meta["std"]),
                     resize_mode=meta["resize_mode"], interpolation=meta["interpolation"])

classes = sorted(d for d in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, d)))
tpl_file = os.path.join(data_dir, "zeroshot_classification_templates.txt")
templates = [l.strip() for l in open(tpl_file) if l.strip()] if os.path.exists(tpl_file) else ["a photo of a {c}."]
exts = (".jpg", ".jpeg", ".png", ".webp")
samples = [(os.path.join(data_dir, c, f), i) for i, c in enumerate(classes)
           for f in sorted(os.listdir(os.path.join(data_dir, c))) if f.lower().endswith(exts)]

with torch.no_grad():
    if bare:
        # reuse.py: text = tokenizer(classnames); text_features /= norm
        W = module.encode_text(tokenizer(classes))
        W = W / W.norm(dim=-1, keepdim=True)
    else:
        weights = []
        for c in classes:
            emb = module.encode_text(tokenizer([t.replace("{c}", c) for t in templates]))
            emb = torch.nn.functional.normalize(emb, dim=-1).mean(dim=0)
            weights.append(emb / emb.norm())
        W = torch.stack(weights)
    images = torch.stack([tf(Image.open(p)) for p, _ in samples])
    feats = module.encode_image(images)
    logits = meta["logit_scale"] * feats @ W.T

C = len(classes)
k = min(5, C)
top = logits.topk(k, 1, True, True).indices
top2 = logits.topk(min(2, C), 1, True, True).values
n, t1, t5 = [0] * C, [0] * C, [0] * C
for row, (_, y) in zip(top.tolist(), samples):
    n[y] += 1
    t1[y] += int(row[0] == y)
    t5[y] += int(y in row)
margin = float((top2[:, 0] - top2[:, -1]).min()) if C > 1 else float("inf")
print(json.dumps({"n": n, "top1": t1, "top5": t5, "min_margin": margin, "classnames": classes}))
