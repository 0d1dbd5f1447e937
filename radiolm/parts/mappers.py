"""Mappers from the vision encoder's token space to the language model's embedding space.

Each mapper is built as ``mapper(in_dim, out_dim)``; YAML names it by ``class_path`` and sets the remaining
arguments, the method supplies the two widths (jsonargparse turns the config into that callable).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

__all__ = ["LinearMapper", "MapperFactory"]

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
