"""Per-entry validation of a data set before the first training step: problems are named, counted, never hidden.

A DataModule runs one check per annotation entry (files exist and decode, the report is not empty, ...). Every
failing entry becomes a :class:`Problem` that names the split, the entry id, the annotation file and what is wrong.
By default any problem stops the run with one :class:`~radiolm.errors.DataError` that lists the first few and the
count; with ``skip_invalid: true`` the entries are dropped instead, a warning gives the count and ids, and the
DataModule writes the full list with :func:`write_problems` (``<run folder>/invalid-entries.json``).

Usage (the CT DataModule checks volumes the same way)::

    from radiolm.data.formats.images import check_image_file
    from radiolm.data.formats.validation import check_entries, write_problems

    def check(entry: dict) -> str | None:        # None when the entry is fine, else one line naming the file
        for rel in entry["image_path"]:
            if (message := check_image_file(root / rel)) is not None:
                return message
        return None

    annotation, problems = check_entries(annotation, check, source=annotation_path, skip_invalid=skip_invalid)
    if problems:
        write_problems(run_dir / "invalid-entries.json", problems)

``check_entries`` raises when there are problems and ``skip_invalid`` is false, so the code after it only ever sees
clean entries. Whole-file problems (not JSON, a missing split) are not entries and always raise, in
:mod:`radiolm.data.formats.annotation`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from radiolm.errors import DataError

__all__ = [
    "FIX_HINT",
    "Problem",
    "check_entries",
    "format_problems",
    "write_problems",
]

log = logging.getLogger(__name__)

FIX_HINT = "fix the files or set `skip_invalid: true` to drop them"
# How many problems an error message or a warning lists before it says "... and N more".
SHOWN = 5


@dataclass(frozen=True)
class Problem:
    """One invalid entry.

    Attributes:
        split: ``train`` / ``val`` / ``test``.
        id: The entry's id (``#<index>`` when the entry has none).
        source: The annotation file the entry comes from.
        message: What is wrong, naming the data file where there is one.
    """

    split: str
    id: str
    source: str
    message: str

    def __str__(self) -> str:
        return f"{self.split} entry '{self.id}': {self.message}"


def format_problems(problems: Sequence[Problem], shown: int = SHOWN) -> str:
    """The first ``shown`` problems, one per line, and how many more there are."""
    lines = [f"  - {p}" for p in problems[:shown]]
    if len(problems) > shown:
        lines.append(f"  ... and {len(problems) - shown} more")
    return "\n".join(lines)


def check_entries(
    entries_by_split: dict[str, list[dict[str, Any]]],
    check: Callable[[dict[str, Any]], str | None],
    *,
    source: Path,
    skip_invalid: bool,
    known: Sequence[Problem] = (),
    workers: int = 1,
) -> tuple[dict[str, list[dict[str, Any]]], list[Problem]]:
    """Run ``check`` on every entry; raise on problems, or drop the entries when ``skip_invalid``.

    Args:
        entries_by_split: Split name -> entries (each a dict with an ``id``).
        check: Entry -> ``None`` when valid, else a one-line message that names the file concerned.
        source: The annotation file, named in every problem and in the error.
        skip_invalid: Drop invalid entries (with a warning) instead of raising.
        known: Problems found earlier (e.g. by the annotation reader, whose entries are already gone); they are
            reported together with the new ones.
        workers: Threads that run ``check`` (image decoding releases the GIL); the order of results is kept.

    Returns:
        The entries that passed, by split, and every problem (``known`` first).

    Raises:
        DataError: when there is any problem and ``skip_invalid`` is false; it names ``source``, lists the first
            few problems and the count, and says how to go on.
    """
    problems = list(known)
    kept: dict[str, list[dict[str, Any]]] = {}
    for split, entries in entries_by_split.items():
        if workers > 1 and len(entries) > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(check, entries))
        else:
            results = [check(entry) for entry in entries]
        kept[split] = []
        for index, (entry, message) in enumerate(zip(entries, results, strict=True)):
            if message is None:
                kept[split].append(entry)
            else:
                problems.append(Problem(split, str(entry.get("id", f"#{index}")), str(source), message))
    if problems and not skip_invalid:
        raise DataError(
            f"{source}: {len(problems)} invalid entr{'y' if len(problems) == 1 else 'ies'}:\n"
            f"{format_problems(problems)}\n{FIX_HINT}."
        )
    if problems:
        log.warning(
            "radiolm: skip_invalid: dropped %d invalid entries of %s: %s",
            len(problems),
            source,
            ", ".join(f"{p.split}/{p.id}" for p in problems),
        )
    return kept, problems


def write_problems(path: Path, problems: Sequence[Problem]) -> Path:
    """Write ``problems`` as a JSON list of ``{split, id, source, message}`` to ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(p) for p in problems], indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
