"""Drawing of the phantom chest CT: :func:`render_ct` turns a :class:`CTStudySpec` into Hounsfield units.

Geometry: the field of view is 360 mm in-plane and 320 mm head-to-feet whatever the grid size, so the spacing is
``(320 / D, 360 / H, 360 / W)`` mm (:func:`ct_spacing`). Slice 0 is the lowest (lung bases), row 0 anterior,
column 0 the patient's right. Coordinates below are in [0, 1] of that field of view.

The study comes from :mod:`radiolm.data.phantom.ct`, which also writes the data set. See ``docs/phantom.md``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from radiolm.data.phantom.specs import CTStudySpec

__all__ = ["CT_FOV_MM", "LOBE_BOX", "ct_spacing", "render_ct"]

CT_FOV_MM: tuple[float, float, float] = (320.0, 360.0, 360.0)
"""Field of view ``(D, H, W)`` in mm of every phantom volume."""

# Lobe boxes: height range z and anterior (-1) to posterior (+1) range v within the lung's cross-section.
LOBE_BOX = {
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
        (z0, z1), (v0, v1) = LOBE_BOX[lobe_field]
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
