"""VisionEncoder: images ``[N, C, H, W]`` -> visual tokens ``[N, L, D]`` (timm or Hugging Face backbones)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from radiolm.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageTransformConfig
from radiolm.errors import MissingAssetError, RadioLMError, unreachable_reason
from radiolm.parts.trainable import Trainable, apply_trainable

__all__ = ["VisionEncoder", "default_lora_targets", "mae_sincos_position_embeddings"]

# R2GenGPT delta tunes the query and value projections of the encoder (§3 "Delta Alignment"). HF Swin / ViT name
# them `query`/`value` (transformers 4) or `q_proj`/`v_proj` (transformers 5); timm ViTs fuse q, k and v into one
# `qkv` linear, so LoRA there adapts all three.
QUERY_VALUE_NAMES = (["q_proj", "v_proj"], ["query", "value"], ["qkv"])


def default_lora_targets(model: nn.Module) -> list[str]:
    """The query / value projection names that ``model`` uses."""
    suffixes = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    for names in QUERY_VALUE_NAMES:
        if set(names) <= suffixes:
            return names
    raise ValueError("no query/value projections found; set lora_target_modules explicitly")


class VisionEncoder(nn.Module):
    """A pretrained image backbone whose last-layer grid features are the visual tokens (R2GenGPT §3, Eq. 1).

    Args:
        name: timm model name (``backend: timm``) or HF hub id / local folder (``backend: hf``); with
            ``backend: hf`` and ``pretrained: false`` also a transformers model type (``vit_mae``) whose config is
            built from ``model_kwargs``. A ViT-MAE gives its patch tokens in patch order, unmasked, without CLS.
        backend: ``timm``, ``hf``, or ``auto`` (``hf`` when ``name`` contains a ``/`` or is a folder).
        pretrained: Load pretrained weights; ``False`` builds the architecture with random weights (from the
            timm name, or from the ``config.json`` of an HF id / folder).
        checkpoint_path: timm only: local weights file used instead of a hub download.
        trainable: ``frozen`` (R2GenGPT shallow), ``lora`` (delta) or ``full`` (deep).
        lora_rank: LoRA rank (R2GenGPT: 16).
        lora_alpha: LoRA alpha (R2GenGPT: 16).
        lora_dropout: LoRA dropout (R2GenGPT code: 0.1).
        lora_target_modules: Module-name suffixes to adapt; default the query and value projections.
        image_size: Input size; default the backbone's own.
        model_kwargs: Extra keyword arguments for ``timm.create_model`` or the HF config.
    """

    def __init__(
        self,
        name: str,
        backend: Literal["auto", "timm", "hf"] = "auto",
        pretrained: bool = True,
        checkpoint_path: str | None = None,
        trainable: Trainable = "frozen",
        lora_rank: int = 16,
        lora_alpha: int = 16,
        lora_dropout: float = 0.1,
        lora_target_modules: list[str] | None = None,
        image_size: int | None = None,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if backend == "auto":
            backend = "hf" if ("/" in name or Path(name).is_dir()) else "timm"
        self.backend, self.trainable = backend, trainable
        self.model: Any
        kwargs = dict(model_kwargs or {})
        if backend == "timm":
            self.model, self.out_dim, default_size, mean, std = _build_timm(
                name, pretrained, checkpoint_path, image_size, kwargs
            )
        else:
            self.model, self.out_dim, default_size, mean, std = _build_hf(name, pretrained, image_size, kwargs)
        self.image_size = image_size or default_size
        # ViT-MAE (bidirectional paper §4.1) as an encoder: every patch, in patch order, without the CLS token.
        self.is_mae = backend == "hf" and getattr(self.model.config, "model_type", "") == "vit_mae"
        self.image_transform = ImageTransformConfig(size=self.image_size, mean=tuple(mean), std=tuple(std))
        self.model = apply_trainable(
            self.model,
            trainable,
            lora_rank=lora_rank,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            lora_target_modules=lora_target_modules
            or (default_lora_targets(self.model) if trainable == "lora" else None),
        )

    def train(self, mode: bool = True) -> VisionEncoder:
        """A frozen backbone stays in eval mode (fixed BatchNorm statistics, no dropout)."""
        super().train(mode)
        if self.trainable == "frozen":
            self.model.eval()
        return self

    @property
    def patch_grid(self) -> tuple[int, int]:
        """``(h, w)``: rows and columns of the grid the visual tokens come from, at :attr:`image_size`.

        A ViT has one token per patch, ``image_size / patch`` per side (ViT-MAE gives exactly those; other ViTs
        give their CLS token first); Swin merges patches after every stage but the last; a CNN gives its last
        feature map (flattened row-major by :meth:`forward`)."""
        config = getattr(self.model, "config", None)
        if self.backend == "hf":
            patch = getattr(config, "patch_size", None)
            if patch is None:
                raise RadioLMError(
                    f"patch_grid: {type(self.model).__name__} has no patch_size in its config; use a ViT or Swin"
                )
            stride = int(patch[0] if isinstance(patch, (list, tuple)) else patch)
            stride *= 2 ** (len(getattr(config, "depths", None) or [0]) - 1)  # Swin: one 2x merge per later stage
        else:
            stride = int(self.model.feature_info[-1]["reduction"])
        side = -(-self.image_size // stride)  # CNN padding rounds up
        return side, side

    @property
    def patch_size(self) -> int | None:
        """Side in pixels of the square one token stands for, for encoders that cut the image into patches (ViT,
        MAE, Swin); ``None`` for a CNN, whose tokens have overlapping receptive fields."""
        config = getattr(self.model, "config", None)
        if getattr(config, "patch_size", None) is None and getattr(self.model, "patch_embed", None) is None:
            return None
        return self.image_size // self.patch_grid[0]

    def forward(self, images: Tensor) -> Tensor:
        """Encode images.

        Args:
            images: ``[N, C, H, W]``.

        Returns:
            Visual tokens ``[N, L, D]`` with ``D == self.out_dim`` (CNN grids are flattened row-major).
        """
        if self.backend == "hf":
            if self.is_mae:  # patch order kept (noise = 0, 1, ..., L-1), no masking, CLS dropped: [N, L, D]
                n_patches = self.model.embeddings.patch_embeddings.num_patches
                noise = torch.arange(n_patches, device=images.device, dtype=images.dtype).expand(len(images), -1)
                return self.model(pixel_values=images, noise=noise).last_hidden_state[:, 1:]
            return self.model(pixel_values=images).last_hidden_state
        features = self.model.forward_features(images)
        if features.ndim == 4:  # CNN: [N, D, h, w] -> [N, h*w, D]
            features = features.flatten(2).transpose(1, 2)
        return features


def _build_timm(
    name: str, pretrained: bool, checkpoint_path: str | None, image_size: int | None, kwargs: dict[str, Any]
) -> tuple[nn.Module, int, int, tuple[float, ...], tuple[float, ...]]:
    import timm

    if image_size is not None and "vit" in name:
        kwargs.setdefault("img_size", image_size)
    if checkpoint_path:
        kwargs["pretrained_cfg_overlay"] = {"file": checkpoint_path}
    try:
        model: Any = timm.create_model(name, pretrained=pretrained, num_classes=0, global_pool="", **kwargs)
    except RuntimeError as e:
        if "Unknown model" in str(e):
            raise ValueError(f"unknown timm model {name!r}; see timm.list_models()") from None
        raise
    except Exception as e:  # hub unreachable, missing file
        raise MissingAssetError(
            "vision encoder weights", name, "checkpoint_path", f"{type(e).__name__}; or set pretrained: false"
        ) from e
    cfg: dict[str, Any] = dict(model.pretrained_cfg)
    size = cfg.get("input_size", (3, 224, 224))[-1]
    return model, int(model.num_features), size, cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD)


def _build_hf(
    name: str, pretrained: bool, image_size: int | None, kwargs: dict[str, Any]
) -> tuple[nn.Module, int, int, tuple[float, ...], tuple[float, ...]]:
    from transformers import CONFIG_MAPPING, AutoConfig, AutoModel

    if image_size is not None:
        kwargs.setdefault("image_size", image_size)
    try:
        if not pretrained and not Path(name).exists() and name in CONFIG_MAPPING:  # a model type: built from config
            config = AutoConfig.for_model(name, **kwargs)
        else:
            config = AutoConfig.from_pretrained(name, **kwargs)
        if config.model_type == "vit_mae":
            config.mask_ratio = 0.0  # MAE pre-training masks 75% of the patches; an encoder sees them all
        model = AutoModel.from_pretrained(name, config=config) if pretrained else AutoModel.from_config(config)
        if config.model_type == "vit_mae" and not pretrained:
            _init_mae_embeddings(model)
    except OSError as e:
        raise MissingAssetError("vision encoder", name, "name", unreachable_reason(name)) from e
    config = model.config
    out_dim = getattr(config, "hidden_size", None) or config.embed_dim
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    processor = Path(name) / "preprocessor_config.json"
    if processor.is_file():
        spec = json.loads(processor.read_text())
        mean, std = tuple(spec.get("image_mean", mean)), tuple(spec.get("image_std", std))
    return model, int(out_dim), int(getattr(config, "image_size", 224)), mean, std


def mae_sincos_position_embeddings(grid: int, dim: int) -> Tensor:
    """MAE's fixed 2D sin-cos position embeddings ``[1 + grid**2, dim]`` (a zero row for the CLS token first).

    Half the width encodes the patch row, half its column, each as ``[sin | cos]`` of ``dim // 4`` frequencies
    ``1 / 10000**(k / (dim // 4))`` (MAE, He et al. 2022, after the Transformer's 1D embedding)."""
    if dim % 4:
        raise RadioLMError(f"MAE's 2D sin-cos position embedding needs a width divisible by 4, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64),
                                indexing="ij")  # fmt: skip
    parts = [axis.flatten().outer(omega) for axis in (rows, cols)]
    table = torch.cat([f(a) for a in parts for f in (torch.sin, torch.cos)], dim=1)
    return torch.cat([torch.zeros(1, dim, dtype=torch.float64), table]).float()


@torch.no_grad()
def _init_mae_embeddings(model: Any) -> None:
    """Give a ViT-MAE built from a config (no checkpoint) MAE's position embeddings and CLS initialisation.

    transformers 5 skips ``ViTMAEEmbeddings.initialize_weights`` when ``AutoModel.from_config`` builds the model (its
    patch projection is marked initialised first), which leaves the position embeddings and the CLS token at zero: a
    ViT that cannot tell one patch position from another (left from right effusion). A checkpoint brings its own.
    """
    embeddings: Any = model.embeddings
    grid = int(embeddings.patch_embeddings.num_patches**0.5)
    embeddings.position_embeddings.copy_(mae_sincos_position_embeddings(grid, embeddings.position_embeddings.shape[-1]))
    embeddings.cls_token.normal_(std=model.config.initializer_range)
