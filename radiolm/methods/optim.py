"""Learning-rate schedules stepped per optimizer step."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["LRSchedule", "build_scheduler"]


@dataclass
class LRSchedule:
    """Linear warm-up, then cosine decay or a constant rate.

    Attributes:
        name: ``cosine`` (R2GenGPT, bidirectional: cosine decay to ``min_lr_ratio * lr`` at the last step) or
            ``constant`` (Dia-LLaMA §3.2: constant after warm-up).
        warmup_steps: Optimizer steps of linear warm-up from 0.
        min_lr_ratio: Final learning rate of the cosine, as a fraction of the initial one.
    """

    name: Literal["cosine", "constant"] = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.01


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
