"""ReportBatch: the one contract between data, parts, methods and metrics (DESIGN.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

__all__ = ["ReportBatch"]


@dataclass
class ReportBatch:
    """A batch of studies. Lightning moves every tensor field to the device (it handles dataclasses).

    Attributes:
        ids: Study ids, unique within a split, ``len == B``.
        reports: Cleaned reference reports (what the model learns and what metrics compare to).
        labels: CheXpert-14 observations ``[B, 14]`` (1 positive, 0 negative, -1 uncertain or unknown), in the
            order of :data:`radiolm.data.labels.CHEXPERT_14`.
        images: X-ray views ``[B, V, C, H, W]``, zero-padded on ``V``; ``None`` for CT batches.
        view_mask: ``[B, V]`` bool, True where ``images`` holds a real view.
        views: View names per study (``"frontal"``, ``"lateral"``), real views only.
        volumes: CT volumes ``[B, C, D, H, W]``; ``None`` for X-ray batches.
        domain: Data domain per study (e.g. ``"cxr"``, ``"ct"``), for continual learning.
        language: Report language per study (``"en"``, ``"zh"``), for language-aware metrics.
    """

    ids: list[str]
    reports: list[str]
    labels: Tensor
    images: Tensor | None = None
    view_mask: Tensor | None = None
    views: list[list[str]] = field(default_factory=list)
    volumes: Tensor | None = None
    domain: list[str] = field(default_factory=list)
    language: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)
