"""VolumeMAE: masked-autoencoder pre-training of a :class:`~radiolm.parts.VolumeEncoder` (RadFM's ViT3D layout).

Dia-LLaMA (§3.2) starts from RadFM's pre-trained ViT3D and perceiver; offline there are no such weights, and the
phantom's 3D ViT trained from scratch under the language-model loss alone did not learn to read the volume (issue
15: the RadFM-style baseline wrote one impression for every study). This is MAE (He et al. 2022, §3) in three
dimensions: the volume's patches (RadFM's ``(h w d)`` order), a random ``mask_ratio`` of them dropped per volume,
the ViT3D's transformer over the rest, a small decoder over the encoded tokens plus a learned mask token at every
dropped place, and the mean squared error between predicted and true voxels of the dropped patches only.

:meth:`VolumeMAE.save` writes ``model.safetensors`` with the encoder under ``encoder.`` (the ``RadFMViT3D`` keys, so
``VolumeEncoder(checkpoint_path=..., checkpoint_prefix="encoder.")`` loads it) and the decoder under ``decoder.``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import cast

import torch
from torch import Tensor, nn

from radiolm.errors import RadioLMError
from radiolm.parts.volume_encoder import PreNormTransformer, RadFMViT3D, VolumeEncoder

__all__ = ["VolumeMAE"]


class VolumeMAE(nn.Module):
    """MAE over 3D patches with a :class:`~radiolm.parts.VolumeEncoder`'s ViT3D as its encoder.

    Args:
        encoder: A ``radfm``-backend encoder; its weights are trained in place.
        mask_ratio: Share of the patches each volume hides (MAE: 0.75).
        decoder_dim: Decoder width; ``None``: half the encoder's (MAE's ViT-L: 1024 -> 512).
        decoder_layers: Decoder blocks (MAE: 8 for ViT-L; a shallow decoder suffices, §4.1 Table 1a).
        decoder_heads: Decoder attention heads.

    Raises:
        RadioLMError: the encoder is not a trainable ``radfm`` ViT3D.
    """

    def __init__(
        self,
        encoder: VolumeEncoder,
        mask_ratio: float = 0.75,
        decoder_dim: int | None = None,
        decoder_layers: int = 2,
        decoder_heads: int = 4,
    ) -> None:
        super().__init__()
        if not isinstance(encoder.model, RadFMViT3D) or encoder.trainable != "full":
            raise RadioLMError(
                "pretrain mae: the experiment's model.init_args.volume_encoder must be a VolumeEncoder with "
                f"backend: radfm and trainable: full (got backend {encoder.backend!r}, trainable {encoder.trainable!r})"
            )
        if not 0.0 < mask_ratio < 1.0:
            raise RadioLMError(f"pretrain mae: --mask-ratio must lie in (0, 1), got {mask_ratio}")
        self.volume_encoder, self.mask_ratio = encoder, mask_ratio
        width, patch_dim = encoder.out_dim, encoder.in_channels * math.prod(encoder.model.patch_size)
        dim = decoder_dim or max(decoder_heads, width // 2)
        self.decoder_embed = nn.Linear(width, dim)
        self.mask_token = nn.Parameter(torch.zeros(dim))
        self.decoder_pos = nn.Parameter(torch.randn(encoder.num_patches, dim) * 0.02)
        self.decoder = PreNormTransformer(dim, decoder_layers, decoder_heads, dim // decoder_heads, 2 * dim, 0.0)
        self.decoder_norm = nn.LayerNorm(dim)
        self.decoder_pred = nn.Linear(dim, patch_dim)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, volumes: Tensor) -> Tensor:
        """The reconstruction loss of one batch: ``[B, C, D, H, W]`` -> a scalar (MSE over the hidden patches)."""
        vit = cast(RadFMViT3D, self.volume_encoder.model)
        patches = vit.patchify(self.volume_encoder.prepare(volumes))  # [B, M, p_h * p_w * p_d * C], the target
        tokens = vit.embed(patches)
        b, m, width = tokens.shape
        keep = max(1, round(m * (1.0 - self.mask_ratio)))
        visible = torch.rand(b, m, device=tokens.device).argsort(dim=1)[:, :keep]  # a random subset per volume
        encoded = vit.transformer(vit.dropout(tokens.gather(1, visible[..., None].expand(-1, -1, width))))
        decoded = self.decoder_embed(encoded)
        full = self.mask_token.to(decoded.dtype).expand(b, m, -1)
        full = full.scatter(1, visible[..., None].expand(-1, -1, decoded.shape[-1]), decoded) + self.decoder_pos
        predicted = self.decoder_pred(self.decoder_norm(self.decoder(full)))
        hidden = torch.ones(b, m, dtype=torch.bool, device=tokens.device).scatter(1, visible, False)
        return ((predicted - patches) ** 2).mean(dim=-1)[hidden].mean()

    def save(self, folder: Path) -> Path:
        """Write ``folder/model.safetensors`` (``encoder.*``: the ViT3D; ``decoder.*``: the rest); returns the file."""
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        state = {f"encoder.{k}": v for k, v in self.volume_encoder.model.state_dict().items()}
        state |= {f"decoder.{k}": v for k, v in self.state_dict().items() if not k.startswith("volume_encoder.")}
        file = folder / "model.safetensors"
        save_file({k: v.detach().contiguous() for k, v in state.items()}, str(file))
        return file
