"""MIMIC-CXR builder: the PhysioNet downloads -> an R2Gen ``annotation.json`` with the official split.

``radiolm data prepare mimic-cxr`` reads four things of the official releases (docs/data_mimic_cxr.md):

* ``--jpg-root``: the ``files/`` folder of MIMIC-CXR-JPG 2.0.0, images at ``p10/p10000032/s50414267/<dicom_id>.jpg``;
* ``--reports``: ``mimic-cxr-reports.zip`` of MIMIC-CXR 2.0.0 or its unpacked folder, ``p10/p10000032/s50414267.txt``;
* ``--split-csv``: ``mimic-cxr-2.0.0-split.csv(.gz)`` (``dicom_id, study_id, subject_id, split``; the split is
  patient-wise, values ``train`` / ``validate`` / ``test``);
* ``--metadata``: ``mimic-cxr-2.0.0-metadata.csv(.gz)`` (``ViewPosition`` of every ``dicom_id``).

and writes ``annotation.json`` (entries ``id, study_id, subject_id, report, findings, impression, image_path,
views, split``) and ``build-report.json`` (settings, counts, and every dropped study with its reason: nothing is
dropped silently). Report sections are found as the MIMIC-CXR authors' ``txt/section_parser.py`` /
``create_section_files.py`` do (reimplemented here): all-caps headers at the start of a line, header names
normalised (aliases, typos, view descriptions standing for findings), empty findings / impression sections
removed, and a report with neither gets its last paragraph as ``last_paragraph``.
``--views frontal --section findings --no-prior-reference`` is the two-stage paper's curated subset
(two_stage_finetune.md §4). ``--layout r2gen`` is R2Gen's annotation as R2GenGPT used it (r2gengpt.md §4.1, Fig. 3):
one entry per image of the studies that have a findings section (R2Gen's entries), the report ``IMPRESSION: ...
FINDINGS: ...`` with its headers. The data set itself is never part of this repository.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import gzip
import io
import json
import re
import zipfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from radiolm.data.formats.annotation import find_subject_leakage
from radiolm.errors import DataError

__all__ = [
    "FRONTAL_VIEWS",
    "LAYOUTS",
    "NO_COMPARISON",
    "PRIOR_PHRASES",
    "R2GEN_ENTRIES",
    "build_annotation",
    "extract_report",
    "main",
    "read_csv",
    "refers_to_prior",
    "split_sections",
]

# -- configuration (each a named value; the paper sections they follow are cited) ------------------------------------
SPLIT_NAMES = {"train": "train", "validate": "val", "test": "test"}  # the official CSV's values -> R2Gen keys
# two_stage_finetune.md §4: "we followed [2] and only used AP/PA views".
FRONTAL_VIEWS = ("PA", "AP")
VIEW_ORDER = ("PA", "AP", "LATERAL", "LL")  # images of a study in this order (a frontal view first), then the rest
# Section names as written -> the normalised name (the common variants of the MIMIC-CXR reports).
SECTION_ALIASES = {
    "comparisons": "comparison", "comparison exam": "comparison", "comparison film": "comparison",
    "reference exam": "comparison", "clinical history": "history", "clinical information": "history",
    "patient history": "history", "pfi": "history", "reason for examination": "indication",
    "reason for exam": "indication", "clinical indication": "indication", "exam": "examination",
    "type of examination": "examination", "conclusion": "impression", "findings and impression": "impression",
    "findings/impression": "impression", "recommendation": "recommendations", "recommendation(s)": "recommendations",
    "wetread": "wet read", "finding": "findings",
}  # fmt: skip
MAIN_SECTIONS = ("impression", "findings", "history", "comparison", "addendum")  # a name containing one is that one
TYPO_TARGETS = ("impression", "findings", "comparison", "indication")  # "impresson", "findngs", "comparsion", ...
TYPO_CUTOFF = 0.85  # difflib ratio above which a misspelt header counts as the section
# Headers that describe the views taken stand for the findings ("PA AND LATERAL VIEWS OF THE CHEST: ...").
FINDINGS_LIKE = re.compile(
    r"chest|portable|pa and lat|lateral and pa|ap and lat|lateral and ap|frontal|two views|one view|pa view|"
    r"ap view|lateral view|bone window|ribs"
)
# two_stage_finetune.md §4 drops "reports whose comparison section explicitly states previous sessions were
# referred to": a comparison section that is absent, empty or says there is nothing to compare keeps the report.
NO_COMPARISON = re.compile(
    r"^(none|n/?a|nothing|not available|no (prior|previous|old|comparison)\b.*|no comparisons?)"
    r"( available| provided)?\W*$",
    re.IGNORECASE,
)
# ``--prior-rule phrases|either``: wording of the target text that refers to an earlier study (the idea of
# Ramesh et al. 2022, the two-stage paper's ref. [30]); matched as whole words, case-insensitive.
PRIOR_PHRASES = (
    "compared to prior", "compared with prior", "compared to the prior", "compared with the prior",
    "since the prior", "since prior", "prior study", "prior exam", "prior radiograph", "previous", "previously",
    "unchanged", "again seen", "again noted", "again demonstrated", "redemonstrated", "interval", "no change",
    "has improved", "has worsened", "has increased", "has decreased", "stable", "persistent", "persists",
)  # fmt: skip
# ``--layout``: the options a layout fixes. ``suite`` (default): the option defaults, each of them free to change.
# ``r2gen``: R2Gen's MIMIC-CXR annotation as R2GenGPT used it: one entry per image (id = dicom id) of every view,
# report = impression then findings, each with its header (r2gengpt.md Fig. 3 shows "impression : ... findings :
# ..." after R2GenGPT's cleaner; its authors confirm both sections in github.com/wang-zhanyu/R2GenGPT/issues/7);
# only studies with a findings section, the entries of R2Gen's file (R2Gen predicts findings only:
# github.com/zhjohnchan/R2Gen/issues/4).
LAYOUTS: dict[str, dict[str, Any]] = {
    "suite": {"section": "findings", "views": "all", "entries": "study"},
    "r2gen": {"section": "impression_findings", "views": "all", "entries": "image", "require": "findings"},
}
# Images per split of R2Gen's distributed annotation, which R2GenGPT reports (r2gengpt.md §4.1 "270,790 samples
# designated for training, ... 2,130 and 3,858 samples for validation and testing"): what `--layout r2gen` on the
# full MIMIC-CXR-JPG 2.0.0 release is compared with (build-report.json, `published_entries`).
R2GEN_ENTRIES = {"train": 270_790, "val": 2_130, "test": 3_858}
SECTION_CHOICES = ("findings", "impression", "both", "impression_findings")
# ``--fallback``: the MIMIC-CXR authors' order for a report's main text when the asked-for section is absent.
FALLBACK_ORDER = ("impression", "findings", "last_paragraph", "comparison")

_HEADER = re.compile(r"^[ \t]*([A-Z][A-Z ()/,&-]*[A-Z)])[ \t]*:(?=\s|$)", re.MULTILINE)
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


# -- report text ------------------------------------------------------------------------------------------------------
def normalise_section_name(name: str) -> str:
    """A header as written -> its normalised name (``"COMPARISONS"`` -> ``comparison``, ``"IMPRESSON"`` -> ...)."""
    name = " ".join(name.lower().split())
    if name in SECTION_ALIASES:
        return SECTION_ALIASES[name]
    for main in MAIN_SECTIONS:
        if main in name:
            return main
    close = difflib.get_close_matches(name, TYPO_TARGETS, n=1, cutoff=TYPO_CUTOFF)
    if close:
        return close[0]
    return "findings" if FINDINGS_LIKE.search(name) else name


def split_sections(text: str) -> list[tuple[str, str]]:
    """A free-text MIMIC-CXR report -> ``[(section name, text with whitespace collapsed), ...]`` in report order.

    Text before the first header is ``preamble``; a report without headers is one ``full report`` section. Empty
    ``findings`` / ``impression`` sections are removed (a report can carry an empty one next to the real one); when
    neither remains, the paragraphs after the first one of the last section become ``last_paragraph``.
    """
    text = text.replace("\r\n", "\n")
    headers = list(_HEADER.finditer(text))
    if not headers:
        raw = [("full report", text)]
    else:
        raw = [("preamble", text[: headers[0].start()])]
        for i, header in enumerate(headers):
            end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
            raw.append((normalise_section_name(header.group(1)), text[header.end() : end]))
    raw = [(name, body) for name, body in raw if name not in ("findings", "impression") or body.strip()]
    if not any(name in ("findings", "impression") for name, _ in raw):
        name, body = raw[-1]
        parts = _BLANK_LINE.split(body.strip())
        if len(parts) > 1:
            raw[-1] = (name, parts[0])
            raw.append(("last_paragraph", "\n\n".join(parts[1:])))
    return [(name, " ".join(body.split())) for name, body in raw]


def _last(sections: Sequence[tuple[str, str]], name: str) -> str | None:
    """The text of the *last* section called ``name`` (a report's later section supersedes an earlier one)."""
    found = [body for section, body in sections if section == name and body]
    return found[-1] if found else None


def extract_report(sections: Sequence[tuple[str, str]], section: str, fallback: bool = False) -> str | None:
    """The target text of ``--section findings|impression|both|impression_findings``; ``None`` when there is none.

    ``both`` is the findings followed by the impression (either may be absent, not both). ``impression_findings``
    is R2GenGPT's report (``--layout r2gen``): ``"IMPRESSION: <impression> FINDINGS: <findings>"``, a part only
    when its section is there. With ``fallback`` a report without the asked-for section(s) takes the first of
    :data:`FALLBACK_ORDER` it has.
    """
    findings, impression = _last(sections, "findings"), _last(sections, "impression")
    if section == "impression_findings":
        parts = (f"{header}: {t}" for header, t in (("IMPRESSION", impression), ("FINDINGS", findings)) if t)
        text = " ".join(parts) or None
    elif section == "findings":
        text = findings
    elif section == "impression":
        text = impression
    elif section == "both":
        text = " ".join(t for t in (findings, impression) if t) or None
    else:
        raise DataError(f"--section {section!r}: choose one of {list(SECTION_CHOICES)}")
    if text is None and fallback:
        text = next((t for name in FALLBACK_ORDER if (t := _last(sections, name))), None)
    return text


def refers_to_prior(sections: Sequence[tuple[str, str]], target: str, rule: str = "comparison") -> bool:
    """Whether a report refers to an earlier study (``--no-prior-reference`` drops it).

    Args:
        sections: :func:`split_sections` of the report.
        target: The extracted target text.
        rule: ``comparison`` (two_stage_finetune.md §4, the default): its comparison section names a prior;
            ``phrases``: the target contains one of :data:`PRIOR_PHRASES`; ``either``: one or the other.
    """
    comparison = _last(sections, "comparison")
    by_comparison = comparison is not None and not NO_COMPARISON.match(comparison.strip())
    by_phrase = re.search(r"\b(" + "|".join(map(re.escape, PRIOR_PHRASES)) + r")\b", target, re.IGNORECASE) is not None
    return {"comparison": by_comparison, "phrases": by_phrase, "either": by_comparison or by_phrase}[rule]


# -- files ------------------------------------------------------------------------------------------------------------
def read_csv(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    """Rows of a ``.csv`` or ``.csv.gz`` file that must have ``columns``.

    Raises:
        DataError: naming the file when it is missing, unreadable or lacks a column.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found; download it from PhysioNet (docs/data_mimic_cxr.md)")
    try:
        with (
            gzip.open(path, "rt", newline="", encoding="utf-8")
            if path.suffix == ".gz"
            else path.open(newline="", encoding="utf-8") as f
        ):
            reader = csv.DictReader(f)
            absent = [c for c in columns if c not in (reader.fieldnames or [])]
            if absent:
                raise DataError(f"{path}: column(s) {absent} missing; is this the right MIMIC-CXR file?")
            return list(reader)
    except (OSError, UnicodeDecodeError, EOFError, csv.Error) as e:
        raise DataError(f"{path}: cannot read ({e}); re-download it") from None


class ReportFiles:
    """The free-text reports of ``mimic-cxr-reports.zip`` or of its unpacked folder, by study id.

    Any prefix before ``p<2 digits>/p<subject>/s<study>.txt`` (``files/``, ``mimic-cxr-reports/files/``) is allowed.
    """

    _NAME = re.compile(r"(?:^|/)p\d\d/p(\d+)/s(\d+)\.txt$")

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise DataError(f"{path}: reports not found; pass mimic-cxr-reports.zip or its unpacked folder")
        self.path = path
        self.zip = zipfile.ZipFile(path) if path.is_file() else None
        names = self.zip.namelist() if self.zip else (str(p.relative_to(path)) for p in path.rglob("s*.txt"))
        self.names: dict[str, str] = {}
        for name in names:
            if m := self._NAME.search(name.replace("\\", "/")):
                self.names[m.group(2)] = name
        if not self.names:
            raise DataError(f"{path}: no report files p??/p<subject>/s<study>.txt inside; is it mimic-cxr-reports?")

    def text(self, study_id: str) -> str | None:
        """The report of ``study_id``, or ``None`` when it is not there."""
        name = self.names.get(study_id)
        if name is None:
            return None
        if self.zip is not None:
            return io.TextIOWrapper(self.zip.open(name), encoding="utf-8").read()
        return (self.path / name).read_text(encoding="utf-8")


# -- the builder ------------------------------------------------------------------------------------------------------
def resolve_layout(layout: str, **given: Any) -> dict[str, Any]:
    """The builder's ``section`` / ``views`` / ``entries`` (and ``require``) for ``layout`` and the options given.

    ``given`` holds ``section``, ``views``, ``entries`` (``None``: not given) and the flags ``no_prior_reference``
    and ``fallback``.

    Raises:
        DataError: an unknown layout, or (``r2gen``) an option given that the layout fixes otherwise.
    """
    if layout not in LAYOUTS:
        raise DataError(f"--layout {layout!r}: choose one of {list(LAYOUTS)}")
    settings = dict(LAYOUTS[layout])
    for key in ("section", "views", "entries"):
        if given.get(key) is None:
            continue
        if layout != "suite" and given[key] != settings[key]:
            raise DataError(f"--layout {layout} builds --{key} {settings[key]}; drop --{key} {given[key]} "
                            "(or use --layout suite to choose each option)")  # fmt: skip
        settings[key] = given[key]
    flags = [f"--{k.replace('_', '-')}" for k in ("no_prior_reference", "fallback") if given.get(k)]
    if layout != "suite" and flags:
        raise DataError(f"--layout {layout} keeps R2Gen's entries; drop {' '.join(flags)} (or use --layout suite)")
    return settings


def _view_name(position: str) -> str:
    return "frontal" if position in FRONTAL_VIEWS else "lateral" if position in ("LATERAL", "LL") else "other"


def build_annotation(
    jpg_root: Path,
    reports: Path,
    split_csv: Path,
    metadata: Path,
    *,
    layout: str = "suite",
    section: str | None = None,
    views: str | None = None,
    no_prior_reference: bool = False,
    prior_rule: str = "comparison",
    fallback: bool = False,
    entries: str | None = None,
    progress: bool = True,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """The R2Gen annotation of MIMIC-CXR and a build report (settings, counts, dropped studies with reasons).

    ``section``, ``views`` and ``entries`` left ``None`` take the values of ``layout`` (:data:`LAYOUTS`); the
    ``r2gen`` layout fixes them, so another value, ``no_prior_reference`` or ``fallback`` with it is an error.

    Raises:
        DataError: for an unknown layout or an option the layout fixes, a missing or malformed input file, a study
            spread over two splits, or a subject in two splits (the official split is patient-wise; such leakage
            means the split file is wrong).
    """
    settings = resolve_layout(layout, section=section, views=views, entries=entries,
                              no_prior_reference=no_prior_reference, fallback=fallback)  # fmt: skip
    section, views, entries = settings["section"], settings["views"], settings["entries"]
    require = settings.get("require")
    if (jpg_root / "files").is_dir():
        jpg_root = jpg_root / "files"
    split_rows = read_csv(split_csv, ("dicom_id", "study_id", "subject_id", "split"))
    positions = {r["dicom_id"]: r["ViewPosition"] for r in read_csv(metadata, ("dicom_id", "ViewPosition"))}
    texts = ReportFiles(reports)

    studies: dict[str, dict[str, Any]] = {}
    for row in split_rows:
        if row["split"] not in SPLIT_NAMES:
            raise DataError(f"{split_csv}: split {row['split']!r} of {row['dicom_id']}; expected {list(SPLIT_NAMES)}")
        study = studies.setdefault(
            row["study_id"], {"subject_id": row["subject_id"], "split": SPLIT_NAMES[row["split"]], "dicoms": []}
        )
        if study["split"] != SPLIT_NAMES[row["split"]]:
            raise DataError(f"{split_csv}: study {row['study_id']} is in two splits; use the official split file")
        study["dicoms"].append(row["dicom_id"])
    leaks = find_subject_leakage({s: [v for v in studies.values() if v["split"] == s] for s in SPLIT_NAMES.values()})
    if leaks:
        shown = ", ".join(f"{k} in {v}" for k, v in list(leaks.items())[:5])
        raise DataError(f"{split_csv}: {len(leaks)} subject(s) in more than one split ({shown}); the official "
                        "MIMIC-CXR split is patient-wise: use mimic-cxr-2.0.0-split.csv.gz as distributed")  # fmt: skip

    annotation: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLIT_NAMES.values()}
    dropped: list[dict[str, str]] = []
    missing_images: list[str] = []
    order = {v: i for i, v in enumerate(VIEW_ORDER)}
    for study_id, study in tqdm(sorted(studies.items()), desc="mimic-cxr studies", disable=not progress):
        subject, split = study["subject_id"], study["split"]
        folder = f"p{subject[:2]}/p{subject}/s{study_id}"
        dicoms = sorted(study["dicoms"], key=lambda d: (order.get(positions.get(d, ""), len(order)), d))
        if views == "frontal":
            dicoms = [d for d in dicoms if positions.get(d) in FRONTAL_VIEWS]
        missing = [d for d in dicoms if not (jpg_root / folder / f"{d}.jpg").is_file()]
        missing_images += [f"{folder}/{d}.jpg" for d in missing]
        dicoms = [d for d in dicoms if d not in missing]
        text = texts.text(study_id)
        sections = split_sections(text) if text is not None else []
        report = extract_report(sections, section, fallback)
        reason = None
        if not dicoms:
            reason = f"no {'frontal ' if views == 'frontal' else ''}image" + (
                f" ({len(missing)} missing)" if missing else ""
            )
        elif text is None:
            reason = "no report file"
        elif require is not None and _last(sections, require) is None:
            reason = f"no {require} section"
        elif report is None:
            reason = f"no {section} section"
        elif no_prior_reference and refers_to_prior(sections, report, prior_rule):
            reason = "refers to a prior study"
        if reason is not None:
            dropped.append({"study_id": study_id, "subject_id": subject, "split": split, "reason": reason})
            continue
        base = {
            "study_id": study_id,
            "subject_id": subject,
            "report": report,
            "findings": _last(sections, "findings") or "",
            "impression": _last(sections, "impression") or "",
            "split": split,
        }
        paths = [f"{folder}/{d}.jpg" for d in dicoms]
        names = [_view_name(positions.get(d, "")) for d in dicoms]
        if entries == "study":
            annotation[split].append({"id": study_id, **base, "image_path": paths, "views": names})
        else:  # one entry per image, as R2Gen's distributed file
            for d, path, name in zip(dicoms, paths, names, strict=True):
                annotation[split].append({"id": d, **base, "image_path": [path], "views": [name]})
    settings = {"layout": layout, "section": section, "views": views, "no_prior_reference": no_prior_reference,
                "prior_rule": prior_rule, "fallback": fallback, "entries": entries}  # fmt: skip
    report_json = {
        "settings": settings,
        "inputs": {"jpg_root": str(jpg_root), "reports": str(reports), "split_csv": str(split_csv),
                   "metadata": str(metadata)},
        "studies": len(studies),
        "entries": {s: len(v) for s, v in annotation.items()},
        **({"published_entries": R2GEN_ENTRIES} if layout == "r2gen" else {}),
        "dropped_by_reason": dict(Counter(d["reason"] for d in dropped)),
        "dropped": dropped,
        "missing_images": missing_images,
    }  # fmt: skip
    return annotation, report_json


def main(argv: list[str] | None = None) -> None:
    """``radiolm data prepare mimic-cxr``: write ``annotation.json`` + ``build-report.json`` to ``--out``."""
    parser = argparse.ArgumentParser(
        prog="radiolm data prepare mimic-cxr",
        description="Build an R2Gen annotation.json of MIMIC-CXR (PhysioNet MIMIC-CXR-JPG 2.0.0 + MIMIC-CXR 2.0.0 "
        "reports) with the official split. See docs/data_mimic_cxr.md.",
    )
    parser.add_argument("--jpg-root", required=True, type=Path, help="MIMIC-CXR-JPG files/ folder (p10/p10000032/...)")
    parser.add_argument("--reports", required=True, type=Path, help="mimic-cxr-reports.zip or its unpacked folder")
    parser.add_argument("--split-csv", required=True, type=Path, help="mimic-cxr-2.0.0-split.csv(.gz)")
    parser.add_argument("--metadata", required=True, type=Path, help="mimic-cxr-2.0.0-metadata.csv(.gz)")
    parser.add_argument(
        "--layout",
        choices=list(LAYOUTS),
        default="suite",
        help="suite: the options below (default); r2gen: R2Gen's annotation as R2GenGPT used it (one entry per "
        "image, report = IMPRESSION: ... FINDINGS: ..., studies with findings)",
    )
    parser.add_argument(
        "--section",
        choices=list(SECTION_CHOICES),
        help="the report text (default findings; impression_findings: both with their headers)",
    )
    parser.add_argument("--views", choices=["all", "frontal"], help="frontal: PA/AP images only (default all)")
    parser.add_argument("--no-prior-reference", action="store_true", help="drop reports that refer to a prior study")
    parser.add_argument(
        "--prior-rule",
        choices=["comparison", "phrases", "either"],
        default="comparison",
        help="what counts as referring to a prior (default: the comparison section, paper §4)",
    )
    parser.add_argument("--fallback", action="store_true", help="use the authors' section fallback order")
    parser.add_argument("--entries", choices=["study", "image"], help="one entry per study (default) or image")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    args = parser.parse_args(argv)
    annotation, report = build_annotation(
        args.jpg_root, args.reports, args.split_csv, args.metadata, layout=args.layout, section=args.section,
        views=args.views, no_prior_reference=args.no_prior_reference, prior_rule=args.prior_rule,
        fallback=args.fallback, entries=args.entries,
    )  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "annotation.json").write_text(json.dumps(annotation, ensure_ascii=False), encoding="utf-8")
    (args.out / "build-report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    images = args.out / "images"
    if not images.exists() and not images.is_symlink():
        images.symlink_to(Path(report["inputs"]["jpg_root"]).resolve(), target_is_directory=True)
    print(f"{args.out / 'annotation.json'}: {report['entries']} entries of {report['studies']} studies")
    if "published_entries" in report:
        print(f"R2Gen's annotation (R2GenGPT §4.1) has {report['published_entries']} entries")
    print(f"dropped {len(report['dropped'])} studies: {report['dropped_by_reason']} (listed in build-report.json)")
    if report["missing_images"]:
        print(f"{len(report['missing_images'])} images listed in the split file are missing under {args.jpg_root}")
    print(f"images: {images} -> {images.resolve()}")
