"""Precision chosen from the machine (issue: the demo took hours on CPUs without native bfloat16)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from radiolm import precision as precision_module
from radiolm.precision import cpu_has_native_bf16, resolve_precision

from .conftest import REPO

EXPERIMENTS = sorted((REPO / "experiments").glob("*.yaml"))


@pytest.fixture()
def no_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)


@pytest.fixture()
def native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)


def test_cpu_without_native_bf16_trains_in_fp32(no_native_bf16: None) -> None:
    choice = resolve_precision("cpu")
    assert choice.precision == "32-true"
    assert choice.reason == "CPU without native bf16: training in fp32"


def test_cpu_with_native_bf16_autocasts(native_bf16: None) -> None:
    assert resolve_precision("cpu").precision == "bf16-mixed"


def test_explicit_precision_wins(no_native_bf16: None) -> None:
    choice = resolve_precision("cpu", "bf16-mixed")
    assert choice.precision == "bf16-mixed"
    assert "40x slower" in choice.reason  # the user is told what it costs
    assert resolve_precision("cpu", "16-mixed").precision == "16-mixed"


def test_gpu_uses_bf16_where_it_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("gpu").precision == "bf16-mixed"
    assert resolve_precision("auto").precision == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("cuda").precision == "16-mixed"


def test_an_isa_cap_means_no_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """ONEDNN_MAX_CPU_ISA below AVX512_CORE_BF16 makes oneDNN emulate bf16: that is the slow path."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert cpu_has_native_bf16() is False


def test_cpu_probe_matches_pytorch() -> None:
    capabilities = torch.cpu.get_capabilities()
    hardware = bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))
    if not hardware:
        assert cpu_has_native_bf16() is False


def _trainer_section(path: Path) -> dict:
    """The trainer section of an experiment: its own, else the one it includes by relative path."""
    trainer = (yaml.safe_load(path.read_text()) or {}).get("trainer", {})
    if isinstance(trainer, str):
        trainer = yaml.safe_load((path.parent / trainer).read_text())
    return trainer or {}


@pytest.mark.parametrize("experiment", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_precision_runs_natively_here(experiment: Path) -> None:
    """One mechanism for every experiment: none fixes its precision, and what it resolves to on this CPU is a
    precision this CPU executes natively (bf16 only where the CPU has native bf16)."""
    trainer = _trainer_section(experiment)
    assert "precision" not in trainer, (
        f"{experiment.name} sets trainer.precision={trainer['precision']!r}; leave it unset so radiolm.precision "
        "chooses it from the machine"
    )
    choice = resolve_precision(trainer.get("accelerator", "auto"), None)
    if trainer.get("accelerator") == "cpu" or not torch.cuda.is_available():
        assert "bf16" not in choice.precision or cpu_has_native_bf16()
        assert choice.precision in ("32-true", "bf16-mixed")


def test_the_cli_applies_and_logs_the_choice(
    workdir: Path, tiny_llm: Path, no_native_bf16: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the real entry point: the demo without --trainer.precision trains in fp32 on such a CPU, said once."""
    from radiolm.lightning_cli import RadioLMCLI

    args = [
        "-c",
        str(REPO / "experiments/demo.yaml"),
        f"--model.init_args.language_model.init_args.name_or_path={tiny_llm}",
        "--model.init_args.vision_encoder.init_args.name=test_resnet",
        "--data.init_args.n=12",
        "--data.init_args.image_size=64",
        "--trainer.logger=false",
    ]
    cli = RadioLMCLI(args=args, run=False)
    assert cli.trainer.precision == "32-true"
    lines = [line for line in capsys.readouterr().err.splitlines() if "bf16" in line or "fp32" in line]
    assert lines == ["radiolm: CPU without native bf16: training in fp32"]
    explicit = RadioLMCLI(args=[*args, "--trainer.precision=bf16-mixed"], run=False)
    assert explicit.trainer.precision == "bf16-mixed"
    assert "bf16 runs about 40x slower than fp32 here" in capsys.readouterr().err
