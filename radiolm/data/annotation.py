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
from radiolm.data.validation import Problem
from radiolm.errors import DataError

__all__ = ["SPLITS", "load_annotation", "load_image", "load_labels_csv", "read_annotation"]

SPLITS = ("train", "val", "test")


def read_annotation(
    path: str | Path, report_key: str = "report"
) -> tuple[dict[str, list[dict[str, Any]]], list[Problem]]:
    """Read an R2Gen ``annotation.json``, setting aside the entries that are malformed.

    Whole-file problems raise: a missing file, text that is not JSON, a top level that is not an object, a missing
    split, a split that is not a list. Entry problems are returned instead, and those entries left out of the
    result: an entry that is not an object, lacks ``id`` / ``report_key`` / ``image_path``, has a report that is
    not text or is empty, an ``image_path`` that is not a non-empty list of paths, or repeats an id of its split.
    ``id`` becomes a string and a single ``image_path`` string a one-element list.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` with the valid entries, and the problems.

    Raises:
        DataError: naming the file, for the whole-file problems above.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found. Build it with `radiolm data ...` or fix the path.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e}). Rebuild the file or fix it by hand.") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object with keys {list(SPLITS)}, got {type(data).__name__}.")
    missing = [s for s in SPLITS if s not in data]
    if missing:
        raise DataError(f"{path}: split(s) {missing} missing; an R2Gen annotation file has keys {list(SPLITS)}.")
    annotation: dict[str, list[dict[str, Any]]] = {}
    problems: list[Problem] = []
    for split in SPLITS:
        if not isinstance(data[split], list):
            raise DataError(f"{path}: split '{split}' must be a list of entries, got {type(data[split]).__name__}.")
        annotation[split] = []
        seen: set[str] = set()
        for i, entry in enumerate(data[split]):
            issue = _entry_issue(entry, report_key, seen)
            if issue is None:
                annotation[split].append(entry)
            else:
                entry_id = str(entry["id"]) if isinstance(entry, dict) and "id" in entry else f"#{i}"
                problems.append(Problem(split, entry_id, str(path), f"{split}[{i}]{issue}"))
    return annotation, problems


def _entry_issue(entry: Any, report_key: str, seen: set[str]) -> str | None:
    """What is wrong with one entry (the text follows ``<split>[<index>]``), or ``None``; normalises a valid one."""
    if not isinstance(entry, dict):
        return f" is a {type(entry).__name__}, not an object with id, {report_key} and image_path."
    for key in ("id", report_key, "image_path"):
        if key not in entry:
            return f" has no '{key}'; every entry needs id, {report_key} and image_path."
    report = entry[report_key]
    if not isinstance(report, str):
        return f" (id '{entry['id']}'): '{report_key}' must be text, got {type(report).__name__}."
    if not report.strip():
        return f" (id '{entry['id']}'): empty '{report_key}'; give it a report or remove the entry."
    if isinstance(entry["image_path"], str):
        entry["image_path"] = [entry["image_path"]]
    paths = entry["image_path"]
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        return f" (id '{entry['id']}'): 'image_path' must be a non-empty list of paths, got {paths!r}."
    entry["id"] = str(entry["id"])
    if entry["id"] in seen:
        return f": duplicate id '{entry['id']}'; ids must be unique within a split."
    seen.add(entry["id"])
    return None


def load_annotation(path: str | Path, report_key: str = "report") -> dict[str, list[dict[str, Any]]]:
    """Load and check an R2Gen ``annotation.json`` (:func:`read_annotation`, with any malformed entry an error).

    Raises:
        DataError: naming the file (and entry) when the file is missing, not JSON, lacks a split, or an entry lacks
            ``id`` / ``report_key`` / ``image_path``, has an empty report, or repeats an id within its split.
    """
    annotation, problems = read_annotation(path, report_key)
    if problems:
        first = problems[0]
        more = f" ({len(problems) - 1} more invalid entries)" if len(problems) > 1 else ""
        raise DataError(f"{first.source}: {first.message}{more}")
    return annotation


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
