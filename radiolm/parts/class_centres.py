"""Disease class centres ``h_d^c`` in the LLM hidden space (CMRG-LLM §2.3), kept across the stages.

§2.3 computes and updates a centre per disease class "using only features associated with a single label". With
CheXpert labels, strictly single-label samples leave classes that (nearly) always come with another observation
without a centre: the labeler marks Lung Opacity together with Edema, Consolidation, Atelectasis and Lung Lesion, and
Support Devices sits next to any finding. ``ignored`` names the observations that are not counted when deciding
whether a sample has one label; a sample whose only positives are ignored ones counts for its one ignored label.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from radiolm.data.labels import CHEXPERT_14

__all__ = ["DEFAULT_IGNORED", "ClassCentres"]

DEFAULT_IGNORED = ("Lung Opacity", "Support Devices")
"""Not counted as a second label (§2.3 leaves the rule for co-occurring observations open): Lung Opacity is the
parent the CheXpert labeler adds to the lung findings, Support Devices is no disease."""


class ClassCentres(nn.Module):
    """One centre per observation, an exponential moving average of the single-label features.

    The centres are buffers (saved in every checkpoint, never optimised). :meth:`snapshot` copies the current
    centres to :attr:`previous`, the ``h_d^c`` "from the previous dataset" that L^SC_center and L^TP use while the
    current stage updates :attr:`centres`.

    Args:
        dim: Width of ``h^p``.
        classes: Observation names (default the CheXpert-14, "No Finding" last: ``h_0^c``).
        ignored: Observations not counted as a second label (:data:`DEFAULT_IGNORED`).
        momentum: EMA momentum of an update (§2.3 says "calculate and update" and leaves the rule open; 0.9).
    """

    centres: Tensor  # [K, D]
    counts: Tensor  # [K] samples seen per class (0: no centre yet)
    previous: Tensor  # [K, D] the snapshot used as h^c in the losses
    previous_counts: Tensor  # [K]
    counted: Tensor  # [K] bool, classes counted when deciding single-label

    def __init__(
        self,
        dim: int,
        classes: list[str] | None = None,
        ignored: list[str] | None = None,
        momentum: float = 0.9,
    ) -> None:
        super().__init__()
        self.classes = list(classes or CHEXPERT_14)
        ignored = list(DEFAULT_IGNORED if ignored is None else ignored)
        unknown = sorted(set(ignored) - set(self.classes))
        if unknown:
            raise ValueError(f"ClassCentres: ignored observations {unknown} are not among the classes {self.classes}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"ClassCentres: momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        k = len(self.classes)
        self.register_buffer("centres", torch.zeros(k, dim))
        self.register_buffer("counts", torch.zeros(k, dtype=torch.long))
        self.register_buffer("previous", torch.zeros(k, dim))
        self.register_buffer("previous_counts", torch.zeros(k, dtype=torch.long))
        self.register_buffer("counted", torch.tensor([c not in ignored for c in self.classes]), persistent=False)

    def index(self, name: str) -> int:
        """Row of observation ``name``."""
        if name not in self.classes:
            raise KeyError(f"unknown class {name!r}; the classes are {self.classes}")
        return self.classes.index(name)

    def single_label(self, positive: Tensor) -> Tensor:
        """The one class of each single-label sample, ``-1`` for the others.

        Args:
            positive: ``[B, K]`` bool.

        Returns:
            ``[B]`` long.
        """
        counted = positive & self.counted[None]
        n_counted, n_all = counted.sum(1), positive.sum(1)
        one = torch.where(n_counted == 1, counted.float().argmax(1), torch.full_like(n_all, -1))
        only_ignored = (n_counted == 0) & (n_all == 1)
        return torch.where(only_ignored, positive.float().argmax(1), one)

    @torch.no_grad()
    def update(self, features: Tensor, positive: Tensor) -> None:
        """Move each class's centre toward the mean of this batch's single-label features of that class.

        Args:
            features: ``h^p`` ``[B, D]`` (detached here).
            positive: ``[B, K]`` bool.
        """
        cls = self.single_label(positive)
        for k in cls[cls >= 0].unique().tolist():
            mean = features[cls == k].detach().float().mean(0)
            first = self.counts[k] == 0
            self.centres[k] = mean if first else self.momentum * self.centres[k] + (1 - self.momentum) * mean
            self.counts[k] += int((cls == k).sum())

    def snapshot(self) -> None:
        """``previous <- centres``: the centres of the stages so far become the ``h^c`` of the next stage."""
        self.previous.copy_(self.centres)
        self.previous_counts.copy_(self.counts)

    @property
    def valid(self) -> Tensor:
        """``[K]`` bool: classes that have a previous centre."""
        return self.previous_counts > 0

    def no_finding(self) -> int:
        """Row of ``h_0^c`` ("No Finding")."""
        return self.index("No Finding")
