"""Mappers from the vision encoder's token space to the language model's embedding space.

Each mapper is built as ``mapper(in_dim, out_dim)``; YAML names it by ``class_path`` and sets the remaining
arguments, the method supplies the two widths (jsonargparse turns the config into that callable).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from radiolm.parts.radfm_weights import FcMismatch, load_radfm_perceiver

__all__ = ["Adapter2D3D", "LinearMapper", "MapperFactory", "PerceiverResampler", "QueryMapper"]

MapperFactory = Callable[[int, int], nn.Module]


class LinearMapper(nn.Module):
    """R2GenGPT's visual mapper: ``H_v = W_m Z_v`` (§3, Eq. 1), followed by LayerNorm as in its public code.

    With Swin-B (1024) and Llama-2-7B (4096) it holds 1024*4096 + 4096 + 2*4096 = 4,206,592 parameters, the
    "4.2M" of R2GenGPT Table 2 (shallow alignment).

    Args:
        in_dim: Width of the visual tokens ``D_v``.
        out_dim: Width of the LLM embeddings ``D_llm``.
        layer_norm: Apply LayerNorm after the projection.
    """

    def __init__(self, in_dim: int, out_dim: int, layer_norm: bool = True) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)
        self.norm = nn.LayerNorm(out_dim) if layer_norm else nn.Identity()

    def forward(self, tokens: Tensor) -> Tensor:
        """``[B, L, D_v]`` -> ``[B, L, D_llm]``."""
        return self.norm(self.proj(tokens))


class _PerceiverAttention(nn.Module):
    """Latents attend to ``[media; latents]`` (Flamingo's resampler, as RadFM's code uses it)."""

    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_kv = nn.Linear(dim, 2 * heads * dim_head, bias=False)
        self.to_out = nn.Linear(heads * dim_head, dim, bias=False)

    def forward(self, media: Tensor, latents: Tensor) -> Tensor:
        """``media [B, M, c]``, ``latents [B, N, c]`` -> ``[B, N, c]``."""
        media, latents = self.norm_media(media), self.norm_latents(latents)
        b, n, _ = latents.shape
        q = self.to_q(latents).view(b, n, self.heads, -1).transpose(1, 2)
        kv = self.to_kv(torch.cat([media, latents], dim=1))
        k, v = kv.view(b, kv.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = nn.functional.scaled_dot_product_attention(q, k, v)  # [B, h, N, dh]
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class PerceiverResampler(nn.Module):
    """Perceiver resampler + projection: M patch features -> N visual embeddings (Dia-LLaMA §2.1, Eq. 4).

    ``N`` learned latents cross-attend to the patch features (and themselves) in ``depth`` blocks of attention +
    feed-forward (Jaegle et al.; Flamingo's variant, which RadFM and Dia-LLaMA's code use), a final LayerNorm, then
    a linear map to the LLM width (RadFM's ``fc``). With c = 768 and Llama-2-7B: 1024 x 768 -> 32 x 4096.

    Args:
        in_dim: Width ``c`` of the patch features.
        out_dim: Width ``d`` of the LLM embeddings.
        num_latents: ``N`` (Dia-LLaMA / RadFM: 32).
        depth: Attention + feed-forward blocks (RadFM's code: 6).
        heads: Attention heads (RadFM's code: 8).
        dim_head: Width of one head (RadFM's code: 64).
        ff_mult: Feed-forward expansion (RadFM's code: 4).
        checkpoint_path: RadFM's checkpoint (``pytorch_model.bin`` or ``.safetensors``): load its perceiver and
            ``fc`` (as Dia-LLaMA's official code does, ``my_embedding_layer.py``); ``None``: random initialisation.
            Key mapping and checks: :mod:`radiolm.parts.radfm_weights`.
        checkpoint_prefix: What precedes ``perceiver.`` / ``fc.`` in that file (RadFM: ``embedding_layer.``).
        fc_mismatch: RadFM's ``fc`` is 768 -> 5120; with another LLM width ``error`` refuses, ``skip`` loads the
            perceiver and keeps a random projection (with a warning).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        num_latents: int = 32,
        depth: int = 6,
        heads: int = 8,
        dim_head: int = 64,
        ff_mult: int = 4,
        checkpoint_path: str | None = None,
        checkpoint_prefix: str = "embedding_layer.",
        fc_mismatch: FcMismatch = "error",
    ) -> None:
        super().__init__()
        self.latents = nn.Parameter(torch.randn(num_latents, in_dim))
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    _PerceiverAttention(in_dim, heads, dim_head),
                    nn.Sequential(
                        nn.LayerNorm(in_dim),
                        nn.Linear(in_dim, ff_mult * in_dim, bias=False),
                        nn.GELU(),
                        nn.Linear(ff_mult * in_dim, in_dim, bias=False),
                    ),
                ]
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(in_dim)
        self.proj = nn.Linear(in_dim, out_dim)
        if checkpoint_path:
            load_radfm_perceiver(self, checkpoint_path, checkpoint_prefix, fc_mismatch)

    def forward(self, tokens: Tensor) -> Tensor:
        """``[B, M, c]`` -> ``[B, N, d]``."""
        latents = self.latents.to(tokens.dtype).expand(tokens.shape[0], -1, -1)
        for block in self.layers:
            attention, feed_forward = block[0], block[1]  # type: ignore[index]
            latents = latents + attention(tokens, latents)
            latents = latents + feed_forward(latents)
        return self.proj(self.norm(latents))


class QueryMapper(nn.Module):
    """Two-stage fine-tuning's mapping network: one transformer decoder layer with learned queries (Lu et al. §3).

    ``num_queries`` learned vectors of the LLM width self-attend, cross-attend to the ``L`` visual tokens
    (attention pooling, as BLIP-2's Q-Former; the keys / values are projected from ``D_img`` inside the
    cross-attention, so the one layer also maps ``D_img`` to ``D_txt``) and pass a feed-forward block. The output
    is the soft visual prompt ``C``: with BioViL-T's ResNet-50 at 480 px, ``[B, 225, 2048] -> [B, 10, D_txt]``.

    Args:
        in_dim: Width of the visual tokens ``D_img``.
        out_dim: Width of the LLM embeddings ``D_txt``.
        num_queries: Soft-prompt length ``N`` (§3: 10 queries for 225 visual tokens).
        heads: Attention heads; must divide ``out_dim`` (§3 leaves it open; 8 divides GPT-2 S/L and LLaMA widths).
        ff_mult: Feed-forward expansion (§3 leaves it open; 4 as in the transformer decoder layer).
        dropout: Dropout inside the layer (§3 leaves it open).
    """

    def __init__(
        self, in_dim: int, out_dim: int, num_queries: int = 10, heads: int = 8, ff_mult: int = 4, dropout: float = 0.1
    ) -> None:
        super().__init__()
        if out_dim % heads:
            raise ValueError(f"QueryMapper: heads={heads} must divide the LLM width {out_dim}; set heads")
        self.queries = nn.Parameter(torch.randn(num_queries, out_dim) * out_dim**-0.5)
        self.norm_visual = nn.LayerNorm(in_dim)
        self.norm_self = nn.LayerNorm(out_dim)
        self.self_attn = nn.MultiheadAttention(out_dim, heads, dropout=dropout, batch_first=True)
        self.norm_cross = nn.LayerNorm(out_dim)
        self.cross_attn = nn.MultiheadAttention(
            out_dim, heads, dropout=dropout, kdim=in_dim, vdim=in_dim, batch_first=True
        )
        self.norm_ff = nn.LayerNorm(out_dim)
        self.feed_forward = nn.Sequential(
            nn.Linear(out_dim, ff_mult * out_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(ff_mult * out_dim, out_dim),
        )
        self.norm_out = nn.LayerNorm(out_dim)

    def forward(self, tokens: Tensor) -> Tensor:
        """``[B, L, D_img]`` -> ``[B, num_queries, D_txt]`` (pre-norm residual blocks, final LayerNorm)."""
        visual = self.norm_visual(tokens)
        x = self.queries.to(tokens.dtype).expand(tokens.shape[0], -1, -1)
        h = self.norm_self(x)
        x = x + self.self_attn(h, h, h, need_weights=False)[0]
        x = x + self.cross_attn(self.norm_cross(x), visual, visual, need_weights=False)[0]
        x = x + self.feed_forward(self.norm_ff(x))
        return self.norm_out(x)


class Adapter2D3D(nn.Module):
    """CMRG-LLM's 2D-3D adapter ``A(.; alpha)`` (§2.3): a CT volume as a 3-channel image for the 2D encoder.

    The depth ``Z`` moves to the channel axis and two 2D convolutions compress it: ``Z -> hidden -> 3`` channels.
    Each convolution works in-plane and mixes the slices, so the 3 output channels carry 3D context. With the
    paper's 224 x 224 x 64 volumes: ``[B, 1, 64, 224, 224] -> [B, 3, 224, 224]``.

    Args:
        depth: Slices ``Z`` of the input volumes (§3.1: 64).
        hidden: Channels between the two convolutions (§2.3 leaves it open; 16).
        kernel_size: Of both convolutions, padded to keep ``H x W`` (§2.3 leaves it open; 3).
        activation: Between the two convolutions (§2.3 leaves it open; ``gelu``; ``none`` makes A linear).
    """

    def __init__(
        self,
        depth: int = 64,
        hidden: int = 16,
        kernel_size: int = 3,
        activation: Literal["none", "relu", "gelu"] = "gelu",
    ) -> None:
        super().__init__()
        acts: dict[str, nn.Module] = {"none": nn.Identity(), "relu": nn.ReLU(), "gelu": nn.GELU()}
        if activation not in acts:
            raise ValueError(f"Adapter2D3D: activation must be none, relu or gelu, got {activation!r}")
        self.depth = depth
        pad = kernel_size // 2
        self.layers = nn.Sequential(
            nn.Conv2d(depth, hidden, kernel_size, padding=pad),
            acts[activation],
            nn.Conv2d(hidden, 3, kernel_size, padding=pad),
        )

    def forward(self, volumes: Tensor) -> Tensor:
        """``[B, 1, Z, H, W]`` (or ``[B, Z, H, W]``) -> ``[B, 3, H, W]``."""
        if volumes.ndim == 5:
            if volumes.shape[1] != 1:
                raise ValueError(
                    f"Adapter2D3D: expects one-channel volumes [B, 1, Z, H, W], got {tuple(volumes.shape)}"
                )
            volumes = volumes[:, 0]
        if volumes.shape[1] != self.depth:
            raise ValueError(
                f"Adapter2D3D: volumes have {volumes.shape[1]} slices, the adapter was built for depth={self.depth}; "
                "set the adapter's depth to the data's volume depth"
            )
        return self.layers(volumes)
