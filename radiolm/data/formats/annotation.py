"""The R2Gen ``annotation.json``: reading it with errors that name the file and entry, and split-wide checks.

The R2Gen on-disk format (Chen et al. 2020, used by R2GenCMN, R2GenGPT, PromptMRG, ...):
``annotation.json = {"train": [entry, ...], "val": [...], "test": [...]}`` where each entry has at least
``id``, ``report`` and ``image_path`` (a list of paths relative to the image root).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from radiolm.data.formats.validation import Problem
from radiolm.errors import DataError

__all__ = ["SPLITS", "find_subject_leakage", "load_annotation", "read_annotation"]

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


def find_subject_leakage(entries_by_split: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """Subjects (``subject_id``) that occur in more than one split -> their splits; entries without one are ignored."""
    splits: dict[str, set[str]] = defaultdict(set)
    for split, entries in entries_by_split.items():
        for entry in entries:
            if entry.get("subject_id") not in (None, ""):
                splits[str(entry["subject_id"])].add(split)
    return {subject: sorted(s) for subject, s in splits.items() if len(s) > 1}
