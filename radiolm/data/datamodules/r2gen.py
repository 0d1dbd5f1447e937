"""Chest X-ray studies in the R2Gen layout: ``annotation.json`` + an image root -> :class:`ReportBatch`.

:class:`R2GenDataModule` reads the R2Gen on-disk format (:mod:`radiolm.data.formats.annotation`) that IU-Xray,
MIMIC-CXR and the phantom X-rays share; :class:`~radiolm.data.datamodules.iu_xray.IUXrayDataModule`,
:class:`~radiolm.data.datamodules.mimic_cxr.MIMICCXRDataModule` and
:class:`~radiolm.data.datamodules.phantom.PhantomCXRDataModule` add what their data set needs.
Image size and normalisation come from the encoder through :class:`ImageTransformConfig` (linked by the CLI).

Before the first step ``setup`` checks every entry once (:mod:`radiolm.data.formats.validation`,
docs/data_validation.md): malformed entries and empty reports, and with ``validate_images`` that every image used
exists and decodes to its last byte. View names come from the entry's ``views`` or, with ``views_path``, from a
views file (:mod:`radiolm.data.formats.views`, written by ``radiolm data views``); without either, the image order
(0 frontal, 1 lateral, as R2Gen's IU-Xray).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from radiolm.batch import ReportBatch
from radiolm.data.datamodules.base import Entries, ReportDataModule, ReportDataset
from radiolm.data.formats.annotation import read_annotation
from radiolm.data.formats.images import CheckedFiles, load_image
from radiolm.data.formats.validation import Problem
from radiolm.data.formats.views import apply_views
from radiolm.data.labels import CHEXPERT_14
from radiolm.data.targets import check_sections, keep_sectioned
from radiolm.data.transforms import ImageTransformConfig, build_image_transform

__all__ = ["R2GenDataModule", "StudyDataset", "collate_studies"]


class StudyDataset(ReportDataset):
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
        super().__init__(entries)
        self.image_root, self.transform = image_root, transform
        self.labels, self.report_key, self.max_views = labels, report_key, max_views
        self.domain, self.language = domain, language

    def reports(self) -> list[str]:
        return [entry[self.report_key] for entry in self.entries]

    def _views(self, entry: dict[str, Any]) -> tuple[list[str], list[str]]:
        """The image paths fed to the model and their view names."""
        paths = entry["image_path"][: self.max_views]
        return paths, list(entry.get("views") or ["frontal", "lateral"][: len(paths)])[: len(paths)]

    def pictures(self, index: int) -> list[tuple[str, Image.Image]]:
        """The views in the batch (the first ``max_views``), as stored (no resize or normalisation), by view name."""
        paths, views = self._views(self.entries[index])
        return [(view, load_image(self.image_root / p)) for p, view in zip(paths, views, strict=True)]

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        paths, views = self._views(entry)
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


class R2GenDataModule(ReportDataModule):
    """Chest X-ray studies from an R2Gen ``annotation.json`` (IU-Xray, MIMIC-CXR, the phantom X-rays).

    Args:
        annotation_path: The ``annotation.json`` with ``train`` / ``val`` / ``test`` lists.
        image_root: Folder that ``image_path`` entries are relative to; default ``<annotation dir>/images``.
        labels_path: CSV with ``id`` + 14 CheXpert columns; default ``<annotation dir>/labels.csv`` when it exists.
        report_key: Entry key of the reference text (``report``, or ``findings`` / ``impression`` where present).
        max_views: Views per study fed to the model.
        views_path: A views file (``radiolm data views --out views.json``: ``{study id: [view name per image]}``)
            whose names replace the entries' ``views`` in ``ReportBatch.views``; it must name every study of every
            split (an error names the file and the missing ids).
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
        validate_on_test: Accept selection on test studies (see :class:`ReportDataModule`); off: a validation
            split that shares test studies is an error, and a split without validation studies skips validation.
        sections: The target is these sections (entry keys) in this order, each after its header, and studies
            lacking one are left out, counted and logged (:mod:`radiolm.data.targets`; CMRG-LLM §3.1:
            ``[impression, findings]``); it replaces ``report_key``'s text before cleaning. ``None``: ``report_key``.
        section_headers: Write the sections' headers (CMRG-LLM Fig. 3) when ``sections`` is set.
    """

    collate = staticmethod(collate_studies)

    def __init__(
        self,
        annotation_path: str,
        image_root: str | None = None,
        labels_path: str | None = None,
        report_key: str = "report",
        max_views: int = 2,
        views_path: str | None = None,
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
        validate_on_test: bool = False,
        sections: list[str] | None = None,
        section_headers: bool = True,
    ) -> None:
        self.annotation_path = Path(annotation_path)
        super().__init__(
            labels_path=labels_path or self.annotation_path.parent / "labels.csv",
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            image_transform=image_transform,
            domain=domain,
            language=language,
            skip_invalid=skip_invalid,
            bucketing=bucketing,
            bucket_batches=bucket_batches,
            bucket_seed=bucket_seed,
            validate_on_test=validate_on_test,
        )
        self.image_root = Path(image_root) if image_root else self.annotation_path.parent / "images"
        self.report_key, self.max_views = report_key, max_views
        self.sections, self.section_headers = (list(sections) if sections else None), section_headers
        if self.sections:
            check_sections(self.sections, language)
        self.views_path = Path(views_path) if views_path else None
        self.validate_images = validate_images
        self._checked: CheckedFiles | None = None

    @property
    def source(self) -> Path:
        return self.annotation_path

    def read_entries(self) -> tuple[Entries, list[Problem]]:
        entries, problems = read_annotation(self.annotation_path, self.report_key)
        if self.sections:
            args = (self.sections, self.language, self.section_headers, self.report_key, self.annotation_path)
            entries = keep_sectioned(entries, *args)
        return entries, problems

    def entry_check(self) -> Callable[[dict[str, Any]], str | None]:
        """An empty report, then (``validate_images``) each image used, decoded once (:class:`CheckedFiles`)."""
        checked = self._checked or CheckedFiles(None)

        def check(entry: dict[str, Any]) -> str | None:
            if not str(entry[self.report_key]).strip():
                return f"empty '{self.report_key}' (after cleaning); give it a report or remove the entry"
            if self.validate_images:
                for rel in entry["image_path"][: self.max_views]:
                    if (message := checked.check_image(self.image_root / rel)) is not None:
                        return message
            return None

        return check

    def load_entries(self) -> Entries:
        """The base class's read, prepare and check, recording the images that passed; then the views file."""
        self._checked = CheckedFiles(self.annotation_path.parent / ".radiolm-checked-images.json")
        try:
            entries = super().load_entries()
        finally:
            self._checked.save()  # also when raising: the files that passed need no second decode
            self._checked = None
        if self.views_path is not None:
            entries = apply_views(entries, self.views_path, self.max_views)
        return entries

    def make_dataset(self, split: str, entries: list[dict[str, Any]], labels: dict[str, list[int]]) -> StudyDataset:
        transform = build_image_transform(self.image_transform, train=split == "train")
        return StudyDataset(
            entries, self.image_root, transform, labels, self.report_key, self.max_views, self.domain, self.language
        )
