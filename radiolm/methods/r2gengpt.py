"""R2GenGPT (Wang et al.; ``../shared/papers/r2gengpt.md``): visual encoder -> linear mapper -> frozen LLM.

Shallow, delta and deep alignment (§3) are one class: the encoder's ``trainable`` is ``frozen``, ``lora``
(query/value, r = alpha = 16) or ``full``, set in YAML.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from radiolm.batch import ReportBatch
from radiolm.data.transforms import ImageTransformConfig
from radiolm.methods.base import ReportGenerationModule
from radiolm.parts.language_model import LanguageModel
from radiolm.parts.mappers import LinearMapper, MapperFactory
from radiolm.parts.vision import VisionEncoder, mean_over_views

__all__ = ["R2GenGPT"]


class R2GenGPT(ReportGenerationModule):
    """R2GenGPT.

    Args:
        vision_encoder: Swin-B in the paper (49 tokens x 1024 at 224 px).
        language_model: Llama-2-7B-chat, frozen, in the paper.
        visual_mapper: Built as ``visual_mapper(encoder width, LLM width)``; default :class:`LinearMapper`.
        **kwargs: :class:`ReportGenerationModule` arguments (prompt, decoding, optimizer, ...).
    """

    def __init__(
        self,
        vision_encoder: VisionEncoder,
        language_model: LanguageModel,
        visual_mapper: MapperFactory = LinearMapper,
        **kwargs: Any,
    ) -> None:
        super().__init__(language_model=language_model, **kwargs)
        self.vision_encoder = vision_encoder
        self.visual_mapper = visual_mapper(vision_encoder.out_dim, language_model.hidden_size)

    @property
    def image_transform(self) -> ImageTransformConfig:
        return self.vision_encoder.image_transform

    def encode(self, batch: ReportBatch) -> Tensor:
        """Encode each real view, average the view tokens per study (R2GenGPT's code), map to the LLM space.

        Returns:
            ``[B, L, D_llm]``.
        """
        assert batch.images is not None and batch.view_mask is not None, "R2GenGPT needs X-ray images"
        b, v = batch.view_mask.shape
        real = batch.view_mask
        tokens = self.vision_encoder(batch.images[real])  # [N_real, L, D_v]
        per_view = tokens.new_zeros(b, v, *tokens.shape[1:])
        per_view[real] = tokens
        return self.visual_mapper(mean_over_views(per_view, real))
