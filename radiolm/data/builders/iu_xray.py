"""``radiolm data prepare iu-xray``: the R2Gen IU-Xray data set from the official Open-i download.

Inputs (Open-i, Indiana University Chest X-ray Collection, CC BY-NC-ND 4.0):

* ``--reports``: ``NLMCXR_reports.tgz`` (3,955 files ``ecgen-radiology/<n>.xml``) or a folder of those XML files;
* ``--images``: the unpacked ``NLMCXR_png.tgz`` folder, files named after the XML's ``parentImage`` ids
  (``CXR2384_IM-0942-1001.png``). Optional: without it only ``annotation.json`` is written.

How R2Gen's ``annotation.json`` comes about, worked out from the XML and its 2,955 split ids (all of which this
reproduces): a study is one XML file with at least two ``parentImage`` entries and a non-empty ``FINDINGS``; its id
is the *first* image id without its last ``-`` field (``CXR2384_IM-0942-1001`` -> ``CXR2384_IM-0942``,
``CXR2056_IM-0694-1001-0001`` -> ``CXR2056_IM-0694-1001``); its images ``0.png`` / ``1.png`` are the first two
``parentImage`` entries in XML order; its ``report`` is the ``FINDINGS`` text as written (R2Gen's tokenizer cleans
it at train time; here :mod:`radiolm.data.cleaning` does, in the DataModule). Exactly 2,955 of the 3,955 files
qualify, and they are the R2Gen split's ids.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from radiolm.data.formats.annotation import SPLITS
from radiolm.errors import DataError

__all__ = [
    "IUStudy",
    "build_iu_xray",
    "load_r2gen_split",
    "main",
    "parse_report_xml",
    "random_split",
    "read_iu_reports",
]

SECTIONS = ("findings", "impression", "both")
# R2Gen keeps studies with two images (R2GenGPT averages both views' encodings); ``--min-images 1`` keeps the rest.
R2GEN_IMAGES = 2
# ``--split random``: train / val / test fractions. The R2Gen paper (Chen et al. 2020, §4.1) splits IU-Xray 7:1:2;
# with round-half-up sizes, 2,955 studies give its 2,069 / 296 / 590.
RANDOM_FRACTIONS = (0.7, 0.1, 0.2)


@dataclass
class IUStudy:
    """One Open-i report file.

    Attributes:
        number: The file's number (``ecgen-radiology/<number>.xml``).
        images: ``parentImage`` ids in XML order (``CXR1_1_IM-0001-3001``).
        sections: ``AbstractText`` texts by lower-case label (``comparison``, ``indication``, ``findings``,
            ``impression``); an empty section is ``""``.
        mesh: MeSH terms by kind: ``major`` (coded by hand, e.g. ``"Cardiomegaly/borderline"``) and
            ``automatic`` (extracted by software, e.g. ``"sternotomy"``), each in XML order.
    """

    number: int
    images: list[str]
    sections: dict[str, str] = field(default_factory=dict)
    mesh: dict[str, list[str]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """R2Gen's study id: the first image id without its last ``-`` field (``""`` when there is no image)."""
        return self.images[0].rsplit("-", 1)[0] if self.images else ""

    def text(self, section: str) -> str:
        """The chosen section: ``findings``, ``impression`` or ``both`` (findings then impression, one space)."""
        if section == "both":
            return " ".join(t for t in (self.sections.get("findings", ""), self.sections.get("impression", "")) if t)
        return self.sections.get(section, "")


def parse_report_xml(data: bytes, name: str) -> IUStudy:
    """Parse one Open-i report file.

    Args:
        data: The XML bytes.
        name: Its file name (``ecgen-radiology/12.xml``): the study number and error messages come from it.

    Raises:
        DataError: naming the file when it is not XML or its name has no number.
    """
    match = re.search(r"(\d+)\.xml$", name)
    if not match:
        raise DataError(f"{name}: not an Open-i report file name (expected <number>.xml, as in NLMCXR_reports.tgz)")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise DataError(f"{name}: not valid XML ({e}); re-download NLMCXR_reports.tgz") from None
    sections = {(node.get("Label") or "").lower(): (node.text or "").strip() for node in root.iter("AbstractText")}
    mesh: dict[str, list[str]] = {"major": [], "automatic": []}
    for node in root.findall("MeSH/*"):
        if node.text and node.text.strip():
            mesh.setdefault(node.tag, []).append(node.text.strip())
    images = [node.get("id") or "" for node in root.findall("parentImage")]
    return IUStudy(int(match.group(1)), [i for i in images if i], sections, mesh)


def _xml_files(source: Path) -> Iterator[tuple[str, bytes]]:
    """``(name, bytes)`` of each ``*.xml`` in a ``.tgz`` / ``.tar.gz`` / ``.tar`` or under a folder."""
    if source.is_dir():
        for path in sorted(source.rglob("*.xml")):
            yield str(path), path.read_bytes()
    elif source.is_file() and tarfile.is_tarfile(source):
        with tarfile.open(source) as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(".xml"):
                    handle = tar.extractfile(member)
                    if handle is not None:
                        yield member.name, handle.read()
    elif source.exists():
        raise DataError(f"{source}: --reports must be NLMCXR_reports.tgz or a folder of its XML files")
    else:
        raise DataError(f"{source}: no such file or folder; download NLMCXR_reports.tgz (docs/data_iu_xray.md)")


def read_iu_reports(source: str | Path, progress: bool = True) -> list[IUStudy]:
    """All report files of ``source`` (the tgz or a folder), sorted by number.

    Raises:
        DataError: when ``source`` is missing, holds no XML file or holds one number twice.
    """
    source = Path(source)
    files = _xml_files(source)
    if progress:
        from tqdm import tqdm

        files = tqdm(files, desc="IU-Xray reports", unit="file")
    studies: dict[int, IUStudy] = {}
    for name, data in files:
        study = parse_report_xml(data, name)
        if study.number in studies:
            raise DataError(f"{source}: report {study.number}.xml occurs twice; point --reports at one copy")
        studies[study.number] = study
    if not studies:
        raise DataError(f"{source}: no report XML files found; expected ecgen-radiology/<n>.xml (NLMCXR_reports.tgz)")
    return [studies[n] for n in sorted(studies)]


def load_r2gen_split(path: str | Path | None = None) -> dict[str, list[str]]:
    """R2Gen's IU-Xray study ids per split (2,069 / 296 / 590), shipped with the package, or another such JSON."""
    if path is None:
        text = (resources.files("radiolm.data") / "splits" / "iu_xray_r2gen_split.json").read_text(encoding="utf-8")
        where = "radiolm/data/splits/iu_xray_r2gen_split.json"
    else:
        where = str(path)
        if not Path(path).is_file():
            raise DataError(f"{path}: split file not found; it lists study ids as {{'train': [...], 'val': ..., ...}}")
        text = Path(path).read_text(encoding="utf-8")
    try:
        split = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(split, dict) or any(not isinstance(split.get(s), list) for s in SPLITS):
        raise DataError(f"{where}: expected an object with id lists under {list(SPLITS)}")
    return {s: [str(i) for i in split[s]] for s in SPLITS}


def random_split(ids: list[str], seed: int) -> dict[str, list[str]]:
    """Shuffle ``ids`` (sorted first, so the result depends only on the set and ``seed``) and cut them 7:1:2.

    Sizes are ``floor(0.7 n + 0.5)`` and ``floor(0.1 n + 0.5)``, the rest is test (2,955 -> 2,069 / 296 / 590).
    """
    order = sorted(ids)
    random.Random(seed).shuffle(order)
    n_train = int(len(order) * RANDOM_FRACTIONS[0] + 0.5)
    n_val = int(len(order) * RANDOM_FRACTIONS[1] + 0.5)
    return {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}


def _entry(study: IUStudy, split: str, report: str, n_images: int) -> dict[str, Any]:
    """An R2Gen annotation entry (``id, report, image_path, split``) plus the extra keys of this suite."""
    return {
        "id": study.id,
        "report": report,
        "image_path": [f"{study.id}/{k}.png" for k in range(n_images)],
        "split": split,
        "mesh": study.mesh,
        "findings": study.sections.get("findings", ""),
        "impression": study.sections.get("impression", ""),
        "source_images": [f"{name}.png" for name in study.images[:n_images]],
        "report_file": f"{study.number}.xml",
    }


def _place_images(
    entries: list[dict[str, Any]], images: Path, out: Path, copy: bool, skip_missing: bool, progress: bool
) -> tuple[list[dict[str, Any]], list[str]]:
    """Link (or copy) each entry's ``source_images`` to ``out/images/<id>/<k>.png``.

    Returns:
        The entries whose images all exist, and the ids of those dropped for a missing image.

    Raises:
        DataError: listing the missing files, unless ``skip_missing``.
    """
    missing = {e["id"]: [n for n in e["source_images"] if not (images / n).is_file()] for e in entries}
    missing = {k: v for k, v in missing.items() if v}
    if missing and not skip_missing:
        names = [n for v in missing.values() for n in v]
        raise DataError(
            f"{images}: {len(names)} image(s) of {len(missing)} studies missing, e.g. {names[:5]}; point --images at "
            "the unpacked NLMCXR_png folder, or pass --skip-missing-images to drop those studies (listed)."
        )
    kept = [e for e in entries if e["id"] not in missing]
    iterator: Any = kept
    if progress:
        from tqdm import tqdm

        iterator = tqdm(kept, desc="IU-Xray images", unit="study")
    for entry in iterator:
        for name, rel in zip(entry["source_images"], entry["image_path"], strict=True):
            src, dst = (images / name).resolve(), out / "images" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.is_symlink() or dst.exists():
                dst.unlink()
            if copy:
                shutil.copyfile(src, dst)
            else:
                try:
                    os.symlink(src, dst)
                except OSError as e:
                    raise DataError(f"{dst}: cannot create a symbolic link ({e}); pass --copy to copy") from None
    return kept, sorted(missing)


def build_iu_xray(
    reports: str | Path,
    out: str | Path,
    images: str | Path | None = None,
    split: str = "r2gen",
    section: str = "findings",
    seed: int = 0,
    split_file: str | Path | None = None,
    min_images: int = R2GEN_IMAGES,
    copy: bool = False,
    skip_missing_images: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``out/annotation.json`` (+ ``out/images/<id>/{0,1}.png``) and return the summary.

    Args:
        reports: ``NLMCXR_reports.tgz`` or a folder of its XML files.
        out: Output folder.
        images: The ``NLMCXR_png`` folder; ``None`` writes the annotation only.
        split: ``r2gen`` (the shipped R2Gen ids, or ``split_file``) or ``random`` (seeded 7:1:2).
        section: ``findings`` (R2Gen), ``impression`` or ``both`` (findings then impression).
        seed: Seed of ``random``.
        split_file: A JSON of id lists per split that replaces the shipped R2Gen split.
        min_images: Studies with fewer images are left out (2 as R2Gen; 1 keeps single-view studies, ``random`` only).
        copy: Copy the PNGs instead of linking them.
        skip_missing_images: Drop (and list) studies with a missing PNG instead of stopping.
        progress: tqdm bars.

    Raises:
        DataError: for an unknown option value, a split id with no qualifying study, or missing images.
    """
    if split not in ("r2gen", "random"):
        raise DataError(f"--split {split!r}: use r2gen or random")
    if section not in SECTIONS:
        raise DataError(f"--section {section!r}: use one of {list(SECTIONS)}")
    if split == "random" and split_file is not None:
        raise DataError(f"--split-file {split_file}: a split file replaces R2Gen's ids; use it with --split r2gen")
    if min_images not in (1, 2):
        raise DataError(f"--min-images {min_images}: use 1 or 2 (a study is written as at most two views)")
    out = Path(out)
    studies = read_iu_reports(reports, progress)
    by_id: dict[str, IUStudy] = {}
    for study in studies:
        if len(study.images) >= min_images:
            if study.id in by_id:
                raise DataError(f"{reports}: {study.number}.xml and {by_id[study.id].number}.xml share id {study.id}")
            by_id[study.id] = study
    dropped: dict[str, list[str]] = {
        "too_few_images": [f"{s.number}.xml" for s in studies if len(s.images) < min_images],
        f"empty_{section}": sorted(i for i, s in by_id.items() if not s.text(section)),
        "missing_images": [],
    }
    if split == "r2gen":
        ids = load_r2gen_split(split_file)
        unknown = [i for s in SPLITS for i in ids[s] if i not in by_id]
        if unknown:
            raise DataError(
                f"{reports}: {len(unknown)} split id(s) match no report with {min_images}+ images, e.g. "
                f"{unknown[:5]}; use the complete NLMCXR_reports.tgz (3,955 files) or --split random."
            )
    else:
        ids = random_split([i for i, s in by_id.items() if s.text(section)], seed)
    in_split = {i for s in SPLITS for i in ids[s]}
    entries = {
        s: [_entry(by_id[i], s, by_id[i].text(section), min(R2GEN_IMAGES, len(by_id[i].images))) for i in ids[s]]
        for s in SPLITS
    }
    entries = {s: [e for e in entries[s] if e["report"]] for s in SPLITS}
    if images is not None:
        flat = [e for s in SPLITS for e in entries[s]]
        kept, dropped["missing_images"] = _place_images(flat, Path(images), out, copy, skip_missing_images, progress)
        keep = {e["id"] for e in kept}
        entries = {s: [e for e in entries[s] if e["id"] in keep] for s in SPLITS}
    out.mkdir(parents=True, exist_ok=True)
    (out / "annotation.json").write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
    summary = {
        "reports": str(reports),
        "images": str(images) if images is not None else None,
        "split": split if split_file is None else str(split_file),
        "section": section,
        "seed": seed if split == "random" else None,
        "studies": {s: len(entries[s]) for s in SPLITS},
        "report_files": len(studies),
        "dropped": {k: len(v) for k, v in dropped.items()},
        "dropped_in_split": sorted((in_split & set(dropped[f"empty_{section}"])) | set(dropped["missing_images"])),
        "dropped_ids": dropped,
    }
    (out / "prepare_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def main(argv: list[str] | None = None) -> None:
    """``radiolm data prepare iu-xray ...``: parse ``argv``, build, print the summary."""
    parser = argparse.ArgumentParser(
        prog="radiolm data prepare iu-xray",
        description="Build IU-Xray in the R2Gen layout (annotation.json + images/<id>/{0,1}.png) from Open-i files.",
    )
    parser.add_argument("--reports", required=True, type=Path, help="NLMCXR_reports.tgz or a folder of its XML files")
    parser.add_argument("--images", type=Path, help="the unpacked NLMCXR_png folder (omit: annotation only)")
    parser.add_argument("--out", required=True, type=Path, help="output folder, e.g. data/iu_xray")
    parser.add_argument("--split", choices=["r2gen", "random"], default="r2gen", help="R2Gen's ids or seeded 7:1:2")
    parser.add_argument("--split-file", type=Path, help="JSON of study ids per split replacing R2Gen's (r2gen)")
    parser.add_argument("--section", choices=list(SECTIONS), default="findings", help="report text (R2Gen: findings)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --split random")
    parser.add_argument("--min-images", type=int, choices=[1, 2], default=R2GEN_IMAGES, help="2 as R2Gen")
    parser.add_argument("--copy", action="store_true", help="copy the PNGs instead of symbolic links")
    parser.add_argument("--skip-missing-images", action="store_true", help="drop studies with a missing PNG")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    args = parser.parse_args(argv)
    summary = build_iu_xray(
        args.reports, args.out, args.images, args.split, args.section, args.seed, args.split_file,
        args.min_images, args.copy, args.skip_missing_images, progress=not args.no_progress,
    )  # fmt: skip
    counts = summary["studies"]
    print(f"IU-Xray ({summary['section']}, split {summary['split']}) -> {args.out / 'annotation.json'}")
    print(f"  studies: train {counts['train']}, val {counts['val']}, test {counts['test']} ({sum(counts.values())})")
    left_out = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in summary["dropped"].items())
    print(f"  of {summary['report_files']} report files; left out: {left_out}")
    if summary["dropped_in_split"]:
        shown = ", ".join(summary["dropped_in_split"][:20])
        print(f"  dropped from the split ({len(summary['dropped_in_split'])}): {shown}")
    if args.images is None:
        print("  no --images: annotation only (images/<id>/0.png, 1.png are not written)")
    print(f"  details: {args.out / 'prepare_summary.json'}")
