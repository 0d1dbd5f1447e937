"""ReportBatch: the one contract between data, parts, methods and metrics (DESIGN.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from radiolm.errors import BatchError

__all__ = ["ReportBatch", "require_images", "require_volumes"]


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

    def map_tensors(self, fn: Callable[[Tensor], Tensor]) -> ReportBatch:
        """A copy with ``fn`` applied to every tensor field (e.g. ``lambda x: x.to(device)``); lists are copied."""
        fields: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                value = fn(value)
            fields[f.name] = list(value) if isinstance(value, list) else value
        return ReportBatch(**fields)

    def study(self, i: int) -> ReportBatch:
        """The ``i``-th study as a batch of one (tensors cloned, so that it does not hold the whole batch)."""
        one = self.map_tensors(lambda x: x[i : i + 1].clone())
        for name in ("ids", "reports", "views", "domain", "language"):
            values = getattr(self, name)
            setattr(one, name, [values[i]] if values else [])
        return one


# What each kind of input needs, and the DataModules that provide it (named in the error message).
_XRAY_MODULES = "radiolm.data.IUXrayDataModule, MIMICCXRDataModule or PhantomCXRDataModule"
_CT_MODULES = "radiolm.data.CTRGChestDataModule or PhantomCTDataModule"


def require_images(batch: ReportBatch, method: str) -> tuple[Tensor, Tensor]:
    """The X-ray views of ``batch`` and their mask, or a :class:`~radiolm.errors.BatchError` naming ``method``.

    Args:
        batch: A batch from any DataModule.
        method: The method's name for the message (e.g. ``"R2GenGPT"``).

    Returns:
        ``images`` ``[B, V, C, H, W]`` and ``view_mask`` ``[B, V]`` (bool; all views real when the batch has none).
    """
    if batch.images is None:
        raise BatchError(
            f"{method} needs X-ray images (batch.images); this batch has none: use an X-ray DataModule "
            f"({_XRAY_MODULES})"
        )
    view_mask = batch.view_mask
    if view_mask is None:
        view_mask = torch.ones(batch.images.shape[:2], dtype=torch.bool, device=batch.images.device)
    return batch.images, view_mask


def require_volumes(batch: ReportBatch, method: str) -> Tensor:
    """The CT volumes ``[B, C, D, H, W]`` of ``batch``, or a :class:`~radiolm.errors.BatchError` naming ``method``."""
    if batch.volumes is None:
        raise BatchError(
            f"{method} needs CT volumes (batch.volumes); this batch has none: use a CT DataModule ({_CT_MODULES})"
        )
    return batch.volumes
