"""The command line: clear one-line errors, the suite's own commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radiolm.cli import main

from .conftest import REPO


def run_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    # Lightning's own INFO log lines (e.g. "Seed set to 42") may precede the error.
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("INFO:")]
    assert len(lines) == 1, lines  # one line, no traceback, no usage dump
    return lines[0]


def test_suite_commands_do_not_import_lightning() -> None:
    """`radiolm data|evaluate|label|table ...` start fast: the entry point imports Lightning only for fit & co."""
    import subprocess
    import sys

    code = "import sys; from radiolm.cli import main; main(['data', '--help']); print('lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")


def test_missing_model_names_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    """Offline, the paper config fails at the first download with the key that takes a local path."""
    err = run_error(["fit", "-c", str(REPO / "experiments/r2gengpt_delta_mimic_cxr.yaml")], capsys)
    assert "microsoft/swin-base-patch4-window7-224" in err
    assert "--model.init_args.vision_encoder.init_args.name=" in err


def test_missing_language_model_names_the_option(capsys: pytest.CaptureFixture[str], tiny_swin: Path) -> None:
    args = ["fit", "-c", str(REPO / "experiments/r2gengpt_shallow_iu_xray.yaml")]
    args += [f"--model.init_args.vision_encoder.init_args.name={tiny_swin}"]
    args += ["--model.init_args.vision_encoder.init_args.pretrained=false"]
    err = run_error(args, capsys)
    assert "meta-llama/Llama-2-7b-chat-hf" in err
    assert "--model.init_args.language_model.init_args.name_or_path=" in err


def test_missing_config_file(capsys: pytest.CaptureFixture[str]) -> None:
    err = run_error(["fit", "-c", "experiments/does_not_exist.yaml"], capsys)
    assert "does_not_exist.yaml" in err and "does not exist" in err


def test_unknown_class_path(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["fit", "-c", str(REPO / "experiments/demo.yaml"), "--model=radiolm.methods.NoSuchMethod"]
    err = run_error(args, capsys)
    assert "radiolm.methods.NoSuchMethod" in err


def test_data_phantom_command(tmp_path: Path) -> None:
    out = tmp_path / "ph"
    main(["data", "phantom", "--kind", "cxr", "--out", str(out), "--n", "10", "--seed", "3", "--views", "1"])
    annotation = json.loads((out / "annotation.json").read_text())
    assert sum(len(annotation[s]) for s in ("train", "val", "test")) == 10
    assert all(len(e["image_path"]) == 1 for e in annotation["train"])


def test_baseline_command(phantom_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["baseline", "--annotation", str(phantom_root / "annotation.json"), "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "most-common-report" in out
    metrics = json.loads((tmp_path / "metrics-test.json").read_text())
    annotation = json.loads((phantom_root / "annotation.json").read_text())
    assert metrics["n"] == len(annotation["test"]) and 0 <= metrics["bleu4"] <= 1
