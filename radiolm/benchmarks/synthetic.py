"""Synthetic batches of an experiment's shapes, for benchmarks where the experiment's data is not on the machine.

The shapes come from the built model and DataModule, never from a second copy of the config: X-ray images
``[B, V, 3, S, S]`` with ``S`` the encoder's image size (``model.image_transform``) and ``V`` the DataModule's
views (``max_views`` or ``views``); CT volumes ``[B, 1, D, H, W]`` at the volume encoder's ``img_size``. Every
report is long enough to be cut at the prompt's ``max_report_tokens`` (a benchmark of the longest reports, so the
report part of the LLM input carries no padding); labels are random CheXpert-14 values.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from radiolm.batch import ReportBatch

__all__ = ["SyntheticStudies", "synthetic_loader"]

_SENTENCES = (
    "The heart size is normal. The mediastinal contours are within normal limits. There is no focal consolidation, "
    "pleural effusion or pneumothorax. Mild bibasilar atelectasis is seen. No acute osseous abnormality. "
)


class SyntheticStudies(Dataset):
    """``n`` random studies: an image stack or a volume, a long report and random labels.

    Args:
        n: Number of studies.
        images: ``(V, C, H, W)`` of an X-ray study, or ``None``.
        volume: ``(C, D, H, W)`` of a CT study, or ``None``.
        report_words: Words per report (at least as many as the report tokens the prompt keeps).
    """

    def __init__(
        self,
        n: int,
        images: tuple[int, int, int, int] | None = None,
        volume: tuple[int, int, int, int] | None = None,
        report_words: int = 100,
    ) -> None:
        if (images is None) == (volume is None):
            raise ValueError("SyntheticStudies needs exactly one of images and volume")
        self.n, self.images, self.volume = n, images, volume
        words = _SENTENCES.split()
        self.report = " ".join(words[i % len(words)] for i in range(report_words))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(i)
        shape = self.images or self.volume
        assert shape is not None
        return {
            "id": f"synthetic-{i}",
            "pixels": torch.randn(*shape, generator=g),
            "report": self.report,
            "labels": torch.randint(-1, 2, (14,), generator=g),
        }

    def collate(self, items: list[dict[str, Any]]) -> ReportBatch:
        """Items -> :class:`ReportBatch` (``images`` + ``view_mask`` or ``volumes``)."""
        pixels = torch.stack([it["pixels"] for it in items])
        common: dict[str, Any] = {
            "ids": [it["id"] for it in items],
            "reports": [it["report"] for it in items],
            "labels": torch.stack([it["labels"] for it in items]),
            "language": ["en"] * len(items),
        }
        if self.images is not None:
            v = self.images[0]
            names = ["frontal", "lateral"][:v] + ["other"] * max(0, v - 2)
            return ReportBatch(
                images=pixels,
                view_mask=torch.ones(len(items), v, dtype=torch.bool),
                views=[list(names) for _ in items],
                domain=["cxr"] * len(items),
                **common,
            )
        return ReportBatch(volumes=pixels, domain=["ct"] * len(items), **common)


def synthetic_loader(model: Any, datamodule: Any, n: int, batch_size: int) -> tuple[DataLoader, str]:
    """A loader of ``n`` synthetic studies in the shapes of ``model`` and ``datamodule``; and those shapes in words.

    Args:
        model: The built method (``volume_encoder`` for CT, else ``image_transform`` gives the image size).
        datamodule: The experiment's DataModule, built but not set up (its views per study).
        n: Studies.
        batch_size: Studies per batch.
    """
    words = 2 * int(model.prompt.max_report_tokens)  # a word is at least one token: cut at max_report_tokens
    volume_encoder = getattr(model, "volume_encoder", None)
    if volume_encoder is not None:
        h, w, d = volume_encoder.img_size
        data = SyntheticStudies(n, volume=(1, d, h, w), report_words=words)
        shapes = f"volumes 1x{d}x{h}x{w}"
    else:
        size = model.image_transform.size
        views = int(getattr(datamodule, "max_views", None) or getattr(datamodule, "views", None) or 1)
        data = SyntheticStudies(n, images=(views, 3, size, size), report_words=words)
        shapes = f"{views} view(s) of 3x{size}x{size}"
    shapes += f", reports cut at {model.prompt.max_report_tokens} tokens"
    return DataLoader(data, batch_size=batch_size, collate_fn=data.collate), shapes
