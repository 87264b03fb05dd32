"""scripts/export-hub on a small hub: two open_clip architectures with random
weights (RN50, ViT-B-32), a model already exported (kept after `worker check`),
and a key open_clip does not know (fails alone). Needs the worker binary:
$CARGO_TARGET_DIR/debug/worker (scripts/test builds it first)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE.parent))
import export_hub  # noqa: E402


def worker_bin() -> str:
    target = os.environ.get("CARGO_TARGET_DIR", str(REPO / "target"))
    for p in (Path(target) / "debug/worker", Path(target) / "release/worker"):
        if p.is_file():
            return str(p)
    raise AssertionError(f"no worker binary under {target}/{{debug,release}}: build it (cargo build -p mll-worker)")


def test_export_hub_exports_keeps_and_isolates_failures(tmp_path, capsys):
    out = tmp_path / "data"
    # An export already in place: a tiny model whose model.json names its key.
    tiny = out / "models/tiny"
    subprocess.run([sys.executable, str(HERE / "tiny_model.py"), str(tiny)], check=True, capture_output=True)
    spec = tmp_path / "hub.toml"
    spec.write_text(
        'name = "hub"\n'
        '[[hub]]\nkey = "tiny/random-s0"\nartifact = "models/tiny"\n'
        '[[hub]]\nkey = "RN50/openai"\nartifact = "models/RN50__openai"\n'
        '[[hub]]\nkey = "ViT-B-32/laion2b_s34b_b79k"\nartifact = "models/ViT-B-32__laion2b_s34b_b79k"\n'
        '[[hub]]\nkey = "No-Such-Arch/x"\nartifact = "models/none"\n')
    args = ["--benchmark", str(spec), "--out", str(out), "--random-weights", "--jobs", "2", "--worker", worker_bin()]
    assert export_hub.main(args) == 1
    err = capsys.readouterr().err
    assert "export-hub: 2 exported, 1 kept, 1 failed" in err, err
    assert "No-Such-Arch/x" in err and "unknown open_clip model" in err, err
    assert not (out / "models/none").exists()
    for folder, key in (("RN50__openai", "RN50/openai"), ("ViT-B-32__laion2b_s34b_b79k", "ViT-B-32/laion2b_s34b_b79k")):
        meta = json.loads((out / "models" / folder / "model.json").read_text())
        assert meta["model_key"] == key and meta["exporter"]["random_weights"] is True
        assert (out / "models" / folder / "tokenizer.json").is_file()
    # Rerun: every good export is kept, the bad key fails again, alone.
    assert export_hub.main(args) == 1
    err = capsys.readouterr().err
    assert "export-hub: 0 exported, 3 kept, 1 failed" in err, err
    # A model.json for another model is not "matching": it is exported again.
    meta_path = out / "models/RN50__openai/model.json"
    meta = json.loads(meta_path.read_text())
    meta["model_key"] = "RN50/yfcc15m"
    meta_path.write_text(json.dumps(meta))
    assert export_hub.main(args + ["--only", "RN50/openai"]) == 0
    assert json.loads(meta_path.read_text())["model_key"] == "RN50/openai"


def test_export_hub_on_the_toy_spec_keeps_every_toy_model(tmp_path, capsys):
    """The toy world's models (written by its generator in the export format)
    pass `worker check`, so export-hub keeps all ten; one made unreadable is
    the only one tried again, and fails alone (a toy key is no open_clip model)."""
    world = tmp_path / "world"
    subprocess.run([sys.executable, str(REPO / "scripts/toy_world/generate.py"), "--out", str(world)], check=True, capture_output=True)
    args = ["--benchmark", str(REPO / "configs/benchmarks/toy.toml"), "--out", str(world), "--worker", worker_bin()]
    assert export_hub.main(args) == 0
    err = capsys.readouterr().err
    assert "export-hub: 0 exported, 10 kept, 0 failed" in err, err
    folder = world / "models/toy-poor/v1"
    weights = sorted(folder.glob("*.pt")) + sorted(folder.glob("*.safetensors"))
    assert weights, sorted(p.name for p in folder.iterdir())
    weights[0].write_bytes(b"not a model")
    assert export_hub.main(args) == 1
    err = capsys.readouterr().err
    assert "export-hub: 0 exported, 9 kept, 1 failed" in err, err
    assert "toy-poor/v1" in err, err
