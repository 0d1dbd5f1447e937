"""The base DataModule: an R2Gen ``annotation.json`` + image root -> :class:`ReportBatch`.

Text stays text here: tokenisation belongs to the method's prompt, so data never depends on a model.
Image size and normalisation come from the encoder through :class:`ImageTransformConfig` (linked by the CLI).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from radiolm.batch import ReportBatch
from radiolm.data.annotation import SPLITS, load_annotation, load_image, load_labels_csv
from radiolm.data.labels import CHEXPERT_14
from radiolm.data.transforms import ImageTransformConfig, build_image_transform

__all__ = ["StudyDataset", "collate_studies", "ReportDataModule"]

log = logging.getLogger(__name__)


class StudyDataset(Dataset):
    """One item per study: up to ``max_views`` images, the report and its labels.

    Args:
        entries: Annotation entries of one split (``id``, report, ``image_path`` list, optional ``views``).
        image_root: Folder the ``image_path`` entries are relative to.
        transform: PIL image -> tensor ``[C, H, W]``.
        labels: Study id -> 14 CheXpert values; studies without labels get -1 (unknown) everywhere.
        report_key: Entry key that holds the reference text.
        max_views: Keep the first ``max_views`` images of a study (R2GenGPT averages two; most methods take one).
        domain: Domain tag of every study.
        language: Report language of every study.
    """

    def __init__(
        self,
        entries: list[dict[str, Any]],
        image_root: Path,
        transform: Any,
        labels: dict[str, list[int]],
        report_key: str = "report",
        max_views: int = 2,
        domain: str = "cxr",
        language: str = "en",
    ) -> None:
        self.entries, self.image_root, self.transform = entries, image_root, transform
        self.labels, self.report_key, self.max_views = labels, report_key, max_views
        self.domain, self.language = domain, language

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        paths = entry["image_path"][: self.max_views]
        views = list(entry.get("views") or ["frontal", "lateral"][: len(paths)])[: len(paths)]
        images = torch.stack([self.transform(load_image(self.image_root / p)) for p in paths])
        labels = self.labels.get(entry["id"], [-1] * len(CHEXPERT_14))
        return {
            "id": entry["id"],
            "report": entry[self.report_key],
            "images": images,
            "views": views,
            "labels": torch.tensor(labels, dtype=torch.long),
            "domain": entry.get("domain", self.domain),
            "language": entry.get("language", self.language),
        }


def collate_studies(items: list[dict[str, Any]]) -> ReportBatch:
    """Stack studies into a :class:`ReportBatch`, zero-padding views to the largest count in the batch."""
    n_views = max(item["images"].shape[0] for item in items)
    c, h, w = items[0]["images"].shape[1:]
    images = torch.zeros(len(items), n_views, c, h, w)
    view_mask = torch.zeros(len(items), n_views, dtype=torch.bool)
    for i, item in enumerate(items):
        v = item["images"].shape[0]
        images[i, :v] = item["images"]
        view_mask[i, :v] = True
    return ReportBatch(
        ids=[item["id"] for item in items],
        reports=[item["report"] for item in items],
        labels=torch.stack([item["labels"] for item in items]),
        images=images,
        view_mask=view_mask,
        views=[item["views"] for item in items],
        domain=[item["domain"] for item in items],
        language=[item["language"] for item in items],
    )


class ReportDataModule(pl.LightningDataModule):
    """Chest X-ray studies from an R2Gen ``annotation.json`` (IU-Xray, MIMIC-CXR, the phantoms).

    Args:
        annotation_path: The ``annotation.json`` with ``train`` / ``val`` / ``test`` lists.
        image_root: Folder that ``image_path`` entries are relative to; default ``<annotation dir>/images``.
        labels_path: CSV with ``id`` + 14 CheXpert columns; default ``<annotation dir>/labels.csv`` when it exists.
        report_key: Entry key of the reference text (``report``, or ``findings`` / ``impression`` where present).
        max_views: Views per study fed to the model.
        batch_size: Training batch size per device.
        eval_batch_size: Validation / test batch size (generation); default ``batch_size``.
        num_workers: DataLoader workers (persistent when > 0).
        image_transform: Size and normalisation of the encoder; set by the CLI from the model.
        domain: Domain tag of the studies.
        language: Report language of the studies.
    """

    def __init__(
        self,
        annotation_path: str,
        image_root: str | None = None,
        labels_path: str | None = None,
        report_key: str = "report",
        max_views: int = 2,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        image_transform: ImageTransformConfig | None = None,
        domain: str = "cxr",
        language: str = "en",
    ) -> None:
        super().__init__()
        self.annotation_path = Path(annotation_path)
        self.image_root = Path(image_root) if image_root else self.annotation_path.parent / "images"
        self.labels_path = Path(labels_path) if labels_path else self.annotation_path.parent / "labels.csv"
        self.report_key, self.max_views = report_key, max_views
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers = num_workers
        self.image_transform = image_transform or ImageTransformConfig()
        self.domain, self.language = domain, language
        self.datasets: dict[str, StudyDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        annotation = load_annotation(self.annotation_path, self.report_key)
        labels = load_labels_csv(self.labels_path) if self.labels_path.is_file() else {}
        if not labels:
            log.warning("radiolm: no labels file at %s; CheXpert labels are -1 (unknown)", self.labels_path)
        for split in SPLITS:
            transform = build_image_transform(self.image_transform, train=split == "train")
            self.datasets[split] = StudyDataset(
                annotation[split], self.image_root, transform, labels, self.report_key, self.max_views,
                self.domain, self.language,
            )  # fmt: skip
        log.info("radiolm: %s studies %s", self.annotation_path, {s: len(d) for s, d in self.datasets.items()})

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate_studies,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
