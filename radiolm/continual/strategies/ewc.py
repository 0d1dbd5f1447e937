"""Table 1's EWC (Kirkpatrick et al. 2017, ref. [15] of ``../shared/papers/cmrg_llm_continual.md``, §3.2).

SeqFT plus, for every finished task ``k``, the quadratic penalty of EWC Eq. 3 around the weights ``theta*_k`` the
task ended with, weighted by the diagonal Fisher information ``F_k``:

    L_EWC = lambda / 2 * sum_k sum_i F_{k,i} (theta_i - theta*_{k,i})^2      (one penalty per task, EWC §2.1)

``F_k`` is the empirical Fisher: the squared gradient of the task's ``L^LM``, averaged over up to ``fisher_batches``
batches of its training loader (mini-batch gradients, the usual estimate for large models; EWC's per-sample squares
cost one backward pass per study), taken with the weights the stage ended with, in eval mode. Only parameters that
trained in the stage enter it (the LLM is frozen).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import torch
from torch import Tensor

from radiolm.batch import ReportBatch
from radiolm.continual.strategies.base import ContinualModel, SeqFT, move_batch
from radiolm.errors import RadioLMError

__all__ = ["EWC"]


class EWC(SeqFT):
    """SeqFT with EWC's penalty toward every earlier task's weights.

    Args:
        lam: ``lambda`` of EWC Eq. 3 (§3.2 gives no value; 100).
        fisher_batches: Training batches the Fisher is averaged over (``None``: the whole loader).
        seed: Seed of the loader's shuffle for the Fisher (a resumed run rebuilds the same one).
    """

    name: ClassVar[str] = "ewc"
    keeps_stage_state: ClassVar[bool] = True

    def __init__(self, lam: float = 100.0, fisher_batches: int | None = 50, seed: int = 0) -> None:
        super().__init__()
        if lam < 0 or (fisher_batches is not None and fisher_batches < 1):
            raise RadioLMError(f"EWC: lam must be >= 0 and fisher_batches >= 1, got {lam}, {fisher_batches}")
        self.lam, self.fisher_batches, self.seed = lam, fisher_batches, seed
        self.anchors: list[dict[str, Tensor]] = []  # theta*_k per finished task
        self.fishers: list[dict[str, Tensor]] = []  # F_k per finished task

    def penalty(self, model: ContinualModel) -> Tensor:
        """``sum_k sum_i F_{k,i} (theta_i - theta*_{k,i})^2`` (without ``lambda / 2``)."""
        params = dict(model.named_parameters())
        total = next(iter(params.values())).new_zeros((), dtype=torch.float32)
        for anchor, fisher in zip(self.anchors, self.fishers, strict=True):
            for name, f in fisher.items():
                p = params[name]
                total = total + (f.to(p.device) * (p.float() - anchor[name].to(p.device)).pow(2)).sum()
        return total

    def add_losses(self, model: ContinualModel, batch: ReportBatch, losses: dict[str, Tensor], total: Tensor) -> Tensor:
        if not self.anchors or not model.training:
            return total
        losses["ewc"] = self.penalty(model)
        return total + self.lam / 2 * losses["ewc"]

    def fisher(self, model: ContinualModel, loader: Iterable[ReportBatch], device: torch.device) -> dict[str, Tensor]:
        """The diagonal empirical Fisher of ``L^LM`` over the trained parameters (eval mode, mean of squared grads)."""
        trained = {n: p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("language_model.")}
        squares = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in trained.items()}
        was_training, batches = model.training, 0
        model.eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            for batch in loader:
                for p in trained.values():
                    p.grad = None
                model.lm_loss(move_batch(batch, device)).backward()
                for n, p in trained.items():
                    if p.grad is not None:
                        squares[n] += p.grad.detach().float().pow(2)
                batches += 1
                if self.fisher_batches is not None and batches >= self.fisher_batches:
                    break
        for p in trained.values():
            p.grad = None
        model.train(was_training)
        return {n: (s / max(batches, 1)).cpu() for n, s in squares.items()}

    def end_stage(self, model: ContinualModel, stage: int, loader: Iterable[ReportBatch], device: torch.device) -> None:
        self.fishers.append(self.fisher(model, loader, device))
        self.anchors.append(
            {n: p.detach().float().cpu().clone() for n, p in model.named_parameters() if n in self.fishers[-1]}
        )
