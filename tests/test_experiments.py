"""Every experiment YAML through the real entry point (``radiolm.cli.main``) with fast_dev_run and tiny models.

This file runs the R2GenGPT family and the demo. Each other method's test file runs its own experiments with the
tiny overrides its parts need and lists them in a module-level ``EXPERIMENTS``; ``test_every_experiment_runs``
checks that the union covers every YAML in ``experiments/``.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from radiolm.cli import main

from .conftest import REPO

ALL_EXPERIMENTS = sorted((REPO / "experiments").glob("*.yaml"))  # _base/, data/, tables/ hold fragments
EXPERIMENTS = [p for p in ALL_EXPERIMENTS if p.stem == "demo" or p.stem.startswith("r2gengpt_")]


def tiny_overrides(experiment: Path, tiny_llm: Path, tiny_swin: Path) -> list[str]:
    """Swap the real models for tiny ones of the same kind; run one batch of fit, validate and test on the CPU."""
    model = "--model.init_args."
    args = [
        "--trainer.fast_dev_run=true",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.precision=32-true",
        f"{model}language_model.init_args.name_or_path={tiny_llm}",
        f"{model}language_model.init_args.dtype=float32",
        f"{model}vision_encoder.init_args.pretrained=false",
        "--data.init_args.batch_size=2",
        "--data.init_args.eval_batch_size=2",
        "--data.init_args.num_workers=0",
    ]
    text = experiment.read_text()
    if "microsoft/swin" in text or "swin_b_" in text:
        args += [f"{model}vision_encoder.init_args.name={tiny_swin}"]
    else:
        args += [f"{model}vision_encoder.init_args.name=test_resnet", f"{model}vision_encoder.init_args.image_size=64"]
    if "PhantomCXRDataModule" in text or "data/phantom.yaml" in text:
        args += ["--data.init_args.n=12", "--data.init_args.image_size=64"]
    return args


def test_experiments_exist() -> None:
    names = {p.stem for p in EXPERIMENTS}
    assert "demo" in names
    assert {f"r2gengpt_{m}_{d}" for m in ("shallow", "delta", "deep") for d in ("iu_xray", "mimic_cxr")} <= names


@pytest.mark.parametrize("experiment", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_runs_fit_and_test(experiment: Path, workdir: Path, tiny_llm: Path, tiny_swin: Path) -> None:
    main(["fit", "-c", str(experiment), *tiny_overrides(experiment, tiny_llm, tiny_swin)])
    predictions = sorted(workdir.glob("predictions-test-*.jsonl"))
    assert predictions, "fit must end with test and write predictions"
    records = [json.loads(line) for line in predictions[-1].read_text().splitlines()]
    assert records and {"id", "prediction", "reference", "labels"} <= set(records[0])
    assert len({r["id"] for r in records}) == len(records)
    metrics = json.loads(sorted(workdir.glob("metrics-test-*.json"))[-1].read_text())
    assert {"bleu4", "rouge_l", "cider"} <= set(metrics)


def test_every_experiment_runs() -> None:
    """Every experiment YAML is in some test module's ``EXPERIMENTS`` (and so runs through the CLI)."""
    covered: set[Path] = set()
    for path in sorted((REPO / "tests").glob("test_*.py")):
        module = importlib.import_module(f"tests.{path.stem}")
        covered |= {Path(p).resolve() for p in getattr(module, "EXPERIMENTS", [])}
    missing = [p.name for p in ALL_EXPERIMENTS if p.resolve() not in covered]
    assert not missing, f"experiments no test runs: {missing}; add them to a test module's EXPERIMENTS"


@pytest.mark.parametrize("experiment", ALL_EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_print_config_resolves(experiment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", str(experiment), "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "class_path: radiolm.methods" in capsys.readouterr().out
