"""R2GenGPT (Wang et al.; ``../shared/papers/r2gengpt.md``): visual encoder -> linear mapper -> frozen LLM.

Shallow, delta and deep alignment (§3) are one class: the encoder's ``trainable`` is ``frozen``, ``lora``
(query/value, r = alpha = 16) or ``full``, set in YAML. The visual prefix (each view encoded, averaged over the
views of a study as R2GenGPT's code does, mapped) is :func:`radiolm.parts.visual_prefix.visual_prefix`.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from radiolm.batch import ReportBatch, require_images
from radiolm.data.transforms import ImageTransformConfig
from radiolm.methods.base import ReportGenerationModule
from radiolm.parts.language_model import LanguageModel
from radiolm.parts.mappers import LinearMapper, MapperFactory
from radiolm.parts.vision import VisionEncoder
from radiolm.parts.visual_prefix import ViewPooling, visual_prefix

__all__ = ["R2GenGPT"]


class R2GenGPT(ReportGenerationModule):
    """R2GenGPT.

    Args:
        vision_encoder: Swin-B in the paper (49 tokens x 1024 at 224 px).
        language_model: Llama-2-7B-chat, frozen, in the paper.
        visual_mapper: Built as ``visual_mapper(encoder width, LLM width)``; default :class:`LinearMapper`.
        view_pooling: ``mean`` over the real views of a study (R2GenGPT's code) or ``first`` view only.
        **kwargs: :class:`ReportGenerationModule` arguments (prompt, decoding, optimizer, ...).
    """

    def __init__(
        self,
        vision_encoder: VisionEncoder,
        language_model: LanguageModel,
        visual_mapper: MapperFactory = LinearMapper,
        view_pooling: ViewPooling = "mean",
        **kwargs: Any,
    ) -> None:
        super().__init__(language_model=language_model, **kwargs)
        self.vision_encoder = vision_encoder
        self.visual_mapper = visual_mapper(vision_encoder.out_dim, language_model.hidden_size)
        self.view_pooling = view_pooling

    @property
    def image_transform(self) -> ImageTransformConfig:
        return self.vision_encoder.image_transform

    def encode(self, batch: ReportBatch) -> Tensor:
        """Encode each real view, average the view tokens per study (R2GenGPT's code), map to the LLM space.

        Returns:
            ``[B, L, D_llm]``.
        """
        images, view_mask = require_images(batch, "R2GenGPT")
        return visual_prefix(self.vision_encoder, self.visual_mapper, images, view_mask, self.view_pooling)
