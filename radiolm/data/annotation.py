"""Reading R2Gen-format annotation files, label CSVs and images, with errors that name the file and entry.

The R2Gen on-disk format (Chen et al. 2020, used by R2GenCMN, R2GenGPT, PromptMRG, ...):
``annotation.json = {"train": [entry, ...], "val": [...], "test": [...]}`` where each entry has at least
``id``, ``report`` and ``image_path`` (a list of paths relative to the image root).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from radiolm.data.labels import CHEXPERT_14
from radiolm.errors import DataError

__all__ = ["SPLITS", "load_annotation", "load_labels_csv", "load_image"]

SPLITS = ("train", "val", "test")


def load_annotation(path: str | Path, report_key: str = "report") -> dict[str, list[dict[str, Any]]]:
    """Load and check an R2Gen ``annotation.json``.

    Raises:
        DataError: naming the file (and entry) when the file is missing, not JSON, lacks a split, or an entry lacks
            ``id`` / ``report_key`` / ``image_path``, or ids repeat within a split.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found. Build it with `radiolm data ...` or fix the path.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e}). Rebuild the file or fix it by hand.") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object with keys {list(SPLITS)}, got {type(data).__name__}.")
    missing = [s for s in SPLITS if s not in data]
    if missing:
        raise DataError(f"{path}: split(s) {missing} missing; an R2Gen annotation file has keys {list(SPLITS)}.")
    for split in SPLITS:
        seen: set[str] = set()
        for i, entry in enumerate(data[split]):
            where = f"{path}: {split}[{i}]"
            for key in ("id", report_key, "image_path"):
                if key not in entry:
                    raise DataError(f"{where} has no '{key}'; every entry needs id, {report_key} and image_path.")
            entry["id"] = str(entry["id"])
            if entry["id"] in seen:
                raise DataError(f"{where}: duplicate id '{entry['id']}' in split '{split}'; ids must be unique.")
            seen.add(entry["id"])
            if isinstance(entry["image_path"], str):
                entry["image_path"] = [entry["image_path"]]
    return {s: data[s] for s in SPLITS}


def load_labels_csv(path: str | Path) -> dict[str, list[int]]:
    """Read ``id`` + the 14 CheXpert columns; blank cells become -1 (unknown)."""
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


def load_image(path: str | Path) -> Image.Image:
    """Open an image file as 8-bit (``L``, ``RGB`` or ``RGBA``); 16-bit grayscale is rescaled by its bit depth.

    Raises:
        DataError: naming the file when it is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found. Check the image root or rebuild the data set.")
    im: Image.Image
    try:
        with Image.open(path) as im:
            im.load()
    except Exception as e:  # PIL raises several types for truncated / corrupt files
        raise DataError(f"{path}: cannot decode image ({e}). Re-download or remove this study.") from None
    if im.mode in ("I;16", "I;16B", "I", "F"):
        arr = np.asarray(im, dtype=np.float32)
        scale = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr / scale * 255.0, 0, 255).astype(np.uint8), mode="L")
    return im
