"""The command line: clear one-line errors, the suite's own commands."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import signal
import typing
from pathlib import Path

import pytest
from lightning.pytorch.callbacks import Callback

from radiolm.cli import COMMANDS, LIGHTNING, Command, Group, commands, main

from .conftest import REPO


def run_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    # Lightning's own INFO log lines (e.g. "Seed set to 42") may precede the error.
    # and so may the one line that says which precision the machine trains in.
    lines = [
        line
        for line in capsys.readouterr().err.strip().splitlines()
        if not line.startswith("INFO:") and "training in" not in line
    ]
    assert len(lines) == 1, lines  # one line, no traceback, no usage dump
    return lines[0]


def test_suite_commands_do_not_import_lightning() -> None:
    """`radiolm data|evaluate|label|table ...` start fast: the entry point imports Lightning only for fit & co."""
    import subprocess
    import sys

    helps = [[], ["data"], ["data", "phantom"], ["analyze"], ["evaluate"], ["label"], ["baseline"], ["table"]]
    code = f"""
import contextlib, io, sys
from radiolm.cli import main
for argv in {[[*argv, "--help"] for argv in helps]!r}:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(argv)
print("lightning" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")


def test_python_dash_m_radiolm() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "radiolm", "--help"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("usage: radiolm <command>")


# -- the command table -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(commands()))
def test_every_command_is_main_of_argv(name: str) -> None:
    """Each entry of the table names a ``main(argv: list[str] | None = None) -> None`` that exists."""
    target = commands()[name].target
    module_name, function = target.split(":")
    assert function == "main", target
    entry = getattr(importlib.import_module(module_name), function)
    assert callable(entry) and entry.__name__ == "main"
    parameters = inspect.signature(entry).parameters
    assert list(parameters) == ["argv"] and parameters["argv"].default is None, target
    assert typing.get_type_hints(entry) == {"argv": list[str] | None, "return": type(None)}, target


def _groups(table: dict[str, Command | Group], path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], dict]]:
    found = [(path, table)]
    for name, entry in table.items():
        if isinstance(entry, Group):
            found += _groups(entry.commands, (*path, name))
    return found


@pytest.mark.parametrize("path, table", _groups(COMMANDS), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_help_lists_every_command(
    path: tuple[str, ...], table: dict[str, Command | Group], capsys: pytest.CaptureFixture[str]
) -> None:
    """`radiolm --help` and each group's `--help` are written from the table: every name with its description."""
    main([*path, "--help"])
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {' '.join(['radiolm', *path])} <command>")
    for name, entry in table.items():
        assert re.search(rf"^  {re.escape(name)} +{re.escape(entry.help)}$", out, re.MULTILINE), (name, out)
    if not path:
        assert set(COMMANDS) >= {"fit", "validate", "test", "predict", "data", "analyze", "evaluate", "label"}


def test_lightning_subcommands_reach_lightning_cli(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("fit", "validate", "test", "predict"):
        assert commands()[f"radiolm {name}"].target == LIGHTNING
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: radiolm [options] {name}" in capsys.readouterr().out


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert "`radiolm nope`: unknown command; choose one of ['fit'," in run_error(["nope"], capsys)
    err = run_error(["data", "prepare", "nope"], capsys)
    assert err == (
        "radiolm: error: `radiolm data prepare nope`: unknown command; choose one of "
        "['iu-xray', 'mimic-cxr', 'ctrg-chest']"
    )


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
    metrics = json.loads((tmp_path / "metrics-test-baseline.json").read_text())
    annotation = json.loads((phantom_root / "annotation.json").read_text())
    assert metrics["n"] == len(annotation["test"]) and 0 <= metrics["bleu4"] <= 1


def test_baseline_of_an_experiment(tiny_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``-c EXP.yaml``: the experiment's data (phantom written on first use, its report section) and its protocol."""
    main(
        [
            "baseline",
            "-c",
            str(REPO / "experiments" / "demo.yaml"),
            "-c",
            str(REPO / "tests" / "conf" / "demo.yaml"),
            "--out",
            "out",
        ]
    )
    assert "most common training report" in capsys.readouterr().out
    metrics = json.loads(Path("out/metrics-test-baseline.json").read_text())
    annotation = json.loads(Path("data/phantom-cxr/annotation.json").read_text())
    train = [e["impression"] for e in annotation["train"]]
    predictions = [json.loads(line) for line in Path("out/predictions-test.jsonl").read_text().splitlines()]
    (predicted,) = {p["prediction"] for p in predictions}  # one report for all: a most common training impression
    assert train.count(predicted) == max(train.count(t) for t in train)  # the impression section (report_key)
    assert [p["reference"] for p in predictions] == [e["impression"] for e in annotation["test"]]
    assert metrics["protocol"] == "default" and metrics["n"] == len(annotation["test"]) == len(predictions)
    assert "ce_f1_micro_5" in metrics


def test_baseline_needs_one_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "--annotation FILE or with -c EXP.yaml" in run_error(["baseline", "--out", str(tmp_path)], capsys)


class SigtermAtFirstBatch(Callback):
    """Sends this process SIGTERM before the first training batch (as `kill` or a scheduler would)."""

    def on_train_batch_start(self, *args: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)


def test_a_run_stopped_by_sigterm_exits_with_an_error(tiny_workdir: Path) -> None:
    """Lightning ends a SIGTERM'd fit with a code-less SystemExit (exit status 0); `radiolm fit` must not read as
    success to a script such as `radiolm table`, which would record the row as run."""
    demo = [str(REPO / "experiments" / "demo.yaml"), "-c", str(REPO / "tests" / "conf" / "demo.yaml")]
    with pytest.raises(SystemExit) as info:
        main(["fit", "-c", *demo, "--trainer.fast_dev_run=false", "--trainer.max_epochs=1",
              "--trainer.callbacks+=tests.test_cli.SigtermAtFirstBatch"])  # fmt: skip
    assert info.value.code == "radiolm: stopped by SIGTERM: the run ended early and was not tested"
    assert not sorted(tiny_workdir.rglob("metrics-test-*.json"))
