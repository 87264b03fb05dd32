"""scripts/data/wait_inputs.py (the coordinator Job's wait for the prepare and export Jobs)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import prepare  # noqa: E402
import wait_inputs  # noqa: E402


def test_waits_for_datasets_and_models_and_fails_on_recorded_failures(tmp_path, capsys):
    assert prepare.main(["--out", str(tmp_path), "--only", "digits", "--no-progress", "--offline"]) == 0
    spec = tmp_path / "benchmarks" / "s.toml"
    spec.parent.mkdir()
    spec.write_text('name = "s"\ndata_root = ".."\n[[hub]]\nkey = "a/b"\nartifact = "models/a"\n'
                    '[[datasets]]\nname = "digits"\nformat = "webdataset"\npath = "datasets/digits/all"\n')
    args = ["--benchmark", str(spec), "--timeout", "0", "--poll", "0"]
    assert wait_inputs.main(args) == 2
    err = capsys.readouterr().err
    assert "MISSING model a/b" in err and "digits" not in err.split("MISSING", 1)[1].split("\n")[0], err
    (tmp_path / "models/a").mkdir(parents=True)
    (tmp_path / "models/a/module.pt").write_bytes(b"x")
    (tmp_path / "models/a/model.json").write_text("{}")
    assert wait_inputs.main(args) == 0
    # A dataset prepare-data recorded as failed fails at once, with its hint.
    spec.write_text(spec.read_text() + '[[datasets]]\nname = "FER2013"\nformat = "webdataset"\n'
                    'path = "datasets/wds_fer2013/test"\n')
    assert prepare.main(["--out", str(tmp_path), "--only", "FER2013", "--no-progress", "--offline"]) == 1
    capsys.readouterr()
    assert wait_inputs.main(["--benchmark", str(spec), "--timeout", "3600", "--poll", "0"]) == 2
    err = capsys.readouterr().err
    assert "FAILED dataset FER2013" in err and "--from-file FER2013=fer2013.zip" in err, err
    assert json.loads((tmp_path / "manifest.json").read_text())["failures"]["FER2013"]["path"] == "datasets/wds_fer2013/test"
