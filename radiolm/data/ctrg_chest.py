"""CTRG-Chest-548K (and the phantom CT): the on-disk layout, seeded splits, the DataModules and the builder.

The layout (``docs/data_ctrg_chest.md``), written by ``radiolm data prepare ctrg-chest`` and by
:func:`~radiolm.data.phantom_ct.generate_ct`::

    ROOT/volumes/<id>.nii.gz     (or <id>.nii, <id>.npz, <id>.npy, or a folder <id>/ of slice images)
    ROOT/reports.csv             id, finding, impression          (Chinese: finding_zh, impression_zh)
    ROOT/labels.csv              id + the 14 CheXpert columns (optional; made later with `radiolm label`)
    ROOT/splits/<scheme>-seed<S>.json   {"scheme", "seed", "train": [ids], "val": [...], "test": [...]}

A split file is made once from the scheme and seed and reused by every later run (so all runs of a table share
it); schemes: ``dia_llama`` = random 80 % train / 20 % test (Dia-LLaMA §3.1, following the data set's paper; there
is no validation split, so validation runs on the test split) and ``cmrg`` = random 7:1:2 (CMRG-LLM §3.1).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from radiolm.batch import ReportBatch
from radiolm.data.annotation import SPLITS, load_labels_csv
from radiolm.data.datamodule import ReportDataModule
from radiolm.data.labels import CHEXPERT_14
from radiolm.data.transforms import ImageTransformConfig
from radiolm.data.validation import check_entries
from radiolm.data.volume_transforms import VolumeTransform, volume_preset
from radiolm.data.volumes import check_volume_file, find_volume, read_volume
from radiolm.errors import DataError

__all__ = [
    "SPLIT_SCHEMES",
    "CTRGChestDataModule",
    "PhantomCTDataModule",
    "VolumeStudyDataset",
    "collate_volumes",
    "load_split",
    "make_split",
    "prepare_ctrg",
    "read_reports_csv",
    "report_columns",
    "split_file",
    "write_split",
]

log = logging.getLogger(__name__)

SPLIT_SCHEMES: dict[str, tuple[float, float, float]] = {
    "dia_llama": (0.8, 0.0, 0.2),  # Dia-LLaMA §3.1: "randomly selected 80% ... for training and 20% for testing"
    "cmrg": (0.7, 0.1, 0.2),  # CMRG-LLM §3.1: "a random 7:1:2 split"
}


def report_columns(language: str) -> tuple[str, str]:
    """The ``(finding, impression)`` columns of ``reports.csv`` for ``language`` (``en`` or ``zh``)."""
    if language not in ("en", "zh"):
        raise ValueError(f"report language {language!r}: use 'en' or 'zh'")
    return ("finding", "impression") if language == "en" else ("finding_zh", "impression_zh")


def split_file(root: str | Path, scheme: str, seed: int) -> Path:
    """Where the split of ``scheme`` and ``seed`` lives under ``root``."""
    return Path(root) / "splits" / f"{scheme}-seed{seed}.json"


def make_split(ids: list[str], scheme: str, seed: int) -> dict[str, list[str]]:
    """A random split of ``ids`` by the fractions of ``scheme``: the sorted ids shuffled by ``seed``, then cut.

    Split sizes are rounded; val and test get at least one study when their fraction is positive and there are
    at least three studies. Each list is sorted.
    """
    if scheme not in SPLIT_SCHEMES:
        raise ValueError(f"unknown split scheme {scheme!r}; choose one of {sorted(SPLIT_SCHEMES)}")
    fractions = SPLIT_SCHEMES[scheme]
    order = [sorted(ids)[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    n = len(order)
    n_val, n_test = (round(n * f) for f in fractions[1:])
    if n >= 3:
        n_val, n_test = (max(k, 1) if f > 0 else k for k, f in zip((n_val, n_test), fractions[1:], strict=True))
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}


def write_split(path: Path, splits: dict[str, list[str]], scheme: str, seed: int) -> Path:
    """Write a split file atomically (every rank may write the same content)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"scheme": scheme, "seed": seed, **splits}, indent=1) + "\n")
    os.replace(temporary, path)
    return path


def load_split(path: Path, ids: set[str]) -> dict[str, list[str]]:
    """Read a split file and check that it partitions exactly ``ids`` (the studies of ``reports.csv``).

    Raises:
        DataError: naming the file when it is not JSON, lacks a split, repeats a study, or does not match ``ids``.
    """
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: split file is not JSON ({e}); delete it and a new one is made.") from None
    missing = [s for s in SPLITS if not isinstance(data.get(s), list)]
    if missing:
        raise DataError(f"{path}: split file lacks {missing}; delete it and a new one is made.")
    listed = [str(i) for s in SPLITS for i in data[s]]
    repeated = sorted({i for i in listed if listed.count(i) > 1})
    unknown, unlisted = sorted(set(listed) - ids), sorted(ids - set(listed))
    for what, bad in (("in more than one split", repeated), ("not in reports.csv", unknown), ("unlisted", unlisted)):
        if bad:
            raise DataError(
                f"{path}: {len(bad)} studies {what} (e.g. {bad[:3]}); the split file belongs to other data. "
                "Delete it to make a new split, or set split_path to the right file."
            )
    return {s: [str(i) for i in data[s]] for s in SPLITS}


def read_reports_csv(path: Path, language: str) -> dict[str, dict[str, str]]:
    """``id -> {"finding", "impression"}`` from a CTRG ``reports.csv`` in ``language``.

    Raises:
        DataError: naming the file for a missing file or column, or a repeated id.
    """
    if not path.is_file():
        raise DataError(f"{path}: reports file not found. Build it with `radiolm data prepare ctrg-chest` or fix it.")
    columns = report_columns(language)
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        absent = [c for c in ("id", *columns) if c not in (reader.fieldnames or [])]
        if absent:
            raise DataError(
                f"{path}: column(s) {absent} missing; language '{language}' reads id, {', '.join(columns)}."
            )
        reports: dict[str, dict[str, str]] = {}
        for row in reader:
            study = row["id"].strip()
            if study in reports:
                raise DataError(f"{path}:{reader.line_num}: duplicate id {study!r}; ids must be unique.")
            reports[study] = {"finding": row[columns[0]] or "", "impression": row[columns[1]] or ""}
    return reports


class VolumeStudyDataset(Dataset):
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
        self.entries, self.transform, self.labels = entries, transform, labels
        self.domain, self.language = domain, language

    def __len__(self) -> int:
        return len(self.entries)

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
        split: split scheme, ``dia_llama`` (80/20) or ``cmrg`` (7:1:2).
        split_seed: seed of the random split.
        split_path: split file; default ``<root>/splits/<split>-seed<split_seed>.json``, made on first use.
        language: ``en`` reads ``finding, impression``; ``zh`` reads ``finding_zh, impression_zh``.
        report_key: the target text: ``finding`` (default, as Dia-LLaMA), ``impression``, or ``report`` (finding
            then impression, as CMRG-LLM §3.1 "predict both sections").
        preset: volume preset (:data:`~radiolm.data.volume_transforms.VOLUME_PRESETS`): ``dia_llama``,
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
    """

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
    ) -> None:
        self.root = Path(root)
        reports = Path(reports_path) if reports_path else self.root / "reports.csv"
        super().__init__(
            annotation_path=str(reports),
            labels_path=labels_path or str(self.root / "labels.csv"),
            report_key=report_key,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            image_transform=image_transform,
            domain=domain,
            language=language,
            skip_invalid=skip_invalid,
        )
        report_columns(language)  # a bad language fails here, not in setup
        if split not in SPLIT_SCHEMES:
            raise ValueError(f"split {split!r}: choose one of {sorted(SPLIT_SCHEMES)}")
        if report_key not in ("finding", "impression", "report"):
            raise ValueError(f"report_key {report_key!r}: use 'finding', 'impression' or 'report'")
        self.volumes_dir = Path(volumes_dir) if volumes_dir else self.root / "volumes"
        self.split, self.split_seed = split, split_seed
        self.split_path = Path(split_path) if split_path else split_file(self.root, split, split_seed)
        self.volume_config = volume_preset(preset, volume_size, intensity, hu_window)
        self.validate_volumes = validate_volumes
        self.volume_datasets: dict[str, VolumeStudyDataset] = {}

    def prepare_data(self) -> None:
        """Make the split file once (rank zero) when it does not exist."""
        if not self.split_path.is_file():
            ids = sorted(read_reports_csv(self.annotation_path, self.language))
            write_split(self.split_path, make_split(ids, self.split, self.split_seed), self.split, self.split_seed)
            log.info("radiolm: wrote the %s split (seed %d) to %s", self.split, self.split_seed, self.split_path)

    def _text(self, report: dict[str, str]) -> str:
        if self.report_key != "report":
            return report[self.report_key].strip()
        separator = "" if self.language == "zh" else " "
        return separator.join(part.strip() for part in (report["finding"], report["impression"]) if part.strip())

    def _check(self, entry: dict[str, Any]) -> str | None:
        if not entry["report"]:
            return f"{self.annotation_path}: empty '{self.report_key}' for this study; fill it in or remove the study"
        return check_volume_file(entry["path"]) if self.validate_volumes else None

    def setup(self, stage: str | None = None) -> None:
        if self.volume_datasets:
            return
        reports = read_reports_csv(self.annotation_path, self.language)
        if not self.split_path.is_file():
            self.prepare_data()
        splits = load_split(self.split_path, set(reports))
        entries = {
            split: [
                {"id": study, "path": find_volume(self.volumes_dir, study), "report": self._text(reports[study])}
                for study in ids
            ]
            for split, ids in splits.items()
        }
        entries, self.problems = check_entries(
            entries,
            self._check,
            source=self.annotation_path,
            skip_invalid=self.skip_invalid,
            workers=max(1, self.num_workers),
        )
        if self.problems:
            self._write_problems()
        labels = load_labels_csv(self.labels_path) if self.labels_path.is_file() else {}
        if not labels:
            log.warning("radiolm: no labels file at %s; CheXpert labels are -1 (unknown)", self.labels_path)
        transform = VolumeTransform(self.volume_config)
        for split in SPLITS:
            dataset = VolumeStudyDataset(entries[split], transform, labels, self.domain, self.language)
            self.volume_datasets[split] = dataset
        if not entries["val"] and entries["test"]:
            log.warning("radiolm: split '%s' has no validation studies; validation runs on the test split", self.split)
            self.volume_datasets["val"] = self.volume_datasets["test"]
        log.info("radiolm: %s studies %s", self.root, {s: len(d) for s, d in self.volume_datasets.items()})

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.volume_datasets[split],
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate_volumes,
        )  # the base class's train/val/test/predict_dataloader call this


class PhantomCTDataModule(CTRGChestDataModule):
    """The phantom chest CT (:mod:`radiolm.data.phantom_ct`), built into ``root`` on first use.

    ``prepare_data`` writes the data set when it is absent or was made with other settings (the files are those of
    ``radiolm data phantom --kind ct --out ROOT --n N --seed S --size D H W --language L``).

    Args:
        root: folder of the generated data set.
        n: number of studies.
        seed: generator seed (also the default split seed).
        size: volume grid ``[D, H, W]`` written to disk.
        volume_size: model input ``[D, H, W]``; default ``size`` (the preset's intensity mapping, no resize).
        split_seed: seed of the split; default ``seed``.
        **kwargs: :class:`CTRGChestDataModule` arguments.
    """

    def __init__(
        self,
        root: str = "data/phantom-ct",
        n: int = 200,
        seed: int = 0,
        size: list[int] | None = None,
        volume_size: list[int] | None = None,
        split_seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        size = list(size or [32, 64, 64])
        volume_size = list(volume_size or size)
        split_seed = seed if split_seed is None else split_seed
        super().__init__(root=root, volume_size=volume_size, split_seed=split_seed, **kwargs)
        self.n, self.seed, self.size = n, seed, size
        self.settings = {"n": n, "seed": seed, "size": size, "language": self.language}

    def prepare_data(self) -> None:
        meta_path = self.root / "phantom.json"
        if meta_path.is_file() and self.annotation_path.is_file():
            made = json.loads(meta_path.read_text())
            if all(made.get(k) == v for k, v in self.settings.items()):
                return super().prepare_data()
            log.warning("radiolm: %s was made with %s; regenerating with %s", self.root, made, self.settings)
        from radiolm.data.phantom_ct import generate_ct

        generate_ct(self.root, n=self.n, seed=self.seed, size=self.size, language=self.language, split=self.split)
        meta_path.write_text(json.dumps(self.settings))
        super().prepare_data()


def prepare_ctrg(
    volumes: Path,
    reports: Path,
    out: Path,
    labels: Path | None = None,
    language: str = "en",
    split: str = "dia_llama",
    seed: int = 0,
    spacing: tuple[float, float, float] | None = None,
    skip_invalid: bool = False,
) -> dict[str, Any]:
    """Build the CTRG layout under ``out`` from a download: one NIfTI per study, reports, labels, a split file.

    Each study ``id`` of ``reports`` (columns ``id, finding, impression``, in ``language``) needs a volume under
    ``volumes``: a folder ``<id>/`` of slice images (the CTRG-Chest-548K release), converted to
    ``volumes/<id>.nii.gz``; a NIfTI, copied; or ``.npy`` / ``.npz``, converted. Slice images and ``.npy`` carry no
    spacing: ``spacing`` (mm, ``(d, h, w)``) is written into their NIfTI header, 1 mm when not given (a warning).

    Raises:
        DataError: naming the file for a bad reports or labels CSV, or listing the studies whose volume is missing
            or unreadable (unless ``skip_invalid``, which leaves them out and lists them in
            ``out/invalid-entries.json``).
    """
    import shutil

    from radiolm.data.validation import write_problems
    from radiolm.data.volumes import write_nifti

    rows = read_reports_csv(_as_language_csv(reports, language, out), language)
    entries = [{"id": study, "path": find_volume(volumes, study)} for study in rows]

    def check(entry: dict[str, Any]) -> str | None:
        return check_volume_file(entry["path"])

    kept, problems = check_entries({"all": entries}, check, source=reports, skip_invalid=skip_invalid)
    if problems:
        write_problems(out / "invalid-entries.json", problems)
    (out / "volumes").mkdir(parents=True, exist_ok=True)
    if spacing is None and any(e["path"].is_dir() or e["path"].suffix == ".npy" for e in kept["all"]):
        log.warning("radiolm: no --spacing for slice folders / .npy volumes; their NIfTI headers say 1 x 1 x 1 mm")
    for entry in tqdm(kept["all"], desc="ctrg-chest", unit="study"):
        source: Path = entry["path"]
        name = source.name.lower()
        if source.is_file() and (name.endswith(".nii.gz") or name.endswith(".nii")):
            shutil.copy2(source, out / "volumes" / f"{entry['id']}{'.nii.gz' if name.endswith('.gz') else '.nii'}")
            continue
        volume = read_volume(source)
        array = volume.array
        if np.array_equal(array, np.round(array)) and array.min() >= -32768 and array.max() <= 32767:
            array = array.astype(np.int16)
        write_nifti(out / "volumes" / f"{entry['id']}.nii.gz", array, volume.spacing or spacing or (1.0, 1.0, 1.0))
    ids = [e["id"] for e in kept["all"]]
    columns = report_columns(language)
    with (out / "reports.csv").open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["id", *columns])
        writer.writerows([study, rows[study]["finding"], rows[study]["impression"]] for study in ids)
    if labels is not None:
        table = load_labels_csv(labels)
        with (out / "labels.csv").open("w", newline="") as file:
            writer = csv.writer(file, lineterminator="\n")
            writer.writerow(["id", *CHEXPERT_14])
            writer.writerows([study, *table[study]] for study in ids if study in table)
    splits = make_split(ids, split, seed)
    path = write_split(split_file(out, split, seed), splits, split, seed)
    return {
        "out": str(out),
        "studies": len(ids),
        "left_out": len(problems),
        "split_file": str(path),
        "split": {name: len(members) for name, members in splits.items()},
        "labels": sum(1 for _ in open(out / "labels.csv")) - 1 if labels is not None else 0,
    }


def _as_language_csv(reports: Path, language: str, out: Path) -> Path:
    """The reports CSV as it reads in ``language``: a Chinese download keeps ``finding, impression`` headers, so it
    is re-headed to ``finding_zh, impression_zh`` in a copy under ``out``."""
    if language == "en" or not reports.is_file():
        return reports
    text = reports.read_text(encoding="utf-8-sig").splitlines()
    header = next(csv.reader([text[0]])) if text else []
    if "finding_zh" in header or "finding" not in header:
        return reports
    renamed = [{"finding": "finding_zh", "impression": "impression_zh"}.get(c, c) for c in header]
    out.mkdir(parents=True, exist_ok=True)
    copy = out / "reports.source.csv"
    with copy.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file, lineterminator="\n").writerow(renamed)
        file.write("\n".join(text[1:]) + "\n")
    return copy


def prepare_command(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="radiolm data prepare ctrg-chest",
        description="Build the CTRG-Chest layout (docs/data_ctrg_chest.md) from the official download.",
    )
    parser.add_argument("--volumes", required=True, type=Path, help="folder of per-study slice folders or volumes")
    parser.add_argument("--reports", required=True, type=Path, help="CSV with id, finding, impression")
    parser.add_argument("--labels", type=Path, help="CSV with id + the 14 CheXpert columns (optional)")
    parser.add_argument("--language", choices=["en", "zh"], default="en", help="language of the reports CSV")
    parser.add_argument("--split", choices=sorted(SPLIT_SCHEMES), default="dia_llama")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random split")
    parser.add_argument("--spacing", type=float, nargs=3, metavar=("D", "H", "W"), help="mm, for slice folders")
    parser.add_argument("--skip-invalid", action="store_true", help="leave out studies without a readable volume")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    summary = prepare_ctrg(
        args.volumes, args.reports, args.out, labels=args.labels, language=args.language, split=args.split,
        seed=args.seed, spacing=tuple(args.spacing) if args.spacing else None, skip_invalid=args.skip_invalid,
    )  # fmt: skip
    print(json.dumps(summary, indent=2))
