"""The CTRG-Chest layout on disk: ``reports.csv`` and the seeded split files.

The layout (``docs/data_ctrg_chest.md``), written by ``radiolm data prepare ctrg-chest`` and by the phantom CT
(:func:`radiolm.data.phantom.generate_ct`)::

    ROOT/volumes/<id>.nii.gz     (or <id>.nii, <id>.npz, <id>.npy, or a folder <id>/ of slice images)
    ROOT/reports.csv             id, finding, impression          (Chinese: finding_zh, impression_zh)
    ROOT/labels.csv              id + the 14 CheXpert columns (optional; made later with `radiolm label`)
    ROOT/splits/<scheme>-seed<S>.json   {"scheme", "seed", "train": [ids], "val": [...], "test": [...]}

Instead of a split file, ``split_path`` may name a folder holding Dia-LLaMA's official split, the CSVs its
repository shipped as ``src/Dataset/my_data_csv/CTRG_{train,val,test}.csv`` (columns ``id, image_path, impression,
finding``; only ``id`` is read: :data:`OFFICIAL_SPLIT_FILES`, :func:`read_split_csvs`).

Volumes are read by :mod:`radiolm.data.formats.volumes`, labels by :mod:`radiolm.data.formats.labels_csv`.
A split file is made once from the scheme and seed and reused by every later run (so all runs of a table share
it); schemes: ``dia_llama`` = random 80 % train / 20 % test (Dia-LLaMA §3.1, following the data set's paper; there
is no validation split, so there is no validation unless ``validate_on_test``) and ``cmrg`` = random 7:1:2 (CMRG-LLM
§3.1).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from radiolm.data.formats.annotation import SPLITS
from radiolm.errors import DataError

__all__ = [
    "OFFICIAL_SPLIT_FILES",
    "OFFICIAL_SPLIT_NAME",
    "SPLIT_SCHEMES",
    "load_split",
    "make_split",
    "read_reports_csv",
    "read_split_csvs",
    "report_columns",
    "split_file",
    "write_reports_csv",
    "write_split",
]

SPLIT_SCHEMES: dict[str, tuple[float, float, float]] = {
    "dia_llama": (0.8, 0.0, 0.2),  # Dia-LLaMA §3.1: "randomly selected 80% ... for training and 20% for testing"
    "cmrg": (0.7, 0.1, 0.2),  # CMRG-LLM §3.1: "a random 7:1:2 split"
}


# Dia-LLaMA's official split: the files of github.com/zhi-xuan-chen/Dia-LLaMA, src/Dataset/my_data_csv/ (added in
# its first commit fdfffe6, removed in 91fd200; 1,262 / 180 / 362 studies, no study in two files). Each row is
# ``id, image_path, impression, finding`` with ``image_path = ./Chest_new_1_volume/<id>.nii.gz``.
OFFICIAL_SPLIT_FILES = {"train": "CTRG_train.csv", "val": "CTRG_val.csv", "test": "CTRG_test.csv"}
OFFICIAL_SPLIT_NAME = "dia_llama_official"
"""The scheme name of that split; ``prepare --split-csv-dir`` writes it to ``splits/dia_llama_official.json``."""


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


def write_split(path: Path, splits: dict[str, list[str]], scheme: str, seed: int | None) -> Path:
    """Write a split file atomically (every rank may write the same content); ``seed`` ``None``: not random."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"scheme": scheme, "seed": seed, **splits}, indent=1) + "\n")
    os.replace(temporary, path)
    return path


def read_split_csvs(folder: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Dia-LLaMA's official split from ``folder``: the ``id`` column of each of :data:`OFFICIAL_SPLIT_FILES`.

    Returns:
        ``({"train": ids, "val": ids, "test": ids}, {id: "<file>:<line>"})``, the second saying where each id is.

    Raises:
        DataError: naming the file for a missing file or ``id`` column, an empty id, or an id listed twice (in one
            file or in two).
    """
    splits: dict[str, list[str]] = {}
    where: dict[str, str] = {}
    for split, name in OFFICIAL_SPLIT_FILES.items():
        path = folder / name
        if not path.is_file():
            raise DataError(
                f"{path}: split file not found; split_path names a folder of Dia-LLaMA's official split, which needs "
                f"{', '.join(OFFICIAL_SPLIT_FILES.values())} (its repository's src/Dataset/my_data_csv/)"
            )
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            if "id" not in (reader.fieldnames or []):
                raise DataError(f"{path}: no 'id' column (header {reader.fieldnames}); is this Dia-LLaMA's {name}?")
            splits[split] = []
            for row in reader:
                study, here = (row["id"] or "").strip(), f"{path}:{reader.line_num}"
                if not study:
                    raise DataError(f"{here}: empty id; every row of {name} names a study")
                if study in where:
                    raise DataError(f"{here}: id {study!r} is listed again (first at {where[study]}); a study belongs "
                                    "to one split: use the files as Dia-LLaMA's repository ships them")  # fmt: skip
                where[study] = here
                splits[split].append(study)
    return splits, where


def _load_split_csvs(folder: Path, ids: set[str]) -> dict[str, list[str]]:
    """:func:`read_split_csvs`, checked to partition exactly ``ids`` (the studies of ``reports.csv``)."""
    splits, where = read_split_csvs(folder)
    unknown = [study for split in SPLITS for study in splits[split] if study not in ids]
    if unknown:
        raise DataError(
            f"{where[unknown[0]]}: id {unknown[0]!r} is not a study of reports.csv ({len(unknown)} such ids, e.g. "
            f"{unknown[:3]}); the split belongs to other data, or reports.csv lacks these studies: rebuild it with "
            "`radiolm data prepare ctrg-chest` from the full download"
        )
    unlisted = sorted(ids - set(where))
    if unlisted:
        raise DataError(
            f"{folder}: {len(unlisted)} studies of reports.csv are in none of {list(OFFICIAL_SPLIT_FILES.values())} "
            f"(e.g. {unlisted[:3]}); Dia-LLaMA's split covers its 1,804 studies: remove the others from reports.csv "
            "or use a split file (split_path: *.json)"
        )
    return splits


def load_split(path: Path, ids: set[str]) -> dict[str, list[str]]:
    """Read a split file (or a folder of Dia-LLaMA's split CSVs) and check that it partitions exactly ``ids``
    (the studies of ``reports.csv``).

    Raises:
        DataError: naming the file when it is not JSON, lacks a split, repeats a study, or does not match ``ids``;
            for a folder, naming the CSV file and line of an id that is not in ``reports.csv``.
    """
    if path.is_dir():
        return _load_split_csvs(path, ids)
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


def write_reports_csv(path: Path, rows: Iterable[Sequence[str]], language: str) -> Path:
    """Write ``reports.csv``: the header ``id`` + the columns of ``language``, then one ``(id, finding,
    impression)`` row per study."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["id", *report_columns(language)])
        writer.writerows(rows)
    return path
