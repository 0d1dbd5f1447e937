"""CT volume transforms (MONAI) and the papers' named presets.

A :class:`VolumeTransformConfig` says how a :class:`~radiolm.data.formats.volumes.Volume` becomes the model input
``[1, D, H, W]`` float32 in ``[0, 1]``: optional resampling to a voxel spacing, an intensity mapping (per-volume
min-max, or a Hounsfield window) and a geometry step (resize, or pad / crop around the centre).

Presets (:data:`VOLUME_PRESETS`):

* ``dia_llama``: min-max to ``[0, 1]`` and resize to 256 x 256 x 64 (H x W x D). Dia-LLaMA §3.1: "each volume
  is resized to 256 x 256 x 64"; the min-max scaling is RadFM's, whose ViT3D Dia-LLaMA adopts.
* ``dia_llama_hu``: the same resize after the HU window [-1000, 200] instead of min-max (an option: the paper does
  not name its intensity mapping).
* ``cmrg``: HU window, resample to 1.5 x 1.5 x 5 mm, pad / crop to 224 x 224 x 64 (CMRG-LLM §3.1: "the CT
  volumes are downsampled to 224 x 224 x 64 with a spacing of 1.5 x 1.5 x 5 mm^3").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from monai.transforms import Resize, ResizeWithPadOrCrop, ScaleIntensity, ScaleIntensityRange

from radiolm.data.formats.volumes import Volume
from radiolm.errors import DataError

__all__ = ["VOLUME_PRESETS", "VolumeTransform", "VolumeTransformConfig", "volume_preset"]


@dataclass(frozen=True)
class VolumeTransformConfig:
    """How a volume becomes the model input.

    Attributes:
        size: output ``(D, H, W)``.
        intensity: ``minmax`` (per-volume min-max to [0, 1]) or ``hu_window`` (clip ``window`` and scale to
            [0, 1]; for HU volumes, not for 8-bit slice images).
        window: ``(low, high)`` HU of ``hu_window``; default [-1000, 200] (air to soft tissue, the issue's
            default; the papers do not give one).
        spacing: resample to this voxel size ``(d, h, w)`` mm before the geometry step; ``None`` keeps the grid.
        geometry: ``resize`` (interpolate to ``size``) or ``pad_crop`` (centred zero pad / crop to ``size``,
            keeping the resampled spacing).
    """

    size: tuple[int, int, int] = (64, 256, 256)
    intensity: Literal["minmax", "hu_window"] = "minmax"
    window: tuple[float, float] = (-1000.0, 200.0)
    spacing: tuple[float, float, float] | None = None
    geometry: Literal["resize", "pad_crop"] = "resize"


VOLUME_PRESETS: dict[str, VolumeTransformConfig] = {
    # Dia-LLaMA §3.1: resized to 256 x 256 x 64; min-max intensity as RadFM.
    "dia_llama": VolumeTransformConfig(size=(64, 256, 256), intensity="minmax"),
    # Option: the Dia-LLaMA resize with an HU window instead of min-max.
    "dia_llama_hu": VolumeTransformConfig(size=(64, 256, 256), intensity="hu_window"),
    # CMRG-LLM §3.1: 224 x 224 x 64 at 1.5 x 1.5 x 5 mm.
    "cmrg": VolumeTransformConfig(
        size=(64, 224, 224), intensity="hu_window", spacing=(5.0, 1.5, 1.5), geometry="pad_crop"
    ),
}


def volume_preset(
    name: str,
    size: tuple[int, int, int] | list[int] | None = None,
    intensity: Literal["minmax", "hu_window"] | None = None,
    window: tuple[float, float] | list[float] | None = None,
) -> VolumeTransformConfig:
    """A named preset, optionally with another output size, intensity mapping or HU window.

    Raises:
        ValueError: for an unknown preset, a size that is not three positive integers, or an empty window.
    """
    if name not in VOLUME_PRESETS:
        raise ValueError(f"unknown volume preset {name!r}; choose one of {sorted(VOLUME_PRESETS)}")
    config = VOLUME_PRESETS[name]
    if size is not None:
        if len(size) != 3 or min(size) < 1:
            raise ValueError(f"volume size {list(size)}: give three positive integers (D, H, W)")
        config = replace(config, size=(int(size[0]), int(size[1]), int(size[2])))
    if intensity is not None:
        if intensity not in ("minmax", "hu_window"):
            raise ValueError(f"intensity {intensity!r}: use 'minmax' or 'hu_window'")
        config = replace(config, intensity=intensity)
    if window is not None:
        if len(window) != 2 or window[0] >= window[1]:
            raise ValueError(f"HU window {list(window)}: give (low, high) with low < high")
        config = replace(config, window=(float(window[0]), float(window[1])))
    return config


class VolumeTransform:
    """:class:`Volume` -> float32 tensor ``[1, D, H, W]`` in ``[0, 1]``, following a :class:`VolumeTransformConfig`.

    Args:
        config: the preset or custom settings.
    """

    def __init__(self, config: VolumeTransformConfig) -> None:
        self.config = config
        low, high = config.window
        self.intensity = (
            ScaleIntensity(minv=0.0, maxv=1.0)
            if config.intensity == "minmax"
            else ScaleIntensityRange(a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True)
        )
        self.geometry = (
            Resize(spatial_size=config.size, mode="trilinear")
            if config.geometry == "resize"
            else ResizeWithPadOrCrop(spatial_size=config.size)
        )

    def resampled_shape(self, shape: tuple[int, ...], spacing: tuple[float, float, float]) -> tuple[int, int, int]:
        """Grid size of a ``shape [D, H, W]`` volume at ``spacing`` after resampling to ``config.spacing``."""
        assert self.config.spacing is not None
        return tuple(  # type: ignore[return-value]
            max(1, round(n * s / t)) for n, s, t in zip(shape, spacing, self.config.spacing, strict=True)
        )

    def __call__(self, volume: Volume, source: str = "volume") -> torch.Tensor:
        """Transform one volume.

        Args:
            volume: array ``[D, H, W]`` and spacing.
            source: the file or study id, named in errors.

        Returns:
            float32 ``[1, *config.size]``.

        Raises:
            DataError: when the preset resamples and the volume has no spacing (``.npy``, slice folders).
        """
        image = torch.as_tensor(volume.array, dtype=torch.float32)[None]  # [1, D, H, W]
        image = torch.as_tensor(self.intensity(image))
        if self.config.spacing is not None:
            if volume.spacing is None:
                raise DataError(
                    f"{source}: the volume records no voxel spacing, which this preset needs to resample to "
                    f"{self.config.spacing} mm; convert it to NIfTI with `radiolm data prepare ctrg-chest "
                    "--spacing ...` or use a preset without resampling (dia_llama)."
                )
            target = self.resampled_shape(tuple(volume.array.shape), volume.spacing)
            if target != tuple(volume.array.shape):
                image = torch.as_tensor(Resize(spatial_size=target, mode="trilinear")(image))
        image = torch.as_tensor(self.geometry(image))
        return image.float().clamp_(0.0, 1.0).as_subclass(torch.Tensor).contiguous()
