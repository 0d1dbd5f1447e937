"""The trainable weights of a checkpoint, whatever wrote it, and the checkpoint a run folder recorded as its best.

Three kinds hold a run's weights (DESIGN.md, "Checkpoints hold trainable weights"):

* a Lightning ``.ckpt`` file: ``ReportGenerationModule.on_save_checkpoint`` kept only the trainable weights and the
  buffers outside the LLM, and marked it ``radiolm_trainable_only``;
* a DeepSpeed checkpoint folder (``<name>.ckpt/latest``, ``<name>.ckpt/<tag>/mp_rank_00_model_states.pt`` and one
  ``*_optim_states.pt`` per rank), what ``DeepSpeedStrategy`` writes: under ZeRO-2 the fp32 weights are the
  optimizer's partitions, merged here by DeepSpeed's own ``zero_to_fp32``; frozen parameters are in the folder only
  when the strategy lacked ``exclude_frozen_parameters``, and are dropped here;
* an export folder's ``model.safetensors`` (:mod:`radiolm.checkpoint.export`).

Nothing here unpickles code: ``.ckpt`` and DeepSpeed's model-state files load with ``weights_only=True``
(DeepSpeed's merge of its optimizer files is its own reader).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from radiolm.errors import RadioLMError

__all__ = [
    "LLM_PREFIX",
    "TrainableWeights",
    "find_run_checkpoint",
    "is_deepspeed_checkpoint",
    "read_trainable_weights",
]

LLM_PREFIX = "language_model."
"""State-dict prefix of the language model: its buffers are rebuilt from the pretrained source, never saved."""

KINDS = ("lightning", "deepspeed", "safetensors")


@dataclass
class TrainableWeights:
    """What a checkpoint holds of a run.

    Attributes:
        state_dict: Trainable parameters and the buffers outside the LLM, by the module's ``state_dict`` names.
        path: The file or folder read.
        kind: ``lightning``, ``deepspeed`` or ``safetensors``.
        epoch: The epoch and ``global_step`` recorded with the weights (``None``: not recorded).
        dropped: Names in the checkpoint that are not trainable (a DeepSpeed folder written with its frozen
            parameters); dropped, and counted so that the caller can say so.
        state: The rest of the checkpoint's state (callbacks, loops, ...), tensors of the weights excluded.
    """

    state_dict: dict[str, Tensor]
    path: Path
    kind: str
    epoch: int | None = None
    global_step: int | None = None
    dropped: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def n_parameters(self) -> int:
        """Number of scalars in :attr:`state_dict`."""
        return sum(t.numel() for t in self.state_dict.values())


def is_deepspeed_checkpoint(path: Path) -> bool:
    """A folder that DeepSpeed's ``save_checkpoint`` wrote: ``latest`` or a ``*/mp_rank_00_model_states.pt``."""
    return path.is_dir() and ((path / "latest").is_file() or any(path.glob("*/mp_rank_*_model_states.pt")))


def read_trainable_weights(path: str | Path) -> TrainableWeights:
    """Read a ``.ckpt`` file, a DeepSpeed checkpoint folder or a ``.safetensors`` file (see the module docstring).

    Raises:
        RadioLMError: ``path`` is missing or is none of these; the message names it and says what is expected.
    """
    path = Path(path)
    if not path.exists():
        raise RadioLMError(f"{path}: no such checkpoint file or folder")
    if path.is_dir():
        if is_deepspeed_checkpoint(path):
            return _read_deepspeed(path)
        raise RadioLMError(
            f"{path}: a folder but not a DeepSpeed checkpoint (no `latest`, no */mp_rank_00_model_states.pt); pass a "
            "run folder (runs/<experiment>/version_N), a .ckpt file, or a DeepSpeed <name>.ckpt folder"
        )
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    return _read_lightning(path)


def _load(path: Path) -> dict[str, Any]:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle with code, a truncated file, not a checkpoint at all
        reason = " ".join(str(e).split())[:200]
        raise RadioLMError(f"{path}: cannot read it as a checkpoint ({type(e).__name__}: {reason})") from None
    if not isinstance(loaded, dict):
        raise RadioLMError(f"{path}: not a checkpoint (a {type(loaded).__name__}, not a dict)")
    return loaded


def _read_lightning(path: Path) -> TrainableWeights:
    checkpoint = _load(path)
    if "state_dict" not in checkpoint:
        raise RadioLMError(f"{path}: no `state_dict`; not a Lightning checkpoint")
    if not checkpoint.get("radiolm_trainable_only"):
        raise RadioLMError(
            f"{path}: not written by a radiolm method (no `radiolm_trainable_only`): which of its weights are "
            "trainable is unknown; export a checkpoint that `radiolm fit` wrote"
        )
    state = {k: v for k, v in checkpoint.items() if k not in ("state_dict", "optimizer_states")}
    return TrainableWeights(
        dict(checkpoint["state_dict"]),
        path,
        "lightning",
        epoch=checkpoint.get("epoch"),
        global_step=checkpoint.get("global_step"),
        state=state,
    )


def _read_safetensors(path: Path) -> TrainableWeights:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118  safe_open has no __iter__
    except Exception as e:
        raise RadioLMError(f"{path}: cannot read it as safetensors ({type(e).__name__}: {e})") from None

    def number(key: str) -> int | None:
        return int(metadata[key]) if metadata.get(key, "").isdigit() else None

    return TrainableWeights(tensors, path, "safetensors", epoch=number("epoch"), global_step=number("global_step"))


def _model_states_file(folder: Path) -> tuple[Path, str]:
    """``(<tag>/mp_rank_00_model_states.pt, tag)``: the tag from ``latest``, else the only tag folder."""
    latest = folder / "latest"
    if latest.is_file():
        tag = latest.read_text().strip()
    else:
        tags = sorted(p.parent.name for p in folder.glob("*/mp_rank_00_model_states.pt"))
        if len(tags) != 1:
            raise RadioLMError(f"{folder}: no `latest` file and {len(tags)} tag folders; cannot tell which to read")
        tag = tags[0]
    file = folder / tag / "mp_rank_00_model_states.pt"
    if not file.is_file():
        raise RadioLMError(f"{file}: missing; the DeepSpeed checkpoint folder {folder} is incomplete")
    return file, tag


def _read_deepspeed(folder: Path) -> TrainableWeights:
    """The fp32 weights merged from every rank's optimizer partition (ZeRO 1-3), less the frozen parameters."""
    try:
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    except ImportError as e:
        raise RadioLMError(
            f"{folder}: a DeepSpeed checkpoint; reading it needs DeepSpeed (`pip install .[deepspeed]`): {e}"
        ) from None
    states_file, tag = _model_states_file(folder)
    states = _load(states_file)
    trainable = {name for group in states.get("param_shapes") or [] for name in group}
    buffers = {name for name in states.get("buffer_names") or [] if not name.startswith(LLM_PREFIX)}
    try:
        merged = get_fp32_state_dict_from_zero_checkpoint(str(folder), tag, exclude_frozen_parameters=True)
    except Exception as e:
        raise RadioLMError(f"{folder}: DeepSpeed cannot merge this checkpoint ({type(e).__name__}: {e})") from None
    keep = trainable | buffers
    client = {k: v for k, v in states.items() if k not in _DEEPSPEED_KEYS}
    return TrainableWeights(
        {k: v for k, v in merged.items() if k in keep},
        folder,
        "deepspeed",
        epoch=client.get("epoch"),
        global_step=client.get("global_step"),
        dropped=sorted(set(merged) - keep | set(states.get("frozen_param_shapes") or {})),
        state=client,
    )


_DEEPSPEED_KEYS = {
    "module", "buffer_names", "optimizer", "param_shapes", "frozen_param_shapes", "shared_params",
    "frozen_param_fragments", "lr_scheduler", "data_sampler", "random_ltd", "sparse_tensor_module_names",
    "skipped_steps", "global_steps", "global_samples", "dp_world_size", "mp_world_size", "ds_config", "ds_version",
    "checkpoint_parallel_dimensions",
}  # fmt: skip
"""What DeepSpeed adds to a model-state file; the rest is Lightning's client state (epoch, callbacks, ...)."""


def find_run_checkpoint(run_dir: str | Path) -> tuple[Path, str]:
    """The checkpoint of a run folder to use and why: ``(path, "best (val/selection=0.41)")`` or ``(path, "last")``.

    The best is the one ``ModelCheckpoint`` recorded in the run's last checkpoint (``best_model_path``), else the
    newest ``best*.ckpt``; without one, ``last.ckpt``. Files and DeepSpeed folders alike.

    Raises:
        RadioLMError: The run folder has no ``checkpoints/`` with a checkpoint in it.
    """
    folder = Path(run_dir) / "checkpoints"
    last = folder / "last.ckpt"
    best = _recorded_best(last, folder) if last.exists() else None
    if best is not None:
        return best
    candidates = sorted(folder.glob("best*.ckpt"), key=lambda p: p.stat().st_mtime)
    if candidates:
        return candidates[-1], "best (the newest best*.ckpt)"
    if last.exists():
        return last, "last"
    raise RadioLMError(
        f"{folder}: no best*.ckpt or last.ckpt; pass a checkpoint path, or train with the ModelCheckpoint callback of "
        "experiments/_base/callbacks.yaml"
    )


def _recorded_best(last: Path, folder: Path) -> tuple[Path, str] | None:
    try:  # the client state only: a DeepSpeed folder's optimizer partitions are not merged for this
        state = _load(_model_states_file(last)[0] if last.is_dir() else last)
    except RadioLMError:
        return None
    for key, callback in (state.get("callbacks") or {}).items():
        if not (str(key).startswith("ModelCheckpoint") and isinstance(callback, dict)):
            continue
        recorded = callback.get("best_model_path") or ""
        if not recorded:
            continue
        for path in (Path(recorded), folder / Path(recorded).name):  # as saved (maybe relative to the run's cwd)
            if path.exists() and path.resolve() != last.resolve():
                score = callback.get("best_model_score")
                monitor = callback.get("monitor") or "monitor"
                shown = f"{float(score):.4g}" if score is not None else "?"
                return path, f"best ({monitor}={shown})"
    return None
