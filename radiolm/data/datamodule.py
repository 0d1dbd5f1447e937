"""The base DataModule: an R2Gen ``annotation.json`` + image root -> :class:`ReportBatch`.

Text stays text here: tokenisation belongs to the method's prompt, so data never depends on a model.
Image size and normalisation come from the encoder through :class:`ImageTransformConfig` (linked by the CLI).

Before the first step ``setup`` checks every entry once (:mod:`radiolm.data.validation`, docs/data_validation.md):
malformed entries and empty reports, and with ``validate_images`` that every image used exists and decodes to its
last byte. A problem stops the run with an error naming the annotation file, the entries and the image files;
``skip_invalid: true`` drops those entries instead, logs how many and which, and writes the list to
``<run folder>/invalid-entries.json``. ``bucketing: true`` batches training reports of similar length
(:mod:`radiolm.data.sampler`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from radiolm.batch import ReportBatch
from radiolm.data.annotation import SPLITS, load_image, load_labels_csv, read_annotation
from radiolm.data.labels import CHEXPERT_14
from radiolm.data.sampler import BucketBatchSampler, report_lengths
from radiolm.data.transforms import ImageTransformConfig, build_image_transform
from radiolm.data.validation import CheckedFiles, Problem, check_entries, write_problems

__all__ = ["ReportDataModule", "StudyDataset", "collate_studies"]

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
        skip_invalid: Drop invalid entries (counted, logged, listed in ``invalid-entries.json``) instead of
            stopping with an error.
        validate_images: Decode every image used in ``setup`` (JPEGs at 1/8 scale, which still reads every
            byte); files that passed are recorded in ``<annotation dir>/.radiolm-checked-images.json`` by size and
            mtime and not decoded again. False skips the file checks: a bad file then fails when its batch loads.
        bucketing: Training batches of reports of similar length (:class:`BucketBatchSampler`), for less padding.
        bucket_batches: Batches per length bucket (larger mixes more, smaller pads less).
        bucket_seed: Seed of the bucketing shuffles (epoch ``e`` uses ``bucket_seed + e``).
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
        skip_invalid: bool = False,
        validate_images: bool = True,
        bucketing: bool = False,
        bucket_batches: int = 10,
        bucket_seed: int = 0,
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
        self.skip_invalid, self.validate_images = skip_invalid, validate_images
        self.bucketing, self.bucket_batches, self.bucket_seed = bucketing, bucket_batches, bucket_seed
        self.datasets: dict[str, StudyDataset] = {}
        self.problems: list[Problem] = []

    # -- hooks for subclasses ---------------------------------------------------------------------------------------
    def prepare_entries(self, annotation: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
        """Change the entries after reading and before the checks (report cleaning, split-wide checks)."""
        return annotation

    def entry_check(self, checked: CheckedFiles) -> Callable[[dict[str, Any]], str | None]:
        """The per-entry check of ``setup``: an empty report, then (``validate_images``) each image used."""

        def check(entry: dict[str, Any]) -> str | None:
            if not str(entry[self.report_key]).strip():
                return f"empty '{self.report_key}' (after cleaning); give it a report or remove the entry"
            if self.validate_images:
                for rel in entry["image_path"][: self.max_views]:
                    if (message := checked.check_image(self.image_root / rel)) is not None:
                        return message
            return None

        return check

    # -- set-up -----------------------------------------------------------------------------------------------------
    def load_entries(self) -> dict[str, list[dict[str, Any]]]:
        """Read, prepare and check the annotation; keep ``self.problems``; write them to the run folder."""
        annotation, problems = read_annotation(self.annotation_path, self.report_key)
        annotation = self.prepare_entries(annotation)
        checked = CheckedFiles(self.annotation_path.parent / ".radiolm-checked-images.json")
        try:
            annotation, self.problems = check_entries(
                annotation,
                self.entry_check(checked),
                source=self.annotation_path,
                skip_invalid=self.skip_invalid,
                known=problems,
                workers=max(1, self.num_workers),
            )
        finally:
            checked.save()  # also when raising: the files that passed need no second decode
        if self.problems:
            self._write_problems()
        return annotation

    def _write_problems(self) -> None:
        """``invalid-entries.json`` in the run folder (``trainer.log_dir``), else next to the annotation."""
        trainer = getattr(self, "trainer", None)
        log_dir = trainer.log_dir if trainer is not None else None  # a collective: every rank calls it
        if trainer is not None and not trainer.is_global_zero:
            return
        target = Path(log_dir) if log_dir else self.annotation_path.parent
        name = "invalid-entries.json" if log_dir else f"{self.annotation_path.stem}.invalid-entries.json"
        try:
            path = write_problems(target / name, self.problems)
            log.warning("radiolm: the %d dropped entries are listed in %s", len(self.problems), path)
        except OSError as e:  # a read-only data folder: the warning of check_entries has the ids already
            log.warning("radiolm: could not write the dropped entries to %s (%s)", target / name, e)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        annotation = self.load_entries()
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
        if split == "train" and self.bucketing:
            dataset = self.datasets[split]
            sampler = BucketBatchSampler(
                RandomSampler(dataset, generator=torch.Generator().manual_seed(self.bucket_seed)),
                self.batch_size,
                lengths=report_lengths([entry[self.report_key] for entry in dataset.entries]),
                batches_per_bucket=self.bucket_batches,
                seed=self.bucket_seed,
            )
            return DataLoader(
                dataset,
                batch_sampler=sampler,
                num_workers=self.num_workers,
                persistent_workers=self.num_workers > 0,
                collate_fn=collate_studies,
            )
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
