"""``radiolm data prepare ctrg-chest``: the CTRG layout (``docs/data_ctrg_chest.md``) from the official download.

CTRG-Chest-548K ships one folder of slice images per study and a reports table; this writes one NIfTI per study,
``reports.csv``, ``labels.csv`` and a seeded split file (:mod:`radiolm.data.formats.ctrg`), which
:class:`~radiolm.data.datamodules.ctrg_chest.CTRGChestDataModule` then reads. ``--split-csv-dir`` takes Dia-LLaMA's
official split (``CTRG_{train,val,test}.csv``) instead of a random one and writes it as
``splits/dia_llama_official.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from radiolm.data.formats.ctrg import (
    OFFICIAL_SPLIT_FILES,
    OFFICIAL_SPLIT_NAME,
    SPLIT_SCHEMES,
    load_split,
    make_split,
    read_reports_csv,
    split_file,
    write_reports_csv,
    write_split,
)
from radiolm.data.formats.labels_csv import load_labels_csv, write_labels_csv
from radiolm.data.formats.validation import check_entries, write_problems
from radiolm.data.formats.volumes import check_volume_file, find_volume, read_volume, write_nifti

__all__ = ["main", "prepare_ctrg"]

log = logging.getLogger(__name__)


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
    split_csv_dir: Path | None = None,
) -> dict[str, Any]:
    """Build the CTRG layout under ``out`` from a download: one NIfTI per study, reports, labels, a split file.

    Each study ``id`` of ``reports`` (columns ``id, finding, impression``, in ``language``) needs a volume under
    ``volumes``: a folder ``<id>/`` of slice images (the CTRG-Chest-548K release), converted to
    ``volumes/<id>.nii.gz``; a NIfTI, copied; or ``.npy`` / ``.npz``, converted. Slice images and ``.npy`` carry no
    spacing: ``spacing`` (mm, ``(d, h, w)``) is written into their NIfTI header, 1 mm when not given (a warning).

    ``split_csv_dir``: a folder with Dia-LLaMA's official ``CTRG_{train,val,test}.csv``; their ids become the split
    (``splits/dia_llama_official.json``) in place of the random ``split`` / ``seed`` one. Studies left out by
    ``skip_invalid`` are left out of it too (listed in ``invalid-entries.json``).

    Raises:
        DataError: naming the file for a bad reports or labels CSV, listing the studies whose volume is missing
            or unreadable (unless ``skip_invalid``, which leaves them out and lists them in
            ``out/invalid-entries.json``), or naming the split CSV and line of an id that is not in ``reports``.
    """
    rows = read_reports_csv(_as_language_csv(reports, language, out), language)
    official = load_split(split_csv_dir, set(rows)) if split_csv_dir is not None else None  # fails before the work
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
    write_reports_csv(out / "reports.csv", ([s, rows[s]["finding"], rows[s]["impression"]] for s in ids), language)
    if labels is not None:
        table = load_labels_csv(labels)
        write_labels_csv(out / "labels.csv", ((study, table[study]) for study in ids if study in table))
    if official is not None:
        kept_ids = set(ids)
        splits = {name: [study for study in members if study in kept_ids] for name, members in official.items()}
        path = write_split(out / "splits" / f"{OFFICIAL_SPLIT_NAME}.json", splits, OFFICIAL_SPLIT_NAME, None)
    else:
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


def main(argv: list[str] | None = None) -> None:
    """``radiolm data prepare ctrg-chest ...``: parse ``argv``, build, print the summary as JSON."""
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
    parser.add_argument(
        "--split-csv-dir",
        type=Path,
        help=f"folder with Dia-LLaMA's official split ({', '.join(OFFICIAL_SPLIT_FILES.values())}) to use instead "
        "of a random one; written to splits/dia_llama_official.json",
    )
    parser.add_argument("--spacing", type=float, nargs=3, metavar=("D", "H", "W"), help="mm, for slice folders")
    parser.add_argument("--skip-invalid", action="store_true", help="leave out studies without a readable volume")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    summary = prepare_ctrg(
        args.volumes, args.reports, args.out, labels=args.labels, language=args.language, split=args.split,
        seed=args.seed, spacing=tuple(args.spacing) if args.spacing else None, skip_invalid=args.skip_invalid,
        split_csv_dir=args.split_csv_dir,
    )  # fmt: skip
    print(json.dumps(summary, indent=2))
