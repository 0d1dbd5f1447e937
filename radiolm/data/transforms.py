"""Image transforms whose size and normalisation come from the vision encoder.

The DataModule never chooses image statistics itself: the model's :class:`ImageTransformConfig` is linked into
the DataModule by the CLI (``model.image_transform -> data.init_args.image_transform``), so a Swin-B from the hub,
a timm CNN trained from scratch and a local checkpoint each get the input they expect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from PIL import Image
from torchvision.transforms import v2

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ImageTransformConfig", "build_image_transform"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ImageTransformConfig:
    """What the encoder expects.

    Attributes:
        size: Square input size fed to the encoder.
        mean: Per-channel mean after scaling to [0, 1].
        std: Per-channel std.
        channels: 3 (grayscale X-rays are replicated) or 1.
        resize: Short side to resize to before cropping; ``None`` resizes straight to ``size x size``.
        train_crop: ``"random"`` crop for training (augmentation) or ``"center"``; evaluation always centre-crops.
    """

    size: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channels: int = 3
    resize: int | None = None
    train_crop: Literal["random", "center"] = "center"


def build_image_transform(cfg: ImageTransformConfig, train: bool) -> Callable[[Image.Image], torch.Tensor]:
    """PIL image (any mode) -> float tensor ``[channels, size, size]``, normalised."""
    if cfg.resize is None:
        geometry: list[object] = [v2.Resize((cfg.size, cfg.size), antialias=True)]
    else:
        crop = v2.RandomCrop(cfg.size) if train and cfg.train_crop == "random" else v2.CenterCrop(cfg.size)
        geometry = [v2.Resize(cfg.resize, antialias=True), crop]
    mode = "RGB" if cfg.channels == 3 else "L"
    return v2.Compose(
        [
            v2.Lambda(lambda im: im.convert(mode)),
            v2.PILToTensor(),
            *geometry,
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(cfg.mean), list(cfg.std)),
        ]
    )
