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

__all__ = [
    "BIOVIL",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NAMED_TRANSFORMS",
    "ImageTransformConfig",
    "build_image_transform",
    "named_image_transform",
]

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


BIOVIL = ImageTransformConfig(size=480, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), resize=512, train_crop="center")
"""BioViL's chest X-ray preprocessing, which the two-stage paper's ResNet-50 (§4: BioViL-T's encoder, ref. [3],
pretrained at 480 x 480) was trained with: resize the short side to 512, centre crop 480, scale to [0, 1], no
ImageNet normalisation (hi-ml-multimodal's ``create_chest_xray_transform_for_inference(512, 480)``); the grey image
is repeated to 3 channels. No augmentation: the paper names none."""

NAMED_TRANSFORMS: dict[str, ImageTransformConfig] = {"biovil": BIOVIL}
"""Preprocessing by name (a method's ``image_preprocessing``), where a paper's encoder fixes it, not the encoder's
own statistics."""


def named_image_transform(name: str, encoder_size: int) -> ImageTransformConfig:
    """The preprocessing called ``name`` (:data:`NAMED_TRANSFORMS`), checked against the encoder's input size.

    Args:
        name: A key of :data:`NAMED_TRANSFORMS`.
        encoder_size: The vision encoder's ``image_size``; it must equal the transform's output size.

    Raises:
        ValueError: for an unknown name, or a size the encoder was not built for.
    """
    if name not in NAMED_TRANSFORMS:
        raise ValueError(f"image_preprocessing: unknown {name!r}; use one of {sorted(NAMED_TRANSFORMS)} or null")
    cfg = NAMED_TRANSFORMS[name]
    if cfg.size != encoder_size:
        raise ValueError(
            f"image_preprocessing: {name} gives {cfg.size} x {cfg.size} images, the vision encoder's image_size is "
            f"{encoder_size}; set vision_encoder.init_args.image_size: {cfg.size}, or image_preprocessing: null for "
            "the encoder's own"
        )
    return cfg


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
