"""Phantom chest CT volumes whose voxels decide the report, written in the CTRG-Chest layout.

:func:`sample_ct_study` draws a :class:`~radiolm.data.report_grammar_ct.CTStudySpec` (findings with side, lobe, size
and amount), :func:`render_ct` turns it into Hounsfield units ``[D, H, W]`` int16 and
:func:`~radiolm.data.report_grammar_ct.write_ct_report` describes it. :func:`generate_ct` writes a data set that
:class:`~radiolm.data.ctrg_chest.CTRGChestDataModule` reads like the real CTRG-Chest-548K after
``radiolm data prepare ctrg-chest``. See ``docs/phantom.md`` (CT section).

Geometry: the field of view is 360 mm in-plane and 320 mm head-to-feet whatever the grid size, so the spacing is
``(320 / D, 360 / H, 360 / W)`` mm. Slice 0 is the lowest (lung bases), row 0 anterior, column 0 the patient's
right. Coordinates below are in [0, 1] of that field of view.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from radiolm.data.labels import CHEXPERT_14
from radiolm.data.report_grammar_ct import LOBES, CTStudySpec, check_ct_language, ct_spec_labels, write_ct_report
from radiolm.data.volumes import write_nifti

__all__ = ["CT_FOV_MM", "CTStudySpec", "ct_spacing", "generate_ct", "render_ct", "sample_ct_study"]

CT_FOV_MM: tuple[float, float, float] = (320.0, 360.0, 360.0)
"""Field of view ``(D, H, W)`` in mm of every phantom volume."""

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
# Lobe boxes: height range z and anterior (-1) to posterior (+1) range v within the lung's cross-section.
_LOBE_BOX = {
    "RUL": ((0.58, 0.80), (-0.7, 0.2)),
    "LUL": ((0.58, 0.80), (-0.7, 0.2)),
    "RML": ((0.36, 0.52), (-0.7, -0.1)),
    "RLL": ((0.18, 0.45), (0.1, 0.7)),
    "LLL": ((0.18, 0.45), (0.1, 0.7)),
}
_EFFUSION = {"small": (0.2, 0.40), "moderate": (0.35, 0.58), "large": (0.55, 0.78)}  # (AP fraction, top height)
_PNEUMOTHORAX = {"small": 0.2, "large": 0.42}  # anterior fraction of the hemithorax that is free air
_HU = {"air": -1000, "lung": -860, "fat": -100, "soft": 40, "fluid": 12, "bone": 450}


def ct_spacing(size: tuple[int, int, int]) -> tuple[float, float, float]:
    """Voxel spacing in mm ``(d, h, w)`` of a phantom volume of ``size (D, H, W)``."""
    return tuple(round(fov / n, 4) for fov, n in zip(CT_FOV_MM, size, strict=True))  # type: ignore[return-value]


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
        (z0, z1), (v0, v1) = _LOBE_BOX[spec.nodule_lobe]
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


# ----------------------------------------------------------------------------------------------------------------
# Rendering


def _smooth_field(rng: np.random.Generator, size: tuple[int, int, int], cells: tuple[int, int, int]) -> np.ndarray:
    """Smooth random field in [0, 1] of ``size``: uniform noise on a coarse ``cells`` grid, trilinearly upsampled."""
    coarse = torch.from_numpy(rng.random(cells, dtype=np.float32))[None, None]
    return F.interpolate(coarse, size=size, mode="trilinear", align_corners=True)[0, 0].numpy()


def _lung_scale(z: np.ndarray | float) -> np.ndarray:
    """Relative size of a lung's cross-section at height ``z``: widest near the base, zero at the apex (0.95)."""
    t = np.clip((np.asarray(z) - 0.1) / 0.85, 0.0, 1.0)
    return np.sqrt(np.clip(1.0 - ((t - 0.35) / 0.65) ** 2, 0.0, 1.0)) * (np.asarray(z) < 0.95)


def _lung_frame(body_scale: float, side: str, z: np.ndarray | float) -> tuple[float, np.ndarray, np.ndarray]:
    """Centre x and half-axes (x, y) of one lung's elliptic cross-section at height ``z`` (centre y is 0.5)."""
    scale = np.maximum(_lung_scale(z), 1e-3)
    cx = 0.5 + (0.19 if side == "left" else -0.19) * body_scale
    return cx, 0.12 * body_scale * scale, 0.2 * body_scale * scale


def _ellipsoid(
    z: np.ndarray, y: np.ndarray, x: np.ndarray, center: tuple[float, ...], radii: tuple[float, ...]
) -> np.ndarray:
    """Boolean mask of an axis-aligned ellipsoid (normalized field-of-view units)."""
    return ((z - center[0]) / radii[0]) ** 2 + ((y - center[1]) / radii[1]) ** 2 + (
        (x - center[2]) / radii[2]
    ) ** 2 <= 1.0


def render_ct(spec: CTStudySpec, rng: np.random.Generator, size: tuple[int, int, int] = (32, 64, 64)) -> np.ndarray:
    """Draw a study as Hounsfield units.

    Args:
        spec: the study.
        rng: nuisance (vessel pattern, emphysema / ground-glass patches, noise).
        size: ``(D, H, W)``.

    Returns:
        int16 ``[D, H, W]`` in HU (air -1000, lung about -860, soft tissue 40, fluid 12, bone 450).
    """
    d, h, w = size
    z = ((np.arange(d, dtype=np.float32) + 0.5) / d)[:, None, None]
    y = ((np.arange(h, dtype=np.float32) + 0.5) / h)[None, :, None]
    x = ((np.arange(w, dtype=np.float32) + 0.5) / w)[None, None, :]
    hu = np.full(size, _HU["air"], dtype=np.float32)
    s = spec.body_scale
    # body: fat rim, soft tissue, ribs, spine
    body_r = ((x - 0.5) / (0.40 * s)) ** 2 + ((y - 0.52) / (0.29 * s)) ** 2
    hu[np.broadcast_to(body_r <= 1.0, size)] = _HU["fat"]
    hu[np.broadcast_to(body_r <= 0.86, size)] = _HU["soft"]
    ribs = (body_r > 0.72) & (body_r <= 0.80) & (np.sin(2 * np.pi * 7 * z) > 0.35) & (y > 0.35)
    hu[ribs] = _HU["bone"]
    spine_y = 0.52 + 0.29 * s * 0.7
    hu[np.broadcast_to((x - 0.5) ** 2 + (y - spine_y) ** 2 <= 0.045**2, size)] = _HU["bone"]
    # heart (the lungs leave room for it) and great vessels
    hs = spec.heart_scale
    heart = _ellipsoid(z, y, x, (0.3, 0.40, 0.54), (0.15 * hs, 0.12 * hs, 0.13 * hs))
    # lungs: one ellipse per side whose cross-section shrinks towards the apex, above a dome-shaped diaphragm
    vessels = _smooth_field(rng, size, (max(2, d // 3), max(2, h // 6), max(2, w // 6))) > 0.82
    lungs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    scale = _lung_scale(z)
    for side in ("right", "left"):
        cx, lx, ly = _lung_frame(s, side, z)
        u, v = (x - cx) / lx, (y - 0.5) / ly  # [-1, 1] inside the lung: u medial-lateral, v anterior-posterior
        radial = u**2 + v**2
        dome = 0.1 + 0.12 * np.clip(1.0 - radial, 0.0, 1.0) + (0.03 if side == "right" else 0.0)
        mask = (radial <= 1.0) & (z > dome) & (scale > 0) & ~heart
        lungs[side] = (mask, u, v)
        hu[mask] = _HU["lung"]
        hu[mask & vessels] = -250.0
    hu[heart] = _HU["soft"]
    upper = (z > 0.45) & (z < 0.8)
    hu[np.broadcast_to(upper & ((x - 0.53) ** 2 + (y - 0.42) ** 2 <= 0.035**2), size)] = 45.0  # ascending aorta
    hu[np.broadcast_to((z < 0.8) & ((x - 0.56) ** 2 + (y - 0.6) ** 2 <= 0.03**2), size)] = 45.0  # descending aorta
    hu[np.broadcast_to((z > 0.55) & ((x - 0.5) ** 2 + (y - 0.45) ** 2 <= 0.025**2), size)] = _HU["air"]  # trachea
    _draw_findings(spec, rng, hu, lungs, z, size)
    hu += rng.normal(0.0, 12.0, size).astype(np.float32)
    return np.clip(np.round(hu), -1024, 3071).astype(np.int16)


def _draw_findings(
    spec: CTStudySpec,
    rng: np.random.Generator,
    hu: np.ndarray,
    lungs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    z: np.ndarray,
    size: tuple[int, int, int],
) -> None:
    """Paint the findings of ``spec`` into ``hu`` in place (lung masks and in-lung coordinates from the caller)."""

    def sides(value: str | None) -> tuple[str, ...]:
        return ("left", "right") if value == "bilateral" else ((value,) if value else ())

    side_of = {"R": "right", "L": "left"}
    # pleura first; parenchymal changes only where lung remains; focal lesions last, over anything
    for side in sides(spec.pleural_thickening_side):
        mask, u, v = lungs[side]
        hu[mask & (u**2 + v**2 > 0.82) & (v > -0.2) & (z > 0.2) & (z < 0.75)] = 50.0
    for side in sides(spec.effusion_side):
        mask, u, v = lungs[side]
        depth, top = _EFFUSION[spec.effusion_amount or "small"]
        hu[mask & (v > 1.0 - 2.0 * depth) & (z < top)] = _HU["fluid"]
    if spec.pneumothorax_side:
        mask, u, v = lungs[spec.pneumothorax_side]
        hu[mask & (v < -1.0 + 2.0 * _PNEUMOTHORAX[spec.pneumothorax_size or "small"])] = _HU["air"]

    if spec.emphysema:
        holes = _smooth_field(rng, size, (max(2, size[0] // 2), max(2, size[1] // 5), max(2, size[2] // 5)))
        fraction = 0.25 if spec.emphysema == "mild" else 0.6
        for mask, _, _ in lungs.values():
            hu[mask & (hu < -200) & (z > 0.5) & (holes > 1.0 - fraction)] = -985.0
    if spec.ground_glass:
        patches = _smooth_field(rng, size, (max(2, size[0] // 3), max(2, size[1] // 6), max(2, size[2] // 6)))
        for mask, _, _ in lungs.values():
            hu[mask & (hu < -200) & (hu > -990) & (z < 0.45) & (patches > 0.5)] = -600.0
    for lobe_field, radius in ((spec.consolidation_lobe, None), (spec.nodule_lobe, spec.nodule_mm)):
        if not lobe_field:
            continue
        mask, u, v = lungs[side_of[lobe_field[0]]]
        (z0, z1), (v0, v1) = _LOBE_BOX[lobe_field]
        if radius is None:  # consolidation: an ellipsoid filling the middle of the lobe box
            blob = (
                ((z - (z0 + z1) / 2) / ((z1 - z0) * 0.45)) ** 2 + ((v - (v0 + v1) / 2) / 0.45) ** 2 + u**2 / 0.5
            ) <= 1
            hu[mask & blob] = 35.0
        else:  # nodule: a sphere of ``nodule_mm`` at its centre
            assert spec.nodule_center is not None
            cz, cv, cu = spec.nodule_center
            cx, lx, ly = _lung_frame(spec.body_scale, side_of[lobe_field[0]], cz)
            centre = (cz, float(0.5 + cv * ly), float(cx + cu * lx))
            # at least 0.9 voxel per axis (> sqrt(3) / 2), so that the nearest voxel centre is always inside and a
            # small nodule on a coarse grid still shows
            radii = tuple(max((radius / 2) / fov, 0.9 / n) for fov, n in zip(CT_FOV_MM, size, strict=True))
            grid_y = ((np.arange(size[1], dtype=np.float32) + 0.5) / size[1])[None, :, None]
            grid_x = ((np.arange(size[2], dtype=np.float32) + 0.5) / size[2])[None, None, :]
            sphere = _ellipsoid(z, grid_y, grid_x, centre, radii)
            hu[sphere] = 40.0
    if spec.atelectasis_side:
        mask, u, v = lungs[spec.atelectasis_side]
        hu[mask & (z > 0.15) & (z < 0.32) & (v > 0.5) & (v < 0.85)] = 30.0


# ----------------------------------------------------------------------------------------------------------------
# Data set writer


def _check_arguments(n: int, seed: int, size: tuple[int, int, int], language: str, split: str) -> None:
    """Raise ``ValueError`` for a bad argument of :func:`generate_ct` before anything is written."""
    from radiolm.data.ctrg_chest import SPLIT_SCHEMES

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
    from radiolm.data.ctrg_chest import make_split, report_columns, split_file, write_split

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
    with (out / "reports.csv").open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["id", *report_columns(language)])
        writer.writerows(rows)
    labels = [ct_spec_labels(spec) for spec in specs]
    with (out / "labels.csv").open("w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["id", *CHEXPERT_14])
        writer.writerows([row[0], *values] for row, values in zip(rows, labels, strict=True))
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
