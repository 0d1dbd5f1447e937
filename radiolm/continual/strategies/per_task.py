"""Table 1's Per-task FT (``../shared/papers/cmrg_llm_continual.md`` §3.2): "fine-tuning and caching an independent
parameter for each task".

Every stage starts from the weights the method was built with (the pretrained ``E``, the fresh rest: "from the
pretrained start") and trains every parameter outside the LLM, as SeqFT does; at the end of the stage those weights
are cached as the task's own. Inference on a task loads its cache (:meth:`PerTaskFT.on_use_domain`). The caches live
in memory (one copy of the non-LLM weights per task, on the CPU); a resumed run rebuilds them from the finished
stages' checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import torch
from torch import Tensor

from radiolm.batch import ReportBatch
from radiolm.continual.strategies.base import ContinualModel, SeqFT
from radiolm.errors import RadioLMError

__all__ = ["PerTaskFT"]


def _outside_llm(model: ContinualModel) -> dict[str, Tensor]:
    """A CPU copy of every parameter outside the LLM."""
    return {
        n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if not n.startswith("language_model.")
    }


def _load(model: ContinualModel, weights: dict[str, Tensor]) -> None:
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in weights:
                param.copy_(weights[name])


class PerTaskFT(SeqFT):
    """Own parameters per task, each trained from the same initial weights."""

    name: ClassVar[str] = "per_task_ft"
    keeps_stage_state: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.initial: dict[str, Tensor] = {}
        self.cache: dict[str, dict[str, Tensor]] = {}
        self.live: str | None = None  # whose weights are in the module now

    def bind(self, model: ContinualModel) -> None:
        self.initial = _outside_llm(model)
        self.live = model.names[0]

    def set_stage(self, model: ContinualModel, stage: int) -> None:
        """Back to the initial weights (stage 1 starts there anyway), then SeqFT's: everything outside the LLM."""
        _load(model, self.initial)
        self.live = model.names[stage]
        super().set_stage(model, stage)

    def end_stage(self, model: ContinualModel, stage: int, loader: Iterable[ReportBatch], device: torch.device) -> None:
        self.cache[model.names[stage]] = _outside_llm(model)

    def on_use_domain(self, model: ContinualModel, name: str) -> None:
        """Put ``name``'s cached weights in the module (the live ones are cached first, so nothing is lost)."""
        if name == self.live:
            return
        if name not in self.cache:
            raise RadioLMError(f"Per-task FT: task {name!r} has not been trained yet; its weights do not exist")
        assert self.live is not None
        self.cache[self.live] = _outside_llm(model)
        _load(model, self.cache[name])
        self.live = name
