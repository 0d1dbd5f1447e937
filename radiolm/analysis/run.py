"""Load a finished run back: the model and DataModule from the run's ``config.yaml``, weights from a checkpoint.

LightningCLI saves the resolved config of every ``fit`` as ``<run>/config.yaml`` (``runs/<experiment>/version_N``);
checkpoints are in ``<run>/checkpoints/`` (``best-*.ckpt`` from the selection monitor, ``last.ckpt``).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ArgumentParser

from radiolm.batch import ReportBatch
from radiolm.checkpoint.export import EXPORT_FILES
from radiolm.checkpoint.read import is_deepspeed_checkpoint, read_trainable_weights
from radiolm.data.datamodules.base import ReportDataModule
from radiolm.errors import RadioLMError
from radiolm.methods.base import ReportGenerationModule

__all__ = ["LoadedRun", "add_run_arguments", "batches", "find_checkpoint", "load_run", "output_dir"]


@dataclass
class LoadedRun:
    """A trained run: ``model`` (weights loaded, eval mode), ``datamodule`` (set up), where it lives, its config."""

    model: ReportGenerationModule
    datamodule: ReportDataModule
    run_dir: Path
    checkpoint: Path
    config: dict[str, Any]


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """``--run DIR --ckpt best|last|PATH --split test|val --limit N --out DIR`` of every analysis command."""
    parser.add_argument("--run", required=True, type=Path, help="run folder (runs/<experiment>/version_N)")
    parser.add_argument("--ckpt", default="best", help="best | last | a checkpoint path (default: best)")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"], help="studies to analyse")
    parser.add_argument("--limit", type=int, default=None, help="at most this many studies (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the run folder)")


def output_dir(args: argparse.Namespace) -> Path:
    out: Path = args.out or args.run
    out.mkdir(parents=True, exist_ok=True)
    return out


def find_checkpoint(run_dir: Path, ckpt: str = "best") -> Path:
    """``best`` (newest ``best-*.ckpt``, else ``last.ckpt``), ``last``, or a path (a file or a DeepSpeed folder).

    An export folder (``radiolm checkpoint export``: no ``checkpoints/``) gives its ``model.safetensors``."""
    if ckpt not in ("best", "last"):
        path = Path(ckpt)
        if not path.is_file() and not is_deepspeed_checkpoint(path):
            raise RadioLMError(f"--ckpt {ckpt}: no such checkpoint file")
        return path
    folder = run_dir / "checkpoints"
    exported = run_dir / EXPORT_FILES["weights"]
    if not folder.is_dir() and exported.is_file():
        return exported
    candidates = sorted(folder.glob("best*.ckpt"), key=lambda p: p.stat().st_mtime) if ckpt == "best" else []
    candidates = candidates or [p for p in [folder / "last.ckpt"] if p.exists()]
    if not candidates:
        raise RadioLMError(
            f"{folder}: no {'best-*.ckpt or ' if ckpt == 'best' else ''}last.ckpt; pass --ckpt PATH, or train with the "
            "ModelCheckpoint callback of experiments/_base/callbacks.yaml"
        )
    return candidates[-1]


def load_run(run_dir: str | Path, ckpt: str = "best", data_overrides: dict[str, Any] | None = None) -> LoadedRun:
    """Rebuild a run's model and data from its ``config.yaml`` and load its trainable weights.

    Args:
        run_dir: The run folder (with ``config.yaml``), e.g. ``runs/two_stage_phantom/version_0``.
        ckpt: ``best``, ``last`` or a checkpoint path.
        data_overrides: ``data.init_args`` values to replace (e.g. ``{"num_workers": 0}``).
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise RadioLMError(
            f"{config_path}: missing; --run must be a folder that `lightning fit` wrote (runs/<name>/version_N)"
        )
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(ReportGenerationModule, "model", required=True)
    parser.add_subclass_arguments(ReportDataModule, "data", required=True)
    data = dict(config["data"])
    data["init_args"] = {**data.get("init_args", {}), **(data_overrides or {})}
    data["init_args"].pop("image_transform", None)  # linked from the model below, as the CLI does
    cfg = parser.parse_object({"model": config["model"], "data": data})
    model_ns = parser.instantiate_classes(cfg)
    model: ReportGenerationModule = model_ns.model
    datamodule: ReportDataModule = model_ns.data
    if model.image_transform is not None:
        datamodule.image_transform = model.image_transform
    checkpoint_path = find_checkpoint(run_dir, ckpt)
    # a .ckpt, a DeepSpeed folder or an export's safetensors: the trainable weights, the frozen rest as built
    state = read_trainable_weights(checkpoint_path).state_dict
    checkpoint: dict[str, Any] = {"state_dict": state, "radiolm_trainable_only": True}
    model.on_load_checkpoint(checkpoint)
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    datamodule.setup("test")
    return LoadedRun(model, datamodule, run_dir, checkpoint_path, config)


def batches(run: LoadedRun, split: str = "test", limit: int | None = None) -> Iterator[ReportBatch]:
    """The split's batches (evaluation batch size), stopping after ``limit`` studies."""
    loader = run.datamodule._loader(split, shuffle=False)
    seen = 0
    for batch in loader:
        if limit is not None and seen >= limit:
            return
        yield batch
        seen += len(batch)
