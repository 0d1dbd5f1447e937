"""Drawing of the phantom chest radiographs: :func:`render_frontal` and :func:`render_lateral`.

Drawing happens in *anatomical* coordinates ``(u, v)`` in image widths (``u`` left to right, ``v`` top to bottom,
the thorax centred at ``u = 0.5``); each view maps its pixel grid to them through a random acquisition (tilt,
shift, zoom), so every shape is a vectorised function of ``(u, v)``. Pixel values come from a density map
(air ~0.06, lung ~0.2, soft tissue ~0.56, bone and metal higher) and a random exposure curve and noise.
Frontal images follow the radiological convention: the patient's right is on the image left.
Lateral images show the patient facing left: anterior is on the image left.

The study comes from :mod:`radiolm.data.phantom.cxr`, which also writes the data set. See ``docs/phantom.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from radiolm.data.phantom.specs import StudySpec

__all__ = ["render_frontal", "render_lateral"]

_MM_PER_IMAGE_WIDTH = 400.0  # a 40 cm detector: pixel spacing is 400 / image_size mm

# Consolidation centre per lobe: (side, lateral distance from the midline in lung widths, height v);
# lateral view: (depth u, height v).
_LOBE_FRONTAL = {
    "RUL": ("right", 0.5, 0.27),
    "RML": ("right", 0.38, 0.56),
    "RLL": ("right", 0.6, 0.64),
    "LUL": ("left", 0.5, 0.30),
    "LLL": ("left", 0.68, 0.64),
}
_LOBE_LATERAL = {
    "RUL": (0.45, 0.28),
    "RML": (0.36, 0.52),
    "RLL": (0.62, 0.62),
    "LUL": (0.42, 0.32),
    "LLL": (0.64, 0.64),
}

# Frontal anatomy, in image widths.
_APEX = 0.13  # lung apex height
_LUNG_W = 0.34  # lateral extent of one lung from the midline, times body_scale
_DOME = 0.07  # height of the diaphragm dome above the costophrenic angle
_BASE = {"right": 0.74, "left": 0.76}  # costophrenic angle height
_RIB_TOP, _RIB_GAP, _RIB_BEND = 0.10, 0.06, 1.1  # posterior rib k lies on v = top + k * gap + bend * x**2
_EDGE = 0.004  # half width of a soft edge
_TILE_PIXELS = 16384  # pixels drawn at once (64 KiB float32 arrays)


# ----------------------------------------------------------------------------------------------------------------
# Drawing primitives


@dataclass(frozen=True)
class _Acquisition:
    """Nuisance of one image: in-plane tilt, shift and zoom, exposure curve, noise level."""

    angle: float
    shift: tuple[float, float]
    zoom: float
    gamma: float
    contrast: float
    brightness: float
    noise: float


def _acquisition(rng: np.random.Generator) -> _Acquisition:
    """Draw the nuisance; always the same number of draws, whatever the spec."""
    return _Acquisition(
        angle=float(np.deg2rad(rng.uniform(-3.0, 3.0))),
        shift=(float(rng.uniform(-0.025, 0.025)), float(rng.uniform(-0.025, 0.025))),
        zoom=float(rng.uniform(0.95, 1.05)),
        gamma=float(rng.uniform(0.8, 1.25)),
        contrast=float(rng.uniform(0.85, 1.15)),
        brightness=float(rng.uniform(-0.05, 0.05)),
        noise=float(rng.uniform(0.008, 0.03)),
    )


@dataclass(frozen=True)
class _Tile:
    """A block of image rows: anatomical coordinates of its pixels and the smooth textures there."""

    u: np.ndarray
    v: np.ndarray
    texture: np.ndarray  # smooth noise of the soft tissue and the consolidation
    vessel_phase: tuple[float, float]  # right, left


def _grid(size: int, acq: _Acquisition, rows: slice) -> tuple[np.ndarray, np.ndarray]:
    """Anatomical coordinates ``(u, v)`` of the pixel centres in ``rows``, each ``[len(rows), size]`` float32."""
    p = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    x = (p[None, :] - acq.shift[0]) / acq.zoom
    y = (p[rows, None] - acq.shift[1]) / acq.zoom
    cos, sin = np.float32(np.cos(acq.angle)), np.float32(np.sin(acq.angle))
    return cos * x + sin * y + 0.5, cos * y - sin * x + 0.5


def _ramp(d: np.ndarray, eps: float = _EDGE) -> np.ndarray:
    """Soft inside-indicator of ``d > 0``: 0 below ``-eps``, 1 above ``eps``, linear between."""
    inside = d * (0.5 / eps)
    inside += 0.5
    return np.clip(inside, 0.0, 1.0, out=inside)


def _ellipse(
    u: np.ndarray, v: np.ndarray, centre: tuple[float, float], radii: tuple[float, float], soft: float = 0.05
) -> np.ndarray:
    """Soft filled ellipse."""
    return _ramp(1.0 - ((u - centre[0]) / radii[0]) ** 2 - ((v - centre[1]) / radii[1]) ** 2, soft)


def _box(
    u: np.ndarray, v: np.ndarray, centre: tuple[float, float], radii: tuple[float, float], soft: float = 0.15
) -> np.ndarray:
    """Rounded box: the superellipse ``|du / ru|^4 + |dv / rv|^4 < 1``."""
    du, dv = ((u - centre[0]) / radii[0]) ** 2, ((v - centre[1]) / radii[1]) ** 2
    return _ramp(1.0 - du * du - dv * dv, soft)


def _stripes(t: np.ndarray, period: float, on: float) -> np.ndarray:
    """1 on the first ``on`` of every ``period`` of ``t``, else 0 (cheaper than ``np.mod``)."""
    phase = t * (1.0 / period)
    return ((phase - np.floor(phase)) < on / period).astype(np.float32)


def _texture(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: ``cells`` x ``cells`` random values, bicubic upsampling."""
    coarse = rng.random((cells, cells), dtype=np.float32)
    return np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC))


def _curve(u: np.ndarray, v: np.ndarray, knots_v: tuple, knots_u: tuple, half_width: float) -> np.ndarray:
    """Soft line along the curve ``u = f(v)`` through the knots (``knots_v`` increasing), for ``v`` in range."""
    centre = np.interp(v, knots_v, knots_u).astype(np.float32)
    slope = np.interp(v, knots_v[1:], np.diff(knots_u) / np.diff(knots_v)).astype(np.float32)
    inside = _ramp(v - knots_v[0], 0.002) * _ramp(knots_v[-1] - v, 0.002)
    return _ramp(half_width - np.abs(u - centre) / np.sqrt(1 + slope**2), 0.002) * inside


def _patches(blob: np.ndarray, texture: np.ndarray) -> np.ndarray:
    """Patchy airspace opacity: a soft blob modulated by smooth noise, at most 0.9."""
    return np.clip(blob * (0.45 + 0.55 * texture) * 1.3, 0.0, 0.9)


def _render(
    density: Callable[[StudySpec, _Tile], np.ndarray], spec: StudySpec, rng: np.random.Generator, size: int
) -> np.ndarray:
    """Draw the nuisance and textures from ``rng`` (a fixed number of draws), then the density block by block.

    Blocks keep every temporary array under 64 KiB, which avoids a page-faulting allocation per array operation
    and halves the drawing time.
    """
    acq = _acquisition(rng)
    noise = rng.standard_normal((size, size), dtype=np.float32)
    texture = _texture(rng, size, 9)
    right, left = rng.uniform(0, 2 * np.pi, 2).tolist()
    image = np.empty((size, size), dtype=np.uint8)
    step = max(1, _TILE_PIXELS // size)
    for top in range(0, size, step):
        rows = slice(top, top + step)
        tile = _Tile(*_grid(size, acq, rows), texture[rows], (right, left))
        image[rows] = _to_uint8(density(spec, tile), acq, noise[rows])
    return image


def _to_uint8(density: np.ndarray, acq: _Acquisition, noise: np.ndarray) -> np.ndarray:
    """Exposure curve, contrast, brightness and gaussian noise, then 8 bits."""
    image = np.clip(density, 0.0, 1.0) ** acq.gamma
    image = (image - 0.5) * acq.contrast + 0.5 + acq.brightness + acq.noise * noise
    return (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _side_mask(u: np.ndarray, side: str | None) -> np.ndarray | float:
    """1 on the patient's ``side`` of a frontal image (right is the image left), both for ``bilateral``."""
    if side == "bilateral":
        return 1.0
    return ((u < 0.5) if side == "right" else (u >= 0.5)).astype(np.float32)


def _combine(opacities: list[np.ndarray | float]) -> np.ndarray | float:
    """Fraction of lung air replaced by at least one of the opacities (each in [0, 1])."""
    clear: np.ndarray | float = 1.0
    for opacity in opacities:
        clear = clear * (1.0 - opacity)
    return 1.0 - clear


# ----------------------------------------------------------------------------------------------------------------
# Frontal view


class _Frontal:
    """Anatomy of one frontal image in mirrored coordinates: ``x = |u - 0.5|`` is the distance from the midline."""

    def __init__(self, spec: StudySpec, tile: _Tile) -> None:
        self.spec, self.tile, self.u, self.v = spec, tile, tile.u, tile.v
        self.x = np.abs(self.u - 0.5)
        self.width = _LUNG_W * spec.body_scale
        self.base = _BASE["right"] + (_BASE["left"] - _BASE["right"]) * _side_mask(self.u, "left")
        self.lung = self.lung_field(0.0)

    def lateral_border(self, shrink: float) -> np.ndarray:
        """x of the lung's lateral border at each height (a pneumothorax shrinks the lung by ``shrink``)."""
        return (self.width - shrink) * np.sqrt(np.clip((self.v - _APEX - shrink) / 0.3, 0.0, 1.0))

    def diaphragm(self) -> np.ndarray:
        """Height of the diaphragm: a dome per side, lowest at the lateral costophrenic angle."""
        half = 0.5 * self.width
        return self.base - _DOME * np.clip(1.0 - ((self.x - half) / half) ** 2, 0.0, 1.0)

    def lung_field(self, shrink: float) -> np.ndarray:
        """Soft mask of both lung fields (shrunk by ``shrink`` around a pneumothorax)."""
        return _ramp(self.lateral_border(shrink) - self.x) * _ramp(self.diaphragm() - self.v) * _ramp(self.x - 0.03)

    def heart(self) -> np.ndarray:
        """Cardiac silhouette, two thirds left of the midline; its width is ``ctr`` times the thorax width."""
        width = self.spec.ctr * 2 * self.width
        half_height = 0.125 + 0.15 * (self.spec.ctr - 0.42)
        heart = _ellipse(self.u, self.v, (0.5 + 0.17 * width, 0.61), (width / 2, half_height))
        return heart * _ramp(_BASE["left"] + 0.02 - self.v, 0.01)

    def mediastinum(self) -> np.ndarray:
        """Mediastinal band and aortic knob, wider above the heart when the mediastinum is widened."""
        bulge = 0.045 if self.spec.mediastinum_widened else 0.0
        half_width = 0.05 + bulge * _ramp(0.17 - np.abs(self.v - 0.32), 0.04)
        band = _ramp(half_width - np.abs(self.u - 0.505)) * _ramp(0.62 - self.v, 0.02)
        knob = _ellipse(self.u, self.v, (0.545 + bulge, 0.29), (0.035, 0.035))
        return np.maximum(band, knob)

    def ribs(self) -> np.ndarray:
        """Posterior ribs as one periodic pattern; the fractured rib gets a gap and a displaced fragment."""
        spec, x = self.spec, self.x
        phase = (self.v - _RIB_TOP - _RIB_BEND * x**2) / _RIB_GAP
        region = _ramp(x - 0.05, 0.01) * _ramp(self.width + 0.02 - x, 0.01) * (phase > 0) * (phase < 10)
        gap = 0.0
        if spec.fracture_side and spec.fracture_rib:
            k, at = spec.fracture_rib - 1, 0.55 * self.width
            on_rib = _side_mask(self.u, spec.fracture_side) * (phase > k + 0.2) * (phase < k + 1.2)
            phase = phase - 0.5 * on_rib * (x > at)
            gap = on_rib * _ramp(0.025 - np.abs(x - at), 0.002)
        offset = np.abs(phase - np.floor(phase) - 0.5)
        return _ramp(0.16 - offset, 0.04) * region * (1.0 - gap)

    def clavicles(self) -> np.ndarray:
        """Two bright bars rising laterally from the sternal ends."""
        height = 0.17 - 0.2 * (self.x - 0.04)
        return _ramp(0.012 - np.abs(self.v - height)) * _ramp(self.x - 0.035, 0.01) * _ramp(self.width - self.x, 0.02)

    def markings(self) -> np.ndarray:
        """Vessels radiating from the hila, fading towards the periphery."""
        right, left = self.tile.vessel_phase
        dx, dv = self.x - 0.09, self.v - 0.45
        r = np.sqrt(dx**2 + dv**2)
        angle = np.arctan2(dv, dx) * 13 + 10 * r + right + (left - right) * _side_mask(self.u, "left")
        vessel = (0.5 + 0.5 * np.cos(angle)) ** 2
        return vessel * vessel * vessel * np.exp(-r / 0.2)

    def effusion(self) -> np.ndarray | float:
        """Fluid rising from the base with a meniscus that climbs the lateral wall."""
        spec = self.spec
        if not (spec.effusion_side and spec.effusion_amount):
            return 0.0
        level = {"small": 0.05, "moderate": 0.14, "large": 0.26}[spec.effusion_amount]
        top = self.base - level - 0.05 * (self.x / self.width) ** 2
        return _ramp(self.v - top, 0.01) * _side_mask(self.u, spec.effusion_side)

    def consolidation(self) -> np.ndarray | float:
        """Patchy opacity centred on the lobe (``_LOBE_FRONTAL``)."""
        if not self.spec.consolidation_lobe:
            return 0.0
        side, lateral, height = _LOBE_FRONTAL[self.spec.consolidation_lobe]
        blob = _ellipse(self.x, self.v, (lateral * self.width, height), (0.09, 0.075), soft=0.8)
        return _patches(blob, self.tile.texture) * _side_mask(self.u, side)

    def edema(self) -> np.ndarray | float:
        """Bilateral perihilar haze (bat wing), plus Kerley B lines at the lateral bases."""
        if not self.spec.edema:
            return 0.0
        strength = {"mild": 0.45, "moderate": 0.7}[self.spec.edema]
        haze = strength * np.exp(-(((self.x - 0.08) / 0.17) ** 2) - ((self.v - 0.47) / 0.18) ** 2)
        if not self.spec.kerley_lines:
            return haze
        lines = _stripes(self.v, 0.028, 0.008) * _ramp(0.05 - (self.lateral_border(0.0) - self.x), 0.005)
        return np.maximum(haze, 0.8 * lines * self.lung * (self.v > 0.52))

    def atelectasis(self) -> np.ndarray | float:
        """Plate-like band a little above the dome, slightly oblique."""
        if not self.spec.atelectasis_side:
            return 0.0
        height = self.base - 0.13 + 0.06 * (self.x / self.width - 0.5)
        band = _ramp(0.011 - np.abs(self.v - height), 0.003)
        extent = _ramp(self.x - 0.06, 0.01) * _ramp(0.85 * self.width - self.x, 0.01)
        return 0.9 * band * extent * _side_mask(self.u, self.spec.atelectasis_side)

    def nodule(self) -> np.ndarray | float:
        """Solid disc of the nodule's diameter at its position."""
        spec = self.spec
        if spec.nodule_mm is None or spec.nodule_x is None or spec.nodule_v is None:
            return 0.0
        radius = spec.nodule_mm / _MM_PER_IMAGE_WIDTH / 2
        u = 0.5 + (-1 if spec.nodule_side == "right" else 1) * spec.nodule_x * self.width
        return _ramp(radius - np.sqrt((self.u - u) ** 2 + (self.v - spec.nodule_v) ** 2), 0.002)

    def pneumothorax(self) -> tuple[np.ndarray | float, np.ndarray | float]:
        """Air around the collapsed lung and the visceral pleural line at its edge."""
        spec = self.spec
        if not (spec.pneumothorax_side and spec.pneumothorax_size):
            return 0.0, 0.0
        shrink = {"small": 0.045, "large": 0.11}[spec.pneumothorax_size]
        side = _side_mask(self.u, spec.pneumothorax_side)
        collapsed = self.lung_field(shrink)
        line = _ramp(0.005 - np.abs(self.lateral_border(shrink) - self.x), 0.002) * (self.v > _APEX + shrink)
        return self.lung * (1.0 - collapsed) * side, line * self.lung * side

    def devices(self) -> np.ndarray | float:
        """Endotracheal tube in the trachea, right jugular line to the SVC, left pacemaker with its lead."""
        u, v, devices = self.u, self.v, self.spec.devices
        metal: np.ndarray | float = 0.0
        if "ett" in devices:
            metal = metal + 0.4 * _ramp(0.006 - np.abs(u - 0.5), 0.002) * _ramp(0.235 - v, 0.005)
        if "cvc" in devices:
            metal = metal + 0.45 * _curve(u, v, (0.0, 0.12, 0.22, 0.32), (0.41, 0.425, 0.47, 0.475), 0.004)
        if "pacemaker" in devices:
            box = 0.5 + 0.23 * self.spec.body_scale
            generator = _box(u, v, (box, 0.2), (0.045, 0.032))
            lead = _curve(u, v, (0.2, 0.26, 0.34, 0.5, 0.64), (box - 0.02, 0.6, 0.48, 0.45, 0.56), 0.0035)
            metal = metal + 0.75 * generator + 0.45 * lead
        return metal


def render_frontal(spec: StudySpec, rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """Draw the frontal (PA) view of a study.

    The nuisance (tilt, shift, zoom, exposure, noise, textures) comes from ``rng`` with a fixed number of draws,
    so two specs rendered with equal generators differ only where their findings differ.

    Args:
        spec: the study.
        rng: nuisance generator.
        size: image height and width in pixels.

    Returns:
        ``[size, size]`` uint8 image.
    """
    return _render(_frontal_density, spec, rng, size)


def _frontal_density(spec: StudySpec, tile: _Tile) -> np.ndarray:
    """Density of one block of a frontal image: anatomy, then opacities, bones, nodule and devices."""
    u, v, a = tile.u, tile.v, _Frontal(spec, tile)
    body = np.maximum(
        _ellipse(u, v, (0.5, 0.6), (0.45 * spec.body_scale, 0.56), soft=0.15), _ramp(0.1 - np.abs(u - 0.5), 0.01)
    )
    soft_tissue = np.maximum(a.heart(), a.mediastinum())
    air_around, pleural_line = a.pneumothorax()
    opacity = _combine([a.effusion(), a.consolidation(), a.edema(), a.atelectasis()])
    air = a.lung * (1.0 - soft_tissue)
    trachea = _ramp(0.014 - np.abs(u - 0.5), 0.003) * _ramp(0.34 - v, 0.01)
    spine = _ramp(0.038 - np.abs(u - 0.5), 0.006) * (0.75 + 0.25 * _stripes(v, 0.055, 0.045))
    density = 0.06 + 0.5 * body + 0.04 * (tile.texture - 0.5) * body
    density -= 0.37 * air * (1.0 - opacity) + 0.16 * trachea + 0.09 * air_around
    density += 0.07 * a.markings() * air * (1.0 - opacity) * (1.0 - air_around) + 0.1 * opacity * a.lung
    density += 0.1 * spine * body + 0.22 * a.clavicles() + 0.12 * a.ribs() + 0.25 * pleural_line
    return density + 0.38 * a.nodule() + a.devices()


# ----------------------------------------------------------------------------------------------------------------
# Lateral view


class _Lateral:
    """Anatomy of one lateral image: anterior is the image left, both lungs overlap in one field."""

    def __init__(self, spec: StudySpec, tile: _Tile) -> None:
        self.spec, self.tile, self.u, self.v = spec, tile, tile.u, tile.v
        self.depth = 0.24 * spec.body_scale  # half depth of the lung field
        self.lung = self.lung_field()

    def diaphragm(self) -> np.ndarray:
        """Dome highest in front of the middle, lowest in the posterior costophrenic sulcus."""
        return 0.64 + 1.4 * (self.u - 0.42) ** 2

    def lung_field(self) -> np.ndarray:
        """Soft mask of the overlapping lung fields above the diaphragm."""
        return _box(self.u, self.v, (0.5, 0.5), (self.depth, 0.37), soft=0.1) * _ramp(self.diaphragm() - self.v)

    def heart(self) -> np.ndarray:
        """Heart behind the sternum, reaching further back with a larger ``ctr``."""
        radius = 0.13 * self.spec.ctr / 0.42
        heart = _ellipse(self.u, self.v, (0.5 - self.depth + 0.02 + radius, 0.56), (radius, 0.13))
        return heart * _ramp(self.diaphragm() + 0.02 - self.v, 0.01)

    def spine(self) -> np.ndarray:
        """Vertebral bodies with disc spaces, behind the lung field."""
        centre = 0.5 + 1.05 * self.depth
        column = _ramp(0.035 * self.spec.body_scale - np.abs(self.u - centre), 0.005) * _ramp(self.v - 0.1, 0.01)
        return column * (0.6 + 0.4 * _stripes(self.v, 0.06, 0.048))

    def sternum(self) -> np.ndarray:
        """Thin bright anterior bar."""
        front = 0.5 - 1.08 * self.depth
        return _ramp(0.008 - np.abs(self.u - front), 0.003) * _ramp(0.2 - np.abs(self.v - 0.42), 0.01)

    def effusion(self) -> np.ndarray | float:
        """Fluid in the posterior costophrenic sulcus, its meniscus climbing the posterior wall."""
        spec = self.spec
        if not (spec.effusion_side and spec.effusion_amount):
            return 0.0
        level = {"small": 0.06, "moderate": 0.15, "large": 0.27}[spec.effusion_amount]
        level *= 1.2 if spec.effusion_side == "bilateral" else 1.0
        top = 0.8 - level - 0.06 * np.clip((self.u - 0.5) / self.depth, 0.0, 1.0)
        return _ramp(self.v - top, 0.01)

    def consolidation(self) -> np.ndarray | float:
        """Patchy opacity at the lobe's depth and height (``_LOBE_LATERAL``)."""
        if not self.spec.consolidation_lobe:
            return 0.0
        blob = _ellipse(self.u, self.v, _LOBE_LATERAL[self.spec.consolidation_lobe], (0.085, 0.075), soft=0.8)
        return _patches(blob, self.tile.texture)

    def edema(self) -> np.ndarray | float:
        """Central perihilar haze."""
        if not self.spec.edema:
            return 0.0
        strength = {"mild": 0.45, "moderate": 0.7}[self.spec.edema]
        return strength * np.exp(-(((self.u - 0.52) / 0.15) ** 2) - ((self.v - 0.46) / 0.17) ** 2)

    def atelectasis(self) -> np.ndarray | float:
        """Band a little above the posterior diaphragm."""
        if not self.spec.atelectasis_side:
            return 0.0
        band = _ramp(0.011 - np.abs(self.v - (self.diaphragm() - 0.1)), 0.003)
        return 0.9 * band * _ramp(0.12 - np.abs(self.u - 0.56), 0.01)

    def nodule(self) -> np.ndarray | float:
        """Disc at the nodule's height, mid depth."""
        spec = self.spec
        if spec.nodule_mm is None or spec.nodule_v is None:
            return 0.0
        radius = spec.nodule_mm / _MM_PER_IMAGE_WIDTH / 2
        return _ramp(radius - np.sqrt((self.u - 0.57) ** 2 + (self.v - spec.nodule_v) ** 2), 0.002)

    def devices(self) -> np.ndarray | float:
        """The same devices seen from the side."""
        u, v, devices = self.u, self.v, self.spec.devices
        metal: np.ndarray | float = 0.0
        if "ett" in devices:
            metal = metal + 0.4 * _curve(u, v, (0.0, 0.235), (0.5, 0.51), 0.006)
        if "cvc" in devices:
            metal = metal + 0.45 * _curve(u, v, (0.0, 0.15, 0.32), (0.5, 0.47, 0.45), 0.004)
        if "pacemaker" in devices:
            box = 0.5 - 1.2 * self.depth
            generator = _box(u, v, (box, 0.2), (0.02, 0.04))
            lead = _curve(u, v, (0.2, 0.3, 0.45, 0.62), (box + 0.01, 0.46, 0.44, 0.36), 0.0035)
            metal = metal + 0.75 * generator + 0.45 * lead
        return metal


def render_lateral(spec: StudySpec, rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """Draw the lateral view of a study (patient facing the image left).

    Shows heart size, effusion (posterior sulcus), consolidation (by lobe), nodule, edema, atelectasis and
    devices; pneumothorax, rib fracture and mediastinal widening are drawn on the frontal view only. The nuisance
    draws are the same as in :func:`render_frontal`.

    Args:
        spec: the study.
        rng: nuisance generator.
        size: image height and width in pixels.

    Returns:
        ``[size, size]`` uint8 image.
    """
    return _render(_lateral_density, spec, rng, size)


def _lateral_density(spec: StudySpec, tile: _Tile) -> np.ndarray:
    """Density of one block of a lateral image."""
    u, v, a = tile.u, tile.v, _Lateral(spec, tile)
    body = _ellipse(u, v, (0.53, 0.6), (0.37 * spec.body_scale, 0.56), soft=0.15)
    opacity = _combine([a.effusion(), a.consolidation(), a.edema(), a.atelectasis()])
    air = a.lung * (1.0 - a.heart()) * (1.0 - opacity)
    trachea = _curve(u, v, (0.0, 0.34), (0.5, 0.52), 0.013)
    density = 0.06 + 0.5 * body + 0.04 * (tile.texture - 0.5) * body
    density -= 0.34 * air + 0.14 * trachea
    density += 0.1 * opacity * a.lung + 0.16 * a.spine() + 0.18 * a.sternum() + 0.38 * a.nodule()
    return density + a.devices()
