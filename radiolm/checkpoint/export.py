"""``radiolm checkpoint export RUN_OR_CKPT --out DIR``: a run's trainable weights as safetensors, with its config.

RUN_OR_CKPT is a run folder (``runs/<experiment>/version_N``: the best checkpoint its ``ModelCheckpoint`` recorded,
else ``last.ckpt``), a Lightning ``.ckpt`` file, or a DeepSpeed checkpoint folder (what ``DeepSpeedStrategy``
writes; :mod:`radiolm.checkpoint.read`). DIR gets:

* ``model.safetensors``: the trainable weights and the buffers outside the LLM, under the module's ``state_dict``
  names (fp32 master weights from a ZeRO checkpoint), with epoch / step / source in its metadata;
* ``model.ckpt``: the same tensors as a minimal Lightning checkpoint (``state_dict`` + ``radiolm_trainable_only``,
  no optimizer), so that ``lightning test|validate|predict -c DIR/config.yaml --ckpt_path DIR/model.ckpt`` loads it
  as it loads any checkpoint of the suite (frozen parts from their pretrained source). It cannot resume a ``fit``;
* ``config.yaml``: the run's resolved config (what LightningCLI saved next to ``checkpoints/``); a DeepSpeed
  ``trainer.strategy`` becomes ``auto``, since the export is a plain checkpoint;
* ``export.json``: what was read and written, and the counts.

``radiolm analyze ... --run DIR`` reads the export folder as a run (:func:`radiolm.analysis.run.load_run`).
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from radiolm.checkpoint.read import (
    TrainableWeights,
    find_run_checkpoint,
    is_deepspeed_checkpoint,
    read_trainable_weights,
)
from radiolm.errors import RadioLMError

__all__ = ["EXPORT_FILES", "Export", "export_checkpoint", "main"]

EXPORT_FILES = {"weights": "model.safetensors", "checkpoint": "model.ckpt", "config": "config.yaml"}
"""The files of an export folder."""


@dataclass
class Export:
    """The result of :func:`export_checkpoint`: what was read (``weights.path``, ``which``) and where it went."""

    weights: TrainableWeights
    which: str
    out: Path
    config_changes: list[str]

    @property
    def files(self) -> dict[str, Path]:
        return {key: self.out / name for key, name in EXPORT_FILES.items()}


def resolve_source(source: Path, config: Path | None = None) -> tuple[Path, str, Path]:
    """``(checkpoint, which, config.yaml)`` for a run folder, a ``.ckpt`` file or a DeepSpeed folder.

    A checkpoint's run folder is the parent of its ``checkpoints/`` folder; ``config`` overrides the config found.
    """
    if not source.exists():
        raise RadioLMError(
            f"{source}: no such run folder, checkpoint file or DeepSpeed checkpoint folder; pass runs/<experiment>/"
            "version_N, a .ckpt file or a DeepSpeed <name>.ckpt folder"
        )
    if source.is_dir() and not is_deepspeed_checkpoint(source):
        if not (source / "checkpoints").is_dir():
            raise RadioLMError(
                f"{source}: not a run folder (no checkpoints/) and not a DeepSpeed checkpoint folder; pass "
                "runs/<experiment>/version_N, a .ckpt file or a DeepSpeed <name>.ckpt folder"
            )
        checkpoint, which = find_run_checkpoint(source)
        run_dir = source
    else:
        checkpoint, which = source, "as given"
        run_dir = source.parent.parent if source.parent.name == "checkpoints" else source.parent
    found = config or run_dir / "config.yaml"
    if not found.is_file():
        raise RadioLMError(
            f"{found}: missing; the export needs the run's resolved config (LightningCLI writes <run>/config.yaml); "
            "pass --config FILE"
        )
    return checkpoint, which, found


def plain_strategy(config: dict[str, Any]) -> list[str]:
    """Replace a DeepSpeed ``trainer.strategy`` by ``auto`` in place; the changed keys."""
    trainer = config.get("trainer") or {}
    strategy = trainer.get("strategy")
    name = strategy.get("class_path", "") if isinstance(strategy, dict) else str(strategy or "")
    if "deepspeed" not in name.lower():
        return []
    trainer["strategy"] = "auto"
    return [f"trainer.strategy: {name} -> auto (the export is a plain checkpoint)"]


def export_checkpoint(source: str | Path, out: str | Path, config: str | Path | None = None) -> Export:
    """Write ``model.safetensors``, ``model.ckpt``, ``config.yaml`` and ``export.json`` into ``out``."""
    from safetensors.torch import save_file

    checkpoint, which, config_path = resolve_source(Path(source), Path(config) if config else None)
    weights = read_trainable_weights(checkpoint)
    if not weights.state_dict:
        raise RadioLMError(f"{checkpoint}: holds no trainable weights; nothing to export")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = Export(weights, which, out, [])
    files = result.files
    tensors = {k: v.detach().contiguous() for k, v in weights.state_dict.items()}
    metadata = {"format": "radiolm-trainable", "source": str(checkpoint), "kind": weights.kind}
    recorded = {"epoch": weights.epoch, "global_step": weights.global_step}
    metadata |= {k: str(v) for k, v in recorded.items() if v is not None}
    save_file(tensors, str(files["weights"]), metadata=metadata)
    torch.save(_lightning_checkpoint(tensors, weights), files["checkpoint"])

    resolved = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    result.config_changes = plain_strategy(resolved) if isinstance(resolved, dict) else []
    if result.config_changes:
        files["config"].write_text(yaml.safe_dump(resolved, sort_keys=False), encoding="utf-8")
    elif config_path.resolve() != files["config"].resolve():
        shutil.copyfile(config_path, files["config"])

    summary = {
        "source": str(checkpoint),
        "which": which,
        "kind": weights.kind,
        "config": str(config_path),
        "config_changes": result.config_changes,
        "epoch": weights.epoch,
        "global_step": weights.global_step,
        "tensors": len(tensors),
        "parameters": weights.n_parameters,
        "dropped_frozen": len(weights.dropped),
        "files": {key: path.name for key, path in files.items()},
    }
    (out / "export.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return result


def _lightning_checkpoint(tensors: dict[str, torch.Tensor], weights: TrainableWeights) -> dict[str, Any]:
    """What ``trainer.test(ckpt_path=...)`` needs: the weights, the trainable-only mark and Lightning's version."""
    import lightning

    return {
        "state_dict": tensors,
        "radiolm_trainable_only": True,
        "pytorch-lightning_version": lightning.__version__,
        "epoch": weights.epoch or 0,
        "global_step": weights.global_step or 0,
    }


def main(argv: list[str] | None = None) -> None:
    """``radiolm checkpoint export RUN_OR_CKPT --out DIR [--config FILE]``."""
    parser = argparse.ArgumentParser(
        prog="radiolm checkpoint export",
        description="Write a run's trainable weights as safetensors (+ a minimal Lightning checkpoint) and its config.",
    )
    parser.add_argument(
        "source", type=Path, help="run folder (runs/<experiment>/version_N), .ckpt file or DeepSpeed checkpoint folder"
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--config", type=Path, default=None, help="config.yaml (default: the run folder's)")
    args = parser.parse_args(argv)
    result = export_checkpoint(args.source, args.out, args.config)
    w = result.weights
    step = f", epoch {w.epoch}, step {w.global_step}" if w.global_step is not None else ""
    print(f"read {w.path} ({result.which}; {w.kind}{step})")
    print(f"{len(w.state_dict)} tensors, {w.n_parameters:,} trainable values")
    if w.dropped:
        print(f"dropped {len(w.dropped)} frozen parameters the checkpoint held (loading takes them from their source)")
    for change in result.config_changes:
        print(f"config: {change}")
    print(f"wrote {', '.join(str(p) for p in result.files.values())}, {result.out / 'export.json'}")
    files = result.files
    print(f"evaluate it: lightning test -c {files['config']} --ckpt_path {files['checkpoint']}")
