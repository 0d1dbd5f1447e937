"""MAEImageDecoder: patch features in the encoder space ``[N, L, D_v]`` -> pixels ``[N, C, H, W]``.

The bidirectional paper's reconstruction branch (§3, "Image Reconstruction"): ``I_hat = g_vd(Z_hat_v)`` with the
decoder of the large MAE (§4.1, ``facebook/vit-mae-large``). This wraps the transformers ViT-MAE decoder: every
patch is given (no mask tokens), in patch order, so ``ids_restore`` is the identity; the decoder's per-patch pixel
predictions are folded back into an image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from radiolm.errors import MissingAssetError, RadioLMError, unreachable_reason

__all__ = ["ImageDecoderFactory", "MAEImageDecoder", "patchify", "unpatchify"]

ImageDecoderFactory = Callable[[int, tuple[int, int], int, int], nn.Module]
"""``factory(encoder_dim, patch_grid, patch_size, channels)``; the method supplies the encoder's numbers
(:attr:`~radiolm.parts.vision.VisionEncoder.patch_grid` and ``patch_size``)."""


class MAEImageDecoder(nn.Module):
    """The ViT-MAE decoder as the vision decoder ``g_vd``.

    Args:
        encoder_dim: ``D_v``, width of the encoder tokens (given by the method).
        patch_grid: ``(h, w)`` patches of the encoder's tokens (given by the method); square, as MAE's.
        patch_size: Encoder patch size in pixels (given by the method).
        channels: Image channels (given by the method).
        name: An MAE checkpoint (hub id or folder) whose decoder is used; ``None`` builds one from the
            ``decoder_*`` values below.
        pretrained: Load the checkpoint's decoder weights (``False``: its architecture, random weights).
        decoder_hidden_size: Decoder width (MAE-large: 512).
        decoder_layers: Decoder depth (MAE-large: 8).
        decoder_heads: Decoder attention heads (MAE-large: 16).
        decoder_intermediate_size: Decoder MLP width (MAE-large: 2048).
        cls_init: The decoder expects a CLS token in front of the patches; ``E_v`` holds patches only (§3:
            ``N_p`` vectors), so a learned vector takes its place, initialised to zeros (the paper leaves it open).
    """

    def __init__(
        self,
        encoder_dim: int,
        patch_grid: tuple[int, int],
        patch_size: int,
        channels: int = 3,
        name: str | None = None,
        pretrained: bool = True,
        decoder_hidden_size: int = 512,
        decoder_layers: int = 8,
        decoder_heads: int = 16,
        decoder_intermediate_size: int = 2048,
        cls_init: float = 0.0,
    ) -> None:
        super().__init__()
        from transformers import ViTMAEConfig
        from transformers.models.vit_mae.modeling_vit_mae import ViTMAEDecoder, ViTMAEForPreTraining

        h, w = patch_grid
        if h != w:
            raise RadioLMError(f"MAEImageDecoder: MAE's decoder folds a square patch grid, the encoder gives {h} x {w}")
        self.patch_grid, self.patch_size, self.channels = (h, w), patch_size, channels
        self.image_size = h * patch_size
        if name in ("None", "null", ""):  # jsonargparse hands a command-line `null` of a factory's field as text
            name = None
        self.num_patches = h * w
        if name is not None:
            try:
                config: Any = ViTMAEConfig.from_pretrained(name)
                if pretrained:
                    decoder: Any = ViTMAEForPreTraining.from_pretrained(name).decoder
                else:
                    decoder = ViTMAEDecoder(config, num_patches=self.num_patches)
            except OSError as e:
                raise MissingAssetError("MAE decoder", name, "name", unreachable_reason(name)) from e
            if (config.hidden_size, config.patch_size, config.num_channels) != (encoder_dim, patch_size, channels):
                raise RadioLMError(
                    f"MAEImageDecoder: {name} decodes {config.hidden_size}-wide tokens of {config.patch_size} px "
                    f"patches, {config.num_channels} channels; the encoder gives {encoder_dim}, {patch_size}, "
                    f"{channels}. Use the encoder's own MAE checkpoint, or name: null to build a decoder"
                )
        else:
            config = ViTMAEConfig(
                hidden_size=encoder_dim,
                image_size=self.image_size,
                patch_size=patch_size,
                num_channels=channels,
                decoder_hidden_size=decoder_hidden_size,
                decoder_num_hidden_layers=decoder_layers,
                decoder_num_attention_heads=decoder_heads,
                decoder_intermediate_size=decoder_intermediate_size,
            )
            decoder = ViTMAEDecoder(config, num_patches=self.num_patches)
        for module in decoder.modules():  # a decoder built outside its PreTrainedModel has no attention choice
            layer_config = getattr(module, "config", None)
            if layer_config is not None and getattr(layer_config, "_attn_implementation", None) is None:
                layer_config._attn_implementation = "sdpa"
        decoder.mask_token.requires_grad_(False)  # every patch is given: no mask tokens (DDP rejects unused params)
        self.decoder = decoder
        self.interpolate = decoder.decoder_pos_embed.shape[1] - 1 != self.num_patches
        self.cls = nn.Parameter(torch.full((1, 1, encoder_dim), float(cls_init)))

    def forward(self, tokens: Tensor) -> Tensor:
        """Decode patch tokens to an image.

        Args:
            tokens: ``Z_hat_v`` ``[N, L, D_v]``, ``L = h * w`` of the patch grid, patch order row-major.

        Returns:
            ``[N, C, H, W]`` in the space of the encoder's (normalised) input.
        """
        n, length, _ = tokens.shape
        if length != self.num_patches:
            raise RadioLMError(f"MAEImageDecoder: {length} tokens, expected {self.num_patches} patches")
        hidden = torch.cat([self.cls.to(tokens.dtype).expand(n, -1, -1), tokens], dim=1)
        ids_restore = torch.arange(length, device=tokens.device).expand(n, -1)
        patches = self.decoder(hidden, ids_restore, interpolate_pos_encoding=self.interpolate).logits
        return unpatchify(patches, self.patch_size, self.channels, self.patch_grid)


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """``[N, C, H, W]`` -> ``[N, (H/p)*(W/p), p*p*C]``, patches row-major, pixels (row, column, channel)."""
    n, c, h, w = images.shape
    x = images.reshape(n, c, h // patch_size, patch_size, w // patch_size, patch_size)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(n, (h // patch_size) * (w // patch_size), patch_size**2 * c)


def unpatchify(patches: Tensor, patch_size: int, channels: int, grid: tuple[int, int] | None = None) -> Tensor:
    """The inverse of :func:`patchify`: ``[N, h*w, p*p*C]`` -> ``[N, C, h*p, w*p]``.

    Args:
        patches: ``[N, L, p*p*C]``, row-major.
        patch_size: ``p``.
        channels: ``C``.
        grid: ``(h, w)``; default a square grid (``L`` must be a square number).
    """
    n, length, _ = patches.shape
    if grid is None:
        side = round(length**0.5)
        grid = (side, side)
    h, w = grid
    if h * w != length:
        raise RadioLMError(f"unpatchify: {length} patches do not form a {h} x {w} grid")
    x = patches.reshape(n, h, w, patch_size, patch_size, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(n, channels, h * patch_size, w * patch_size)
