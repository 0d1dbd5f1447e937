"""VolumeEncoder: CT volumes ``[B, C, D, H, W]`` -> patch tokens ``[B, M, c]`` with a 3D ViT (Dia-LLaMA Eq. 3).

Dia-LLaMA §3.2 adopts RadFM's pre-trained ViT3D with each volume resized to 256 x 256 x 64: patches of
32 x 32 x 4 give M = 8 * 8 * 16 = 1024 tokens of width c = 768 after 12 layers. Two backends build that shape:

* ``radfm`` (default): RadFM's ViT3D layout (patch LayerNorm -> Linear -> LayerNorm, a factorised learned 3D
  position embedding, 12 pre-norm blocks of 8 heads x 64 with an MLP of 2048), written here so that the keys of
  RadFM's released ``vision_encoder`` load as they are (``checkpoint_path`` + ``checkpoint_prefix``).
* ``monai``: ``monai.networks.nets.ViT`` (convolutional patch embedding, 12 heads, MLP 3072), for MONAI weights.

Both read the spatial axes in the order ``(H, W, D)`` (RadFM and MONAI's ``img_size``); ReportBatch volumes are
``[B, C, D, H, W]``, so :meth:`VolumeEncoder.forward` permutes depth last. Tokens are ordered ``(h, w, d)``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from radiolm.errors import RadioLMError
from radiolm.parts.radfm_weights import keys_under, read_state_dict
from radiolm.parts.trainable import Trainable, apply_trainable

__all__ = ["PreNormTransformer", "RadFMViT3D", "VolumeEncoder", "load_encoder_weights"]


class _PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.norm(x))


class _Attention(nn.Module):
    """Multi-head self-attention with RadFM's parameter names (``to_qkv`` without bias, ``to_out.0``)."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        q, k, v = self.to_qkv(x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)  # 3 x [B, h, N, dh]
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class _FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class PreNormTransformer(nn.Module):
    """``depth`` pre-norm blocks (attention, then MLP, each residual) with RadFM's parameter names."""

    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    _PreNorm(dim, _Attention(dim, heads, dim_head, dropout)),
                    _PreNorm(dim, _FeedForward(dim, mlp_dim, dropout)),
                ]
            )
            for _ in range(depth)
        )

    def forward(self, x: Tensor) -> Tensor:
        for block in self.layers:
            attention, feed_forward = block[0], block[1]  # type: ignore[index]
            x = x + attention(x)
            x = x + feed_forward(x)
        return x


class _PositionEmbedding3D(nn.Module):
    """Learned factorised 3D position embedding: ``[row(h), col(w), depth(d)]`` concatenated, each ``dim // 3``.

    The tables may be larger than the grid (RadFM's are sized for 512 x 512 x 512 inputs); the first rows are used.
    """

    def __init__(self, dim: int, table: tuple[int, int, int]) -> None:
        super().__init__()
        if dim % 3:
            raise ValueError(f"the 3D position embedding splits the width in three; hidden_size={dim} is not")
        part = dim // 3
        self.row_embed = nn.Embedding(table[0], part)
        self.col_embed = nn.Embedding(table[1], part)
        self.dep_embed = nn.Embedding(table[2], part)

    def forward(self, grid: tuple[int, int, int]) -> Tensor:
        """``(h, w, d)`` -> ``[h * w * d, dim]`` in ``(h, w, d)`` order."""
        h, w, d = grid
        device = self.row_embed.weight.device
        rows = self.row_embed(torch.arange(h, device=device))[:, None, None].expand(h, w, d, -1)
        cols = self.col_embed(torch.arange(w, device=device))[None, :, None].expand(h, w, d, -1)
        deps = self.dep_embed(torch.arange(d, device=device))[None, None, :].expand(h, w, d, -1)
        return torch.cat([rows, cols, deps], dim=-1).reshape(h * w * d, -1)


class RadFMViT3D(nn.Module):
    """RadFM's ViT3D (no class token): ``[B, C, H, W, D]`` -> ``[B, M, dim]``.

    Args:
        img_size: ``(H, W, D)`` of the input.
        patch_size: ``(p_h, p_w, p_d)``.
        in_channels: Input channels (RadFM feeds 3: the grey volume repeated).
        dim: Token width ``c``.
        depth: Transformer blocks.
        heads: Attention heads.
        dim_head: Width of one head (RadFM: 64, so 8 heads attend in 512 dimensions).
        mlp_dim: Hidden width of the MLP.
        dropout: Dropout in attention and MLP.
        pos_table: Rows of the position tables per axis; ``None``: the patch grid. RadFM's: ``(16, 16, 128)``.
    """

    def __init__(
        self,
        img_size: tuple[int, int, int],
        patch_size: tuple[int, int, int],
        in_channels: int,
        dim: int,
        depth: int,
        heads: int,
        dim_head: int,
        mlp_dim: int,
        dropout: float = 0.0,
        pos_table: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__()
        if any(s % p for s, p in zip(img_size, patch_size, strict=True)):
            raise ValueError(f"img_size {img_size} must be divisible by patch_size {patch_size}")
        self.patch_size = tuple(patch_size)
        self.grid = tuple(s // p for s, p in zip(img_size, patch_size, strict=True))
        patch_dim = in_channels * patch_size[0] * patch_size[1] * patch_size[2]
        # index 0 is RadFM's einops Rearrange (no weights); the patchify is done in forward
        self.to_patch_embedding = nn.Sequential(
            nn.Identity(), nn.LayerNorm(patch_dim), nn.Linear(patch_dim, dim), nn.LayerNorm(dim)
        )
        self.pos_embedding = _PositionEmbedding3D(dim, tuple(pos_table or self.grid))  # type: ignore[arg-type]
        self.dropout = nn.Dropout(dropout)
        self.transformer = PreNormTransformer(dim, depth, heads, dim_head, mlp_dim, dropout)

    def patchify(self, x: Tensor) -> Tensor:
        """``[B, C, H, W, D]`` -> ``[B, M, p_h * p_w * p_d * C]`` (RadFM's ``(h w f) (p1 p2 pf c)`` order)."""
        b, c = x.shape[:2]
        (h, w, d), (ph, pw, pd) = self.grid, self.patch_size
        x = x.reshape(b, c, h, ph, w, pw, d, pd).permute(0, 2, 4, 6, 3, 5, 7, 1)
        return x.reshape(b, h * w * d, ph * pw * pd * c)

    def embed(self, patches: Tensor) -> Tensor:
        """Patch embedding plus position: ``[B, M, patch_dim]`` (of :meth:`patchify`) -> ``[B, M, dim]``."""
        tokens = self.to_patch_embedding(patches)
        return tokens + self.pos_embedding(self.grid).to(tokens.dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.transformer(self.dropout(self.embed(self.patchify(x))))


class VolumeEncoder(nn.Module):
    """3D ViT over a CT volume (Dia-LLaMA §2.1 Eq. 3 and §3.2; RadFM's ViT3D).

    Args:
        backend: ``radfm`` (RadFM's layout, loads its weights) or ``monai`` (``monai.networks.nets.ViT``).
        img_size: Input ``(H, W, D)``; Dia-LLaMA §3.2: 256 x 256 x 64.
        patch_size: ``(p_h, p_w, p_d)``; RadFM: 32 x 32 x 4 (so 8 * 8 * 16 = 1024 tokens at 256 x 256 x 64).
        in_channels: Channels the ViT reads; a 1-channel volume is repeated to fill them (RadFM reads 3).
        hidden_size: Token width ``c`` (768).
        num_layers: Transformer blocks (12).
        num_heads: Attention heads (RadFM: 8; MONAI's ViT-B: 12).
        dim_head: Width of one head (``radfm`` only; RadFM: 64).
        mlp_dim: MLP hidden width (RadFM: 2048; MONAI's ViT-B: 3072).
        dropout: Dropout in the transformer (RadFM trains with 0.1; Dia-LLaMA does not say: 0.0).
        pos_table: ``radfm`` only: position-table rows per axis (RadFM's checkpoint: ``[16, 16, 128]``).
        checkpoint_path: Local weights (``.bin`` / ``.pt`` / ``.pth`` state dict or ``.safetensors``), e.g. RadFM's
            ``pytorch_model.bin``; ``None``: random initialisation.
        checkpoint_prefix: Key prefix of the encoder inside that file; RadFM's checkpoint keeps it under
            ``embedding_layer.vision_encoder.``.
        resize: Resize (trilinear) volumes whose size differs from ``img_size`` (Dia-LLaMA §3.2 resizes every
            volume); ``False`` raises instead.
        trainable: ``full`` (Dia-LLaMA fine-tunes the encoder with the rest), ``frozen`` or ``lora``.
        lora_target_modules: For ``trainable: lora`` (``radfm``: ``[to_qkv]``; ``monai``: ``[qkv]``).
    """

    def __init__(
        self,
        backend: Literal["radfm", "monai"] = "radfm",
        img_size: tuple[int, int, int] = (256, 256, 64),
        patch_size: tuple[int, int, int] = (32, 32, 4),
        in_channels: int = 3,
        hidden_size: int = 768,
        num_layers: int = 12,
        num_heads: int = 8,
        dim_head: int = 64,
        mlp_dim: int = 2048,
        dropout: float = 0.0,
        pos_table: tuple[int, int, int] | None = None,
        checkpoint_path: str | None = None,
        checkpoint_prefix: str = "embedding_layer.vision_encoder.",
        resize: bool = True,
        trainable: Trainable = "full",
        lora_target_modules: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.backend, self.trainable, self.resize = backend, trainable, resize
        self.img_size = tuple(int(s) for s in img_size)
        self.in_channels, self.out_dim = in_channels, hidden_size
        self.grid = tuple(s // p for s, p in zip(self.img_size, patch_size, strict=True))
        self.num_patches = self.grid[0] * self.grid[1] * self.grid[2]
        self.model: nn.Module
        if backend == "radfm":
            self.model = RadFMViT3D(
                self.img_size,  # type: ignore[arg-type]
                tuple(patch_size),  # type: ignore[arg-type]
                in_channels,
                hidden_size,
                num_layers,
                num_heads,
                dim_head,
                mlp_dim,
                dropout,
                tuple(pos_table) if pos_table else None,  # type: ignore[arg-type]
            )
        elif backend == "monai":
            from monai.networks.nets import ViT

            self.model = ViT(
                in_channels=in_channels,
                img_size=self.img_size,
                patch_size=tuple(patch_size),
                hidden_size=hidden_size,
                mlp_dim=mlp_dim,
                num_layers=num_layers,
                num_heads=num_heads,
                dropout_rate=dropout,
                classification=False,
            )
        else:
            raise ValueError(f"VolumeEncoder backend must be 'radfm' or 'monai', got {backend!r}")
        if checkpoint_path:
            load_encoder_weights(self.model, checkpoint_path, checkpoint_prefix)
        targets = lora_target_modules or (["to_qkv"] if backend == "radfm" else ["qkv"])
        self.model = apply_trainable(self.model, trainable, lora_target_modules=targets)

    def train(self, mode: bool = True) -> VolumeEncoder:
        """A frozen encoder stays in eval mode (no dropout)."""
        super().train(mode)
        if self.trainable == "frozen":
            self.model.eval()
        return self

    def forward(self, volumes: Tensor) -> Tensor:
        """Encode volumes.

        Args:
            volumes: ``[B, C, D, H, W]`` (ReportBatch order), ``C`` 1 or ``in_channels``.

        Returns:
            Patch features ``[B, M, c]``, ``M = self.num_patches``, ``c = self.out_dim``.
        """
        out: Any = self.model(self.prepare(volumes))
        return out[0] if isinstance(out, tuple) else out  # MONAI's ViT returns (tokens, hidden states)

    def prepare(self, volumes: Tensor) -> Tensor:
        """``[B, C, D, H, W]`` -> the ``[B, in_channels, H, W, D]`` input of the 3D ViT (depth last, resized to
        ``img_size``, a grey volume repeated over the channels)."""
        if volumes.ndim != 5:
            raise RadioLMError(f"VolumeEncoder expects volumes [B, C, D, H, W], got shape {tuple(volumes.shape)}")
        x = volumes.permute(0, 1, 3, 4, 2)  # [B, C, H, W, D]: the (H, W, D) order of img_size
        if tuple(x.shape[2:]) != self.img_size:
            if not self.resize:
                raise RadioLMError(
                    f"volume size (H, W, D) {tuple(x.shape[2:])} differs from img_size {self.img_size}; resize "
                    "the volumes in the data or set the encoder's resize: true"
                )
            x = F.interpolate(x, size=self.img_size, mode="trilinear", align_corners=False)
        if x.shape[1] != self.in_channels:
            if x.shape[1] != 1:
                raise RadioLMError(f"volumes have {x.shape[1]} channels; the encoder reads 1 or {self.in_channels}")
            x = x.expand(-1, self.in_channels, -1, -1, -1)
        return x


def load_encoder_weights(model: nn.Module, path: str, prefix: str = "") -> None:
    """Load the keys under ``prefix`` of a local state dict into ``model`` (strict: every weight must be there).

    Raises:
        MissingAssetError: when the file does not exist.
        RadioLMError: when the file holds no key under ``prefix`` or the keys / shapes do not match.
    """
    state = read_state_dict(path, "3D vision encoder weights", "checkpoint_path")
    own = keys_under(state, prefix, path, "the encoder's checkpoint_prefix")
    try:
        model.load_state_dict(own, strict=True)
    except RuntimeError as e:
        raise RadioLMError(f"{path}: weights do not fit the encoder ({str(e).splitlines()[0]} ...)") from e
