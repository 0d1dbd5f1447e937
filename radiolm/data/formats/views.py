"""View labels: a JSON file that names the view of every image of every study.

``radiolm data views --annotation A --out views.json`` (the bidirectional method's view classifier,
:mod:`radiolm.data.builders.views`) writes ``{"settings": ..., "accuracy": ..., "n_images": ..., "views":
{study_id: ["frontal", "lateral", ...]}}``: one name per image, in the order of the entry's ``image_path``. A plain
``{study_id: [view names]}`` object reads the same. The X-ray DataModules read it with ``views_path`` and put the
names into ``ReportBatch.views``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from radiolm.errors import DataError

__all__ = ["apply_views", "read_views"]

SHOWN = 5  # ids named in an error before "..."


def read_views(path: str | Path) -> dict[str, list[str]]:
    """``study id -> view name of each image`` from a views file (the classifier's output or a plain object).

    Raises:
        DataError: naming the file when it is missing, not JSON, or not an object of lists of names.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path}: views file not found; write it with `radiolm data views --annotation <annotation.json> "
            f"--out {path}` or fix views_path"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e}); rerun `radiolm data views --force --out {path} ...`") from None
    views = data.get("views") if isinstance(data, dict) and isinstance(data.get("views"), dict) else data
    if not isinstance(views, dict):
        raise DataError(f"{path}: expected an object {{study_id: [view names]}}, got {type(views).__name__}")
    for study, names in views.items():
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise DataError(f"{path}: study {study!r}: expected a list of view names, got {names!r}")
    return {str(study): list(names) for study, names in views.items()}


def apply_views(
    entries_by_split: dict[str, list[dict[str, Any]]], path: str | Path, max_views: int
) -> dict[str, list[dict[str, Any]]]:
    """Set each entry's ``views`` to the names of its first ``max_views`` images from the views file at ``path``.

    Raises:
        DataError: naming the file and the studies when the file lacks a study of a split, or names fewer views
            than the study has images in use.
    """
    views = read_views(path)
    missing = {split: [e["id"] for e in entries if e["id"] not in views] for split, entries in entries_by_split.items()}
    missing = {split: ids for split, ids in missing.items() if ids}
    if missing:
        count = sum(len(ids) for ids in missing.values())
        listed = "; ".join(
            f"{split}: {ids[:SHOWN]}{' ...' if len(ids) > SHOWN else ''}" for split, ids in missing.items()
        )
        raise DataError(
            f"{path}: no view names for {count} studies ({listed}); the views file belongs to other data. Rerun "
            f"`radiolm data views --annotation <annotation.json> --out {path}` for this data set, or fix views_path."
        )
    short = []
    for entries in entries_by_split.values():
        for entry in entries:
            used = min(len(entry["image_path"]), max_views)
            if len(views[entry["id"]]) < used:
                short.append(f"{entry['id']} ({len(views[entry['id']])} names, {used} images)")
    if short:
        raise DataError(
            f"{path}: fewer view names than images for {len(short)} studies, e.g. {short[:SHOWN]}; rerun "
            "`radiolm data views` on this data set."
        )
    for entries in entries_by_split.values():
        for entry in entries:
            entry["views"] = views[entry["id"]][: min(len(entry["image_path"]), max_views)]
    return entries_by_split
