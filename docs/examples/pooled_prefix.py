"""PooledPrefix: R2GenGPT's visual prefix averaged down to a fixed number of tokens (docs/adding_a_method.md).

Encode each view, average the views of a study (as R2GenGPT), then average the encoder's ``L`` tokens in
``num_tokens`` consecutive groups before the mapper: the LLM reads ``num_tokens`` visual tokens per study whatever
the encoder, which makes every step of a large LLM cheaper.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from radiolm.batch import ReportBatch, require_images
from radiolm.data.transforms import ImageTransformConfig
from radiolm.errors import RadioLMError
from radiolm.methods.base import ReportGenerationModule
from radiolm.parts.language_model import LanguageModel
from radiolm.parts.mappers import LinearMapper, MapperFactory
from radiolm.parts.vision import VisionEncoder
from radiolm.parts.visual_prefix import encode_views, pool_views

__all__ = ["PooledPrefix"]


class PooledPrefix(ReportGenerationModule):
    """Vision encoder -> mean over views -> mean over token groups -> mapper -> LLM.

    Args:
        vision_encoder: Any :class:`VisionEncoder` (``L`` tokens of width ``D_enc`` per image).
        language_model: The causal LM (frozen, LoRA or full).
        num_tokens: Visual tokens per study; the ``L`` encoder tokens are averaged in ``num_tokens`` groups.
        visual_mapper: Built as ``visual_mapper(D_enc, LLM width)``; default :class:`LinearMapper`.
        **kwargs: :class:`ReportGenerationModule` arguments (prompt, decoding, optimizer, ...).

    Raises:
        RadioLMError: for ``num_tokens`` below 1.
    """

    def __init__(
        self,
        vision_encoder: VisionEncoder,
        language_model: LanguageModel,
        num_tokens: int = 4,
        visual_mapper: MapperFactory = LinearMapper,
        **kwargs: Any,
    ) -> None:
        super().__init__(language_model=language_model, **kwargs)
        if num_tokens < 1:
            raise RadioLMError(f"model.init_args.num_tokens must be 1 or more, got {num_tokens}")
        self.vision_encoder = vision_encoder
        self.visual_mapper = visual_mapper(vision_encoder.out_dim, language_model.hidden_size)
        self.num_tokens = num_tokens

    @property
    def image_transform(self) -> ImageTransformConfig:
        return self.vision_encoder.image_transform

    def encode(self, batch: ReportBatch) -> Tensor:
        """The visual prefix.

        Returns:
            ``[B, num_tokens, D_llm]``.
        """
        images, view_mask = require_images(batch, "PooledPrefix")  # [B, V, C, H, W], [B, V]
        tokens, encoded = encode_views(self.vision_encoder, images, view_mask, "mean")  # [N, L, D_enc]
        study = pool_views(tokens, encoded, "mean")  # [B, L, D_enc]
        pooled = F.adaptive_avg_pool1d(study.transpose(1, 2), self.num_tokens).transpose(1, 2)  # [B, n, D_enc]
        return self.visual_mapper(pooled)
