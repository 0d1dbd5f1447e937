"""The labels CSV: ``id`` + the 14 CheXpert columns (1 positive, 0 negative, -1 uncertain, blank unknown).

Written by the builders, the phantom generators and ``radiolm label``; read by every DataModule.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

from radiolm.data.labels import CHEXPERT_14
from radiolm.errors import DataError

__all__ = ["load_labels_csv", "write_labels_csv"]


def load_labels_csv(path: str | Path) -> dict[str, list[int]]:
    """Read ``id`` + the 14 CheXpert columns; blank cells become -1 (unknown).

    Raises:
        DataError: naming the file when a column is missing.
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or [])
        absent = [c for c in ("id", *CHEXPERT_14) if c not in columns]
        if absent:
            raise DataError(f"{path}: columns {absent} missing; expected id + {list(CHEXPERT_14)}.")
        labels = {}
        for row in reader:
            labels[row["id"]] = [int(float(row[c])) if row[c].strip() else -1 for c in CHEXPERT_14]
    return labels


def write_labels_csv(path: Path, rows: Iterable[tuple[str, Sequence[int]]]) -> Path:
    """Write ``id`` + the 14 CheXpert columns, one ``(id, values)`` row per study (``\\n`` line ends)."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["id", *CHEXPERT_14])
        writer.writerows([study, *values] for study, values in rows)
    return path
