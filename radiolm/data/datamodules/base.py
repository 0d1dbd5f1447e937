"""The base of every DataModule: studies of a data set -> :class:`~radiolm.batch.ReportBatch` loaders.

:class:`ReportDataModule` owns what every data set shares: batch sizes, workers, the labels CSV, the validation of
every entry before the first step, and the loaders (with optional length bucketing). It assumes no on-disk format
and no modality: a subclass says where the studies come from and how one becomes a dataset item, through four hooks

* :meth:`~ReportDataModule.read_entries`: the entries of each split (dicts with an ``id``) and the problems found
  while reading;
* :meth:`~ReportDataModule.entry_check`: the per-entry check of ``setup`` (files exist and decode, ...);
* :meth:`~ReportDataModule.make_dataset`: one split's checked entries + the labels -> a :class:`ReportDataset`;
* :attr:`~ReportDataModule.collate`: items -> :class:`ReportBatch`;

and :attr:`~ReportDataModule.source`, the file named in errors. The X-ray modules read the R2Gen layout
(:mod:`radiolm.data.datamodules.r2gen`), the CT module the CTRG layout (:mod:`radiolm.data.datamodules.ctrg_chest`).

Text stays text here: tokenisation belongs to the method's prompt, so data never depends on a model. The CLI is in
subclass mode over this class: YAML names any subclass by ``class_path``, and the CLI sets ``image_transform`` from
the model (data without images ignores it).

Validation (docs/data_validation.md): a problem stops the run with an error naming the file, the entries and the
data files; ``skip_invalid: true`` drops those entries instead, logs how many and which, and writes the list to
``<run folder>/invalid-entries.json`` (``<source stem>.invalid-entries.json`` next to the source without a run).
``bucketing: true`` batches training reports of similar length (:mod:`radiolm.data.datamodules.sampler`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, RandomSampler

from radiolm.batch import ReportBatch
from radiolm.data.datamodules.sampler import BucketBatchSampler, report_lengths
from radiolm.data.formats.annotation import SPLITS
from radiolm.data.formats.labels_csv import load_labels_csv
from radiolm.data.formats.validation import Problem, check_entries, write_problems
from radiolm.data.transforms import ImageTransformConfig
from radiolm.errors import DataError

__all__ = ["Entries", "ReportDataModule", "ReportDataset"]

log = logging.getLogger(__name__)

Entries = dict[str, list[dict[str, Any]]]
"""Split name (``train`` / ``val`` / ``test``) -> the entries of that split, each a dict with an ``id``."""


class ReportDataset(Dataset):
    """One split's studies: ``entries`` (dicts with an ``id``) and one item per entry.

    Args:
        entries: The checked entries of the split.
    """

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries
        self._index: dict[str, int] | None = None  # study id -> index, built on first use

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        raise NotImplementedError

    def reports(self) -> list[str]:
        """The reference text of every entry, in order (the lengths that bucketing sorts by)."""
        raise NotImplementedError

    def index_of(self, study_id: str) -> int | None:
        """The index of the entry whose ``id`` is ``study_id``; ``None`` when the split has no such study."""
        if self._index is None or len(self._index) != len(self.entries):
            self._index = {str(entry["id"]): i for i, entry in enumerate(self.entries)}
        return self._index.get(str(study_id))

    def pictures(self, index: int) -> list[tuple[str, Image.Image]]:
        """What a person looks at for entry ``index``: ``(caption, 8-bit image)`` pairs read from the files, before
        any model transform (X-ray views, CT slices), for sample pages. None by default (a data set without images).
        """
        return []


class ReportDataModule(pl.LightningDataModule):
    """Studies of one data set as training / validation / test loaders of :class:`ReportBatch`.

    Args:
        labels_path: CSV with ``id`` + 14 CheXpert columns; when it does not exist, labels are -1 (unknown) and a
            warning says so, except for Chinese studies (``language: zh``): the English labeler cannot read them,
            so their labels can only come from this file and its absence is an error (CMRG-LLM §3.1). Subclasses
            default it to the ``labels.csv`` of their layout.
        batch_size: Training batch size per device.
        eval_batch_size: Validation / test batch size (generation); default ``batch_size``.
        num_workers: DataLoader workers (persistent when > 0); also the threads of the entry checks.
        image_transform: Size and normalisation of the encoder; set by the CLI from the model (volumes ignore it).
        domain: Domain tag of the studies (``cxr``, ``ct``).
        language: Report language of the studies (``en``, ``zh``).
        skip_invalid: Drop invalid entries (counted, logged, listed in ``invalid-entries.json``) instead of
            stopping with an error.
        bucketing: Training batches of reports of similar length (:class:`BucketBatchSampler`), for less padding.
        bucket_batches: Batches per length bucket (larger mixes more, smaller pads less).
        bucket_seed: Seed of the bucketing shuffles (epoch ``e`` uses ``bucket_seed + e``).
        validate_on_test: Accept selection on test studies: a validation split that shares studies with the test
            split, or, for a split without validation studies (Dia-LLaMA's 80/20), validation on the test split.
            Off (default): the first is an error and the second skips validation, so ``fit`` tests the last
            weights (what Dia-LLaMA's code does, §3.2) and no checkpoint or early stop has seen a test study.
    """

    collate: Callable[[list[dict[str, Any]]], ReportBatch]
    """Items -> :class:`ReportBatch`; a plain function (``staticmethod``), so loader workers need not pickle the
    module."""

    def __init__(
        self,
        labels_path: str | Path | None = None,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        image_transform: ImageTransformConfig | None = None,
        domain: str = "cxr",
        language: str = "en",
        skip_invalid: bool = False,
        bucketing: bool = False,
        bucket_batches: int = 10,
        bucket_seed: int = 0,
        validate_on_test: bool = False,
    ) -> None:
        super().__init__()
        self.validate_on_test = validate_on_test
        self.labels_path = Path(labels_path) if labels_path else None
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers = num_workers
        self.image_transform = image_transform or ImageTransformConfig()
        self.domain, self.language = domain, language
        self.skip_invalid = skip_invalid
        self.bucketing, self.bucket_batches, self.bucket_seed = bucketing, bucket_batches, bucket_seed
        self.datasets: dict[str, ReportDataset] = {}
        self.problems: list[Problem] = []

    # -- what a subclass says ---------------------------------------------------------------------------------------
    @property
    def source(self) -> Path:
        """The file the entries come from, named in every validation error (``annotation.json``, ``reports.csv``)."""
        raise NotImplementedError

    def read_entries(self) -> tuple[Entries, list[Problem]]:
        """The entries of every split, and the problems of entries already left out while reading."""
        raise NotImplementedError

    def prepare_entries(self, entries: Entries) -> Entries:
        """Change the entries after reading and before the checks (report cleaning, split-wide checks)."""
        return entries

    def entry_check(self) -> Callable[[dict[str, Any]], str | None]:
        """The per-entry check of ``setup``: entry -> ``None`` when valid, else one line naming the file."""
        return lambda entry: None

    def make_dataset(self, split: str, entries: list[dict[str, Any]], labels: dict[str, list[int]]) -> ReportDataset:
        """The dataset of one split from its checked entries and the labels (study id -> 14 values)."""
        raise NotImplementedError

    # -- set-up -----------------------------------------------------------------------------------------------------
    def load_entries(self) -> Entries:
        """Read, prepare and check the entries; keep ``self.problems``; write them to the run folder."""
        entries, known = self.read_entries()
        entries = self.prepare_entries(entries)
        entries, self.problems = check_entries(
            entries,
            self.entry_check(),
            source=self.source,
            skip_invalid=self.skip_invalid,
            known=known,
            workers=max(1, self.num_workers),
        )
        if self.problems:
            self._write_problems()
        return entries

    def load_labels(self) -> dict[str, list[int]]:
        """Study id -> 14 CheXpert values from ``labels_path``; ``{}`` (a warning) when there is no such file, an
        error for Chinese studies (the English labeler cannot read them: their labels come from this file only)."""
        if str(self.language).lower().startswith("zh") and not (self.labels_path and self.labels_path.is_file()):
            raise DataError(
                f"{self.labels_path or 'data.init_args.labels_path'}: missing; the studies are Chinese (language: "
                f"{self.language}) and the English CheXpert labeler cannot read them, so their labels must come from "
                "this file: write it (id + the 14 CheXpert columns) or set data.init_args.labels_path to it"
            )
        labels = load_labels_csv(self.labels_path) if self.labels_path and self.labels_path.is_file() else {}
        if not labels:
            log.warning("radiolm: no labels file at %s; CheXpert labels are -1 (unknown)", self.labels_path)
        return labels

    def make_datasets(self, entries: Entries, labels: dict[str, list[int]]) -> dict[str, ReportDataset]:
        """One dataset per split (:meth:`make_dataset`)."""
        return {split: self.make_dataset(split, entries[split], labels) for split in SPLITS}

    def _write_problems(self) -> None:
        """``invalid-entries.json`` in the run folder (``trainer.log_dir``), else next to the source."""
        trainer = getattr(self, "trainer", None)
        log_dir = trainer.log_dir if trainer is not None else None  # a collective: every rank calls it
        if trainer is not None and not trainer.is_global_zero:
            return
        target = Path(log_dir) if log_dir else self.source.parent
        name = "invalid-entries.json" if log_dir else f"{self.source.stem}.invalid-entries.json"
        try:
            path = write_problems(target / name, self.problems)
            log.warning("radiolm: the %d dropped entries are listed in %s", len(self.problems), path)
        except OSError as e:  # a read-only data folder: the warning of check_entries has the ids already
            log.warning("radiolm: could not write the dropped entries to %s (%s)", target / name, e)

    def hold_out_test(self, entries: Entries) -> Entries:
        """Entries whose validation split holds no test study (see ``validate_on_test``).

        Raises:
            DataError: a validation study is also a test study and ``validate_on_test`` is off.
        """
        val, test = {e["id"] for e in entries["val"]}, {e["id"] for e in entries["test"]}
        shared = sorted(val & test)
        if self.validate_on_test:
            if not val and test:
                log.warning("radiolm: no validation studies; validating on the test split (validate_on_test)")
                return {**entries, "val": entries["test"]}
            if shared:
                log.warning("radiolm: %d validation studies are test studies (validate_on_test)", len(shared))
            return entries
        if shared:
            raise DataError(
                f"{self.source}: {len(shared)} of the {len(val)} validation studies are test studies ({shared[:3]}"
                f"{' ...' if len(shared) > 3 else ''}): checkpoint selection would see the test set. Give a "
                "validation split without test studies, or set data.init_args.validate_on_test: true to accept it "
                "(the test scores are then not held out)"
            )
        if not val and entries["train"]:
            log.info(
                "radiolm: %s: no validation studies: validation is skipped, fit tests the last weights", self.source
            )
        return entries

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        entries = self.hold_out_test(self.load_entries())
        self.datasets = self.make_datasets(entries, self.load_labels())
        log.info("radiolm: %s studies %s", self.source, {s: len(d) for s, d in self.datasets.items()})

    # -- loaders ----------------------------------------------------------------------------------------------------
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.datasets[split]
        if split == "train" and self.bucketing:
            sampler = BucketBatchSampler(
                RandomSampler(dataset, generator=torch.Generator().manual_seed(self.bucket_seed)),
                self.batch_size,
                lengths=report_lengths(dataset.reports()),
                batches_per_bucket=self.bucket_batches,
                seed=self.bucket_seed,
            )
            return DataLoader(
                dataset,
                batch_sampler=sampler,
                num_workers=self.num_workers,
                persistent_workers=self.num_workers > 0,
                collate_fn=self.collate,
            )
        return DataLoader(
            dataset,
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=self.collate,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
