"""Learning-rate schedules stepped per optimizer step."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["LRSchedule", "apply_lr_scale", "build_scheduler", "parameter_groups"]


@dataclass
class LRSchedule:
    """Linear warm-up, then cosine decay or a constant rate.

    Attributes:
        name: ``cosine`` (R2GenGPT, bidirectional: cosine decay to ``min_lr_ratio * lr`` at the last step) or
            ``constant`` (Dia-LLaMA §3.2: constant after warm-up).
        warmup_steps: Optimizer steps of linear warm-up from 0.
        min_lr_ratio: Final learning rate of the cosine, as a fraction of the initial one.
        lr_scale: Per-part multipliers of the optimizer's learning rate, keyed by a part's attribute name (or any
            dotted module prefix), e.g. ``{language_model: 0.05}``: LoRA at 1e-4 beside a from-scratch encoder and
            mapper at 2e-3. Parts not named keep the optimizer's rate. The warm-up and decay scale every group alike.
    """

    name: Literal["cosine", "constant"] = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.01
    lr_scale: dict[str, float] = field(default_factory=dict)


def parameter_groups(named: Sequence[tuple[str, Any]], lr_scale: dict[str, float]) -> list[dict[str, Any]]:
    """Optimizer parameter groups: one per ``lr_scale`` key (its parameters, tagged ``lr_scale``), then the rest.

    A parameter under several keys goes to the longest (most specific). A key that names no trainable parameter is
    an error (a typo would otherwise train that part at the wrong rate without a word) that offers the parts with
    trainable parameters instead."""
    keys = sorted(lr_scale, key=len, reverse=True)
    grouped: dict[str, list[Any]] = {key: [] for key in keys}
    rest: list[Any] = []
    for name, param in named:
        key = next((k for k in keys if name == k or name.startswith(k + ".")), None)
        (grouped[key] if key is not None else rest).append(param)
    for key in keys:
        if lr_scale[key] <= 0:
            raise ValueError(f"schedule.lr_scale.{key}: {lr_scale[key]} must be > 0 (freeze a part with `trainable`)")
        if not grouped[key]:
            parts = sorted({name.split(".", 1)[0] for name, _ in named})
            raise ValueError(
                f"schedule.lr_scale.{key}: no trainable parameter is under {key!r}; name a part with trainable "
                f"parameters ({', '.join(parts) or 'none'}) or a dotted module path inside one"
            )
    groups = [{"params": grouped[key], "lr_scale": float(lr_scale[key])} for key in keys]
    if rest:
        groups.append({"params": rest, "lr_scale": 1.0})
    return groups


def apply_lr_scale(optimizer: Optimizer) -> Optimizer:
    """Multiply each group's learning rate (the optimizer's, set when it was built) by the group's ``lr_scale``;
    groups without the tag keep theirs."""
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * group.get("lr_scale", 1.0)
    return optimizer


def build_scheduler(optimizer: Optimizer, schedule: LRSchedule, total_steps: int) -> LambdaLR:
    """A ``LambdaLR`` for ``total_steps`` optimizer steps."""

    def factor(step: int) -> float:
        if step < schedule.warmup_steps:
            return (step + 1) / schedule.warmup_steps
        if schedule.name == "constant":
            return 1.0
        span = max(1, total_steps - schedule.warmup_steps)
        progress = min(1.0, (step - schedule.warmup_steps) / span)
        return schedule.min_lr_ratio + (1 - schedule.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
