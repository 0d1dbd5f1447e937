"""Chest CT studies in the CTRG layout -> :class:`ReportBatch` with ``volumes``.

Reads CTRG-Chest-548K after ``radiolm data prepare ctrg-chest`` and the phantom CT alike: ``reports.csv``, the
volumes and a seeded split file (:mod:`radiolm.data.formats.ctrg`, ``docs/data_ctrg_chest.md``), each volume read
by :mod:`radiolm.data.formats.volumes` and transformed by a preset of
:mod:`radiolm.data.datamodules.volume_transforms`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from radiolm.batch import ReportBatch
from radiolm.data.datamodules.base import Entries, ReportDataModule, ReportDataset
from radiolm.data.datamodules.volume_transforms import VolumeTransform, volume_preset
from radiolm.data.formats.ctrg import (
    SPLIT_SCHEMES,
    load_split,
    make_split,
    read_reports_csv,
    report_columns,
    split_file,
    write_split,
)
from radiolm.data.formats.validation import Problem
from radiolm.data.formats.volumes import check_volume_file, find_volume, read_volume
from radiolm.data.labels import CHEXPERT_14
from radiolm.data.targets import check_sections, keep_sectioned
from radiolm.data.transforms import ImageTransformConfig

__all__ = ["CTRGChestDataModule", "VolumeStudyDataset", "collate_volumes"]

log = logging.getLogger(__name__)


class VolumeStudyDataset(ReportDataset):
    """One item per CT study: the transformed volume, the report and its labels.

    Args:
        entries: ``{"id", "path", "report"}`` per study.
        transform: :class:`VolumeTransform` of the preset.
        labels: study id -> 14 CheXpert values (missing: -1 everywhere).
        domain: domain tag of every study.
        language: report language of every study.
    """

    def __init__(
        self,
        entries: list[dict[str, Any]],
        transform: VolumeTransform,
        labels: dict[str, list[int]],
        domain: str = "ct",
        language: str = "en",
    ) -> None:
        super().__init__(entries)
        self.transform, self.labels = transform, labels
        self.domain, self.language = domain, language

    display_slices = 4
    """Axial slices per study on sample pages (:meth:`pictures`)."""

    def reports(self) -> list[str]:
        return [entry["report"] for entry in self.entries]

    def pictures(self, index: int) -> list[tuple[str, Image.Image]]:
        """:attr:`display_slices` axial slices at even depths of the volume as stored (no resize), with the
        intensity mapping of the model's input (the preset's HU window, else per-volume min-max), as 8-bit
        images captioned ``axial k/D``."""
        array = read_volume(self.entries[index]["path"]).array
        config = self.transform.config
        low, high = config.window if config.intensity == "hu_window" else (float(array.min()), float(array.max()))
        scaled = np.clip((array - low) / max(high - low, 1e-6), 0.0, 1.0)
        depth, n = array.shape[0], self.display_slices
        picks = sorted({min(depth - 1, round((k + 1) * depth / (n + 1))) for k in range(n)})
        return [(f"axial {z + 1}/{depth}", Image.fromarray(np.uint8(scaled[z] * 255))) for z in picks]

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        volume = self.transform(read_volume(entry["path"]), source=str(entry["path"]))
        return {
            "id": entry["id"],
            "report": entry["report"],
            "volume": volume,  # [1, D, H, W]
            "labels": torch.tensor(self.labels.get(entry["id"], [-1] * len(CHEXPERT_14)), dtype=torch.long),
            "domain": self.domain,
            "language": self.language,
        }


def collate_volumes(items: list[dict[str, Any]]) -> ReportBatch:
    """Stack CT studies into a :class:`ReportBatch` with ``volumes [B, 1, D, H, W]`` and no images."""
    return ReportBatch(
        ids=[item["id"] for item in items],
        reports=[item["report"] for item in items],
        labels=torch.stack([item["labels"] for item in items]),
        volumes=torch.stack([item["volume"] for item in items]),
        domain=[item["domain"] for item in items],
        language=[item["language"] for item in items],
    )


class CTRGChestDataModule(ReportDataModule):
    """Chest CT studies in the CTRG layout (CTRG-Chest-548K after ``prepare``, or the phantom CT).

    Args:
        root: data set folder (``volumes/``, ``reports.csv``, ``labels.csv``, ``splits/``).
        volumes_dir: default ``<root>/volumes``.
        reports_path: default ``<root>/reports.csv``.
        labels_path: default ``<root>/labels.csv`` (when absent, labels are -1 and a warning says so).
        split: split scheme, ``dia_llama`` (80/20, no validation: see ``validate_on_test``) or ``cmrg`` (7:1:2).
        split_seed: seed of the random split.
        split_path: split file; default ``<root>/splits/<split>-seed<split_seed>.json``, made on first use. A
            folder instead holds Dia-LLaMA's official split, ``CTRG_{train,val,test}.csv`` (its repository's
            ``src/Dataset/my_data_csv/``; :func:`~radiolm.data.formats.ctrg.read_split_csvs`), which replaces
            ``split`` and ``split_seed``; its validation part is a real one (no test study), so validation runs on it.
        language: ``en`` reads ``finding, impression``; ``zh`` reads ``finding_zh, impression_zh``.
        report_key: the target text: ``finding`` (default, as Dia-LLaMA), ``impression``, or ``report`` (finding
            then impression, as CMRG-LLM §3.1 "predict both sections").
        preset: volume preset (:data:`~radiolm.data.datamodules.volume_transforms.VOLUME_PRESETS`): ``dia_llama``,
            ``dia_llama_hu``, ``cmrg``.
        volume_size: output ``[D, H, W]`` instead of the preset's (a small one for the CPU).
        intensity: ``minmax`` or ``hu_window`` instead of the preset's.
        hu_window: ``[low, high]`` HU instead of [-1000, 200].
        validate_volumes: read every volume once in ``setup`` (missing, corrupt or truncated, wrong rank, NaNs).
        skip_invalid: drop invalid studies (counted, logged, listed in ``invalid-entries.json`` in the run folder)
            instead of stopping.
        batch_size: training batch size per device.
        eval_batch_size: validation / test batch size; default ``batch_size``.
        num_workers: DataLoader workers (persistent when > 0).
        image_transform: set by the CLI from the model; volumes ignore it.
        domain: domain tag of the studies.
        validate_on_test: validate (select checkpoints) on the test split when the split has none, or accept a
            validation split sharing test studies (see :class:`ReportDataModule`); off: validation is skipped.
        sections: The target is these sections (``impression``, ``findings``: the ``impression`` and ``finding``
            columns) in this order, each after its header, and studies lacking one are left out, counted and logged
            (:mod:`radiolm.data.targets`; CMRG-LLM §3.1: ``[impression, findings]``); ``report_key`` is then unused.
        section_headers: Write the sections' headers (CMRG-LLM Fig. 3) when ``sections`` is set.
    """

    collate = staticmethod(collate_volumes)

    def __init__(
        self,
        root: str = "data/ctrg_chest",
        volumes_dir: str | None = None,
        reports_path: str | None = None,
        labels_path: str | None = None,
        split: Literal["dia_llama", "cmrg"] = "dia_llama",
        split_seed: int = 0,
        split_path: str | None = None,
        language: Literal["en", "zh"] = "en",
        report_key: Literal["finding", "impression", "report"] = "finding",
        preset: str = "dia_llama",
        volume_size: list[int] | None = None,
        intensity: Literal["minmax", "hu_window"] | None = None,
        hu_window: list[float] | None = None,
        validate_volumes: bool = True,
        skip_invalid: bool = False,
        batch_size: int = 4,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        image_transform: ImageTransformConfig | None = None,
        domain: str = "ct",
        validate_on_test: bool = False,
        sections: list[str] | None = None,
        section_headers: bool = True,
    ) -> None:
        self.root = Path(root)
        super().__init__(
            labels_path=labels_path or self.root / "labels.csv",
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            image_transform=image_transform,
            domain=domain,
            language=language,
            skip_invalid=skip_invalid,
            validate_on_test=validate_on_test,
        )
        report_columns(language)  # a bad language fails here, not in setup
        if split not in SPLIT_SCHEMES:
            raise ValueError(f"split {split!r}: choose one of {sorted(SPLIT_SCHEMES)}")
        if report_key not in ("finding", "impression", "report"):
            raise ValueError(f"report_key {report_key!r}: use 'finding', 'impression' or 'report'")
        self.reports_path = Path(reports_path) if reports_path else self.root / "reports.csv"
        self.volumes_dir = Path(volumes_dir) if volumes_dir else self.root / "volumes"
        self.report_key = report_key
        self.sections, self.section_headers = (list(sections) if sections else None), section_headers
        if self.sections:
            check_sections(self.sections, language)
        self.split, self.split_seed = split, split_seed
        self.split_path = Path(split_path) if split_path else split_file(self.root, split, split_seed)
        self.volume_config = volume_preset(preset, volume_size, intensity, hu_window)
        self.validate_volumes = validate_volumes

    @property
    def source(self) -> Path:
        return self.reports_path

    def prepare_data(self) -> None:
        """Make the split file once (rank zero) when it does not exist (a folder of split CSVs is only read)."""
        if not self.split_path.exists():
            ids = sorted(read_reports_csv(self.reports_path, self.language))
            write_split(self.split_path, make_split(ids, self.split, self.split_seed), self.split, self.split_seed)
            log.info("radiolm: wrote the %s split (seed %d) to %s", self.split, self.split_seed, self.split_path)

    def _text(self, report: dict[str, str]) -> str:
        if self.report_key != "report":
            return report[self.report_key].strip()
        separator = "" if self.language == "zh" else " "
        return separator.join(part.strip() for part in (report["finding"], report["impression"]) if part.strip())

    def read_entries(self) -> tuple[Entries, list[Problem]]:
        """``{"id", "path", "report"}`` of every study of every split of the split file (made when missing)."""
        reports = read_reports_csv(self.reports_path, self.language)
        if not self.split_path.exists():
            self.prepare_data()
        splits = load_split(self.split_path, set(reports))
        texts = {study: self._text(report) for study, report in reports.items()}
        if self.sections:  # CMRG-LLM §3.1: the sections with their headers, only studies that have them all
            rows = {
                split: [
                    {"id": i, "findings": reports[i]["finding"], "impression": reports[i]["impression"]} for i in ids
                ]
                for split, ids in splits.items()
            }
            kept = keep_sectioned(rows, self.sections, self.language, self.section_headers, "report", self.reports_path)
            splits = {split: [e["id"] for e in es] for split, es in kept.items()}
            texts = {e["id"]: e["report"] for es in kept.values() for e in es}
        entries = {
            split: [
                {"id": study, "path": find_volume(self.volumes_dir, study), "report": texts[study]} for study in ids
            ]
            for split, ids in splits.items()
        }
        return entries, []

    def entry_check(self) -> Callable[[dict[str, Any]], str | None]:
        """An empty report, then (``validate_volumes``) the volume read completely."""

        def check(entry: dict[str, Any]) -> str | None:
            if not entry["report"]:
                return f"{self.reports_path}: empty '{self.report_key}' for this study; fill it in or remove the study"
            return check_volume_file(entry["path"]) if self.validate_volumes else None

        return check

    def make_dataset(
        self, split: str, entries: list[dict[str, Any]], labels: dict[str, list[int]]
    ) -> VolumeStudyDataset:
        return VolumeStudyDataset(entries, VolumeTransform(self.volume_config), labels, self.domain, self.language)
