"""Phantom chest CT studies whose voxels decide the report, written in the CTRG-Chest layout.

:func:`sample_ct_study` draws a :class:`~radiolm.data.phantom.specs.CTStudySpec` (findings with side, lobe, size
and amount), :func:`~radiolm.data.phantom.ct_render.render_ct` turns it into Hounsfield units ``[D, H, W]`` int16
and :func:`~radiolm.data.phantom.grammar_ct.write_ct_report` describes it. :func:`generate_ct` writes a data set
that :class:`~radiolm.data.datamodules.ctrg_chest.CTRGChestDataModule` reads like the real CTRG-Chest-548K after
``radiolm data prepare ctrg-chest``. See ``docs/phantom.md`` (CT section).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from radiolm.data.formats.ctrg import SPLIT_SCHEMES, make_split, split_file, write_reports_csv, write_split
from radiolm.data.formats.labels_csv import write_labels_csv
from radiolm.data.formats.volumes import write_nifti
from radiolm.data.labels import CHEXPERT_14
from radiolm.data.phantom.ct_render import LOBE_BOX, ct_spacing, render_ct
from radiolm.data.phantom.grammar_ct import check_ct_language, ct_spec_labels, write_ct_report
from radiolm.data.phantom.specs import LOBES, CTStudySpec

__all__ = ["generate_ct", "sample_ct_study"]

# Probability of each finding per study (independent); about 30 % of studies are normal.
_PREVALENCE = {
    "cardiomegaly": 0.15,
    "effusion": 0.15,
    "pneumothorax": 0.06,
    "consolidation": 0.15,
    "nodule": 0.25,
    "emphysema": 0.12,
    "ground_glass": 0.10,
    "atelectasis": 0.12,
    "pleural_thickening": 0.10,
}
_HEART_SCALE = {None: (0.9, 1.1), "mild": (1.3, 1.4), "moderate": (1.4, 1.5), "severe": (1.5, 1.6)}


def _pick(rng: np.random.Generator, options: tuple[str, ...], p: tuple[float, ...] | None = None) -> str:
    return str(options[rng.choice(len(options), p=p)])


def _has(rng: np.random.Generator, finding: str) -> bool:
    return bool(rng.random() < _PREVALENCE[finding])


def sample_ct_study(rng: np.random.Generator) -> CTStudySpec:
    """Sample one CT study: each finding independently with its prevalence, then its details and hedges."""
    spec = CTStudySpec(body_scale=round(float(rng.uniform(0.9, 1.05)), 3))
    hedges = []
    if _has(rng, "cardiomegaly"):
        spec.cardiomegaly = _pick(rng, ("mild", "moderate", "severe"), (0.5, 0.3, 0.2))
    spec.heart_scale = round(float(rng.uniform(*_HEART_SCALE[spec.cardiomegaly])), 3)
    if _has(rng, "effusion"):
        spec.effusion_side = _pick(rng, ("left", "right", "bilateral"), (0.35, 0.35, 0.3))
        spec.effusion_amount = _pick(rng, ("small", "moderate", "large"), (0.45, 0.35, 0.2))
    if _has(rng, "pneumothorax"):
        spec.pneumothorax_side = _pick(rng, ("left", "right"))
        spec.pneumothorax_size = _pick(rng, ("small", "large"), (0.6, 0.4))
    if _has(rng, "consolidation"):
        spec.consolidation_lobe = _pick(rng, LOBES)
        if rng.random() < 0.5:
            hedges.append("pneumonia")
    if _has(rng, "nodule"):
        spec.nodule_mm = int(rng.integers(6, 31))
        spec.nodule_lobe = _pick(rng, LOBES)
        (z0, z1), (v0, v1) = LOBE_BOX[spec.nodule_lobe]
        spec.nodule_center = (
            round(float(rng.uniform(z0 + 0.03, z1 - 0.03)), 3),
            round(float(rng.uniform(v0, v1)), 3),
            round(float(rng.uniform(-0.4, 0.4)), 3),
        )
        if spec.nodule_mm < 10 and rng.random() < 0.4:
            hedges.append("nodule")
    if _has(rng, "emphysema"):
        spec.emphysema = _pick(rng, ("mild", "severe"), (0.6, 0.4))
    spec.ground_glass = _has(rng, "ground_glass")
    if _has(rng, "atelectasis"):
        spec.atelectasis_side = _pick(rng, ("left", "right"))
        if rng.random() < 0.3:
            hedges.append("atelectasis")
    if _has(rng, "pleural_thickening"):
        spec.pleural_thickening_side = _pick(rng, ("left", "right", "bilateral"), (0.4, 0.4, 0.2))
    spec.hedges = tuple(hedges)
    return spec


def _check_arguments(n: int, seed: int, size: tuple[int, int, int], language: str, split: str) -> None:
    """Raise ``ValueError`` for a bad argument of :func:`generate_ct` before anything is written."""
    if n < 1:
        raise ValueError(f"n={n}: the phantom data set needs at least one study")
    if seed < 0:
        raise ValueError(f"seed={seed}: use a non-negative integer seed")
    if len(size) != 3 or min(size) < 8:
        raise ValueError(f"size={tuple(size)}: give (D, H, W), each at least 8 voxels")
    if split not in SPLIT_SCHEMES:
        raise ValueError(f"split={split!r}: choose one of {sorted(SPLIT_SCHEMES)}")
    check_ct_language(language)


def _prepare(out: Path) -> None:
    """Empty ``out`` of a previous phantom CT data set (other content is an error) and mark it as one."""
    if out.exists() and any(out.iterdir()):
        if not (out / "phantom.jsonl").is_file():
            raise FileExistsError(
                f"{out} is not empty and holds no phantom data set (no phantom.jsonl); choose an empty or new folder"
            )
        for name in ("volumes", "splits"):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in ("reports.csv", "labels.csv", "phantom.json"):
            (out / name).unlink(missing_ok=True)
    (out / "volumes").mkdir(parents=True, exist_ok=True)
    (out / "phantom.jsonl").write_text("")


def generate_ct(
    out: str | Path,
    n: int,
    seed: int = 0,
    size: tuple[int, int, int] | list[int] = (32, 64, 64),
    language: str = "en",
    split: str = "dia_llama",
    progress: bool = True,
) -> dict:
    """Write a phantom chest CT data set in the CTRG-Chest layout (``docs/data_ctrg_chest.md``).

    Files under ``out``: ``volumes/<id>.nii.gz`` (int16 HU, spacing :func:`ct_spacing` in the header),
    ``reports.csv`` (``id, finding, impression``; Chinese: ``id, finding_zh, impression_zh``), ``labels.csv``
    (CheXpert-14), ``splits/<split>-seed<seed>.json`` and ``phantom.jsonl`` (the spec of every study). Every study
    has its own seed sequence ``(seed, index)``, so the first ``k`` studies of ``n > k`` equal those of ``n = k``,
    and a study has the same volume, statements and labels in both languages.

    Args:
        out: output folder: new, empty, or a previous phantom CT data set (which is replaced).
        n: number of studies.
        seed: non-negative base seed (also the split seed).
        size: volume grid ``(D, H, W)``; the field of view is fixed (:data:`CT_FOV_MM`).
        language: ``en`` or ``zh``.
        split: split scheme of the written split file (``dia_llama`` 80/20, ``cmrg`` 7:1:2).
        progress: show a tqdm bar.

    Returns:
        ``{"out", "n": {split: count}, "findings": {finding: count, "normal": count}, "labels": {...}}``.
    """
    size = (int(size[0]), int(size[1]), int(size[2]))
    _check_arguments(n, seed, size, language, split)
    out = Path(out)
    _prepare(out)
    spacing = ct_spacing(size)
    specs, rows = [], []
    for index in tqdm(range(n), desc="phantom CT", unit="study", disable=not progress):
        study_id = f"phantom_ct_{index:05d}"
        spec_rng, volume_rng, report_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(seed, spawn_key=(index,)).spawn(3)
        )
        spec = sample_ct_study(spec_rng)
        write_nifti(out / "volumes" / f"{study_id}.nii.gz", render_ct(spec, volume_rng, size), spacing)
        specs.append(spec)
        rows.append((study_id, *write_ct_report(spec, report_rng, language)))
    write_reports_csv(out / "reports.csv", rows, language)
    labels = [ct_spec_labels(spec) for spec in specs]
    write_labels_csv(out / "labels.csv", ((row[0], values) for row, values in zip(rows, labels, strict=True)))
    with (out / "phantom.jsonl").open("w") as file:
        for row, spec in zip(rows, specs, strict=True):
            file.write(json.dumps({"id": row[0], **asdict(spec)}) + "\n")
    splits = make_split([row[0] for row in rows], split, seed)
    write_split(split_file(out, split, seed), splits, split, seed)
    counts = np.array(labels)
    return {
        "out": str(out),
        "n": {name: len(ids) for name, ids in splits.items()},
        "findings": {
            **{name: sum(name in spec.present_findings() for spec in specs) for name in _PREVALENCE},
            "normal": int((counts[:, -1] == 1).sum()),
        },
        "labels": {name: int((counts[:, i] == 1).sum()) for i, name in enumerate(CHEXPERT_14)},
        "size": list(size),
        "spacing_mm": list(spacing),
    }
