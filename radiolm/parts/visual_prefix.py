"""The visual prefix of every X-ray method: encode each view, pool the views of a study, map to the LLM space.

``pooling`` says which views make a study's prefix, as a config value:

* ``mean`` (R2GenGPT's code, and the bidirectional method's V2T branch): every real view is encoded (the padding
  of ``view_mask`` never is) and the tokens are averaged over the views of each study;
* ``first`` (two-stage fine-tuning, §4: one frontal image per report): only the first view is encoded.

:func:`encode_views` and :func:`pool_views` are the two halves, for a method that also needs the tokens of every
image (the bidirectional method's T2V and reconstruction branches); :func:`visual_prefix` is both and the mapper.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from radiolm.parts.vision import VisionEncoder

__all__ = ["ViewPooling", "encode_views", "mean_over_views", "pool_views", "visual_prefix"]

ViewPooling = Literal["mean", "first"]


def encode_views(
    encoder: VisionEncoder, images: Tensor, view_mask: Tensor, pooling: ViewPooling = "mean"
) -> tuple[Tensor, Tensor]:
    """Encode the views that ``pooling`` uses.

    Args:
        encoder: The vision encoder.
        images: ``[B, V, C, H, W]``, padded on ``V``.
        view_mask: ``[B, V]`` bool, True on real views.
        pooling: ``mean`` encodes every real view, ``first`` the first view of each study.

    Returns:
        ``tokens`` ``[N, L, D]`` of the encoded images, study by study (``N`` real views for ``mean``, ``B`` for
        ``first``), and ``encoded`` ``[B, V]`` bool, True where an image was encoded.
    """
    if pooling == "mean":
        return encoder(images[view_mask]), view_mask
    if pooling == "first":
        encoded = torch.zeros_like(view_mask)
        encoded[:, 0] = True
        return encoder(images[:, 0]), encoded
    raise ValueError(f"view pooling must be 'mean' or 'first', got {pooling!r}")


def pool_views(tokens: Tensor, encoded: Tensor, pooling: ViewPooling = "mean") -> Tensor:
    """One token sequence per study from the encoded images.

    Args:
        tokens: ``[N, L, D]`` from :func:`encode_views`.
        encoded: ``[B, V]`` bool from :func:`encode_views`.
        pooling: As given to :func:`encode_views`.

    Returns:
        ``[B, L, D]``: the mean over each study's encoded views (``first``: the first view's tokens).
    """
    if pooling == "first":
        return tokens
    b, v = encoded.shape
    per_view = tokens.new_zeros(b, v, *tokens.shape[1:])  # [B, V, L, D]
    per_view[encoded] = tokens
    return mean_over_views(per_view, encoded)


def mean_over_views(tokens: Tensor, view_mask: Tensor) -> Tensor:
    """Average visual tokens over the real views of each study (R2GenGPT encodes each view and averages).

    Args:
        tokens: ``[B, V, L, D]``.
        view_mask: ``[B, V]`` bool.

    Returns:
        ``[B, L, D]``.
    """
    weights = view_mask.to(tokens.dtype)[:, :, None, None]
    return (tokens * weights).sum(1) / weights.sum(1).clamp(min=1)


def visual_prefix(
    encoder: VisionEncoder,
    mapper: Callable[[Tensor], Tensor],
    images: Tensor,
    view_mask: Tensor,
    pooling: ViewPooling = "mean",
) -> Tensor:
    """Encode, pool and map: the visual tokens of each study in the LLM space.

    Args:
        encoder: Images ``[N, C, H, W]`` -> tokens ``[N, L, D_v]``.
        mapper: Tokens ``[B, L, D_v]`` -> ``[B, L', D_llm]`` (a linear mapper keeps ``L``, a query mapper does not).
        images: ``[B, V, C, H, W]``.
        view_mask: ``[B, V]`` bool.
        pooling: ``mean`` or ``first`` (see the module docstring).

    Returns:
        ``[B, L', D_llm]``.
    """
    tokens, encoded = encode_views(encoder, images, view_mask, pooling)
    return mapper(pool_views(tokens, encoded, pooling))
