"""Two-stage fine-tuning (Lu et al., ``../shared/papers/two_stage_finetune.md``): ResNet-50 -> query mapper -> LoRA LM.

The image encoder (BioViL-T's ResNet-50 at 480 px in the paper, §4) gives a 15 x 15 grid of 2048-d features,
225 visual tokens; the mapping network (:class:`~radiolm.parts.mappers.QueryMapper`, §3) pools them into 10 soft
visual prompt tokens of the LM's width; the causal LM (GPT-2 S / L, OpenLLaMA-7B) has LoRA of rank 8 on the query
and value projections of every block (Appendix A). The loss is the report's negative log-likelihood given the
soft prompt (§3, Eq. 1), on the findings section (§4).

The two stages are not in this module: :class:`radiolm.callbacks.EncoderUnfreeze` freezes the encoder for the
first ``freeze_epochs`` epochs (``0`` = one-stage fine-tuning), so one class and one YAML cover Table 1.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from radiolm.batch import ReportBatch, require_images
from radiolm.data.transforms import ImageTransformConfig, named_image_transform
from radiolm.methods.base import ReportGenerationModule
from radiolm.parts.language_model import LanguageModel
from radiolm.parts.mappers import MapperFactory, QueryMapper
from radiolm.parts.prompt import PromptTemplate
from radiolm.parts.vision import VisionEncoder
from radiolm.parts.visual_prefix import ViewPooling, visual_prefix

__all__ = ["SOFT_PROMPT_TEMPLATE", "TwoStageFinetune"]

SOFT_PROMPT_TEMPLATE = "{image}"
"""§3: the mapped context ``C`` is the LM's soft prompt and the report follows it (Eq. 1 conditions on ``C`` only);
the paper gives no instruction text, so the default prompt is ``[bos] C report [eos]``."""


class TwoStageFinetune(ReportGenerationModule):
    """Lu et al.'s large multimodal model for report generation.

    Args:
        vision_encoder: ResNet-50 (BioViL-T's in the paper, §4), ``trainable: full`` (fine-tuned end to end,
            Appendix A); the stage-1 freeze is the ``EncoderUnfreeze`` callback's job.
        language_model: GPT-2 S / L or OpenLLaMA-7B with ``trainable: lora`` (r = 8 on q and v, Appendix A).
        visual_mapper: Built as ``visual_mapper(D_img, D_txt)``; default :class:`QueryMapper` (10 queries, §3).
        prompt: Default ``[bos] C report [eos]`` (:data:`SOFT_PROMPT_TEMPLATE`).
        view_pooling: ``first``: the first (frontal, §4) view of each study; ``mean`` averages the real views.
        image_preprocessing: ``biovil``: BioViL's (resize 512, centre crop 480, [0, 1], no normalisation), which
            the paper's BioViL-T ResNet-50 expects (§4); ``None``: the encoder's own size and statistics.
        **kwargs: :class:`ReportGenerationModule` arguments (decoding, optimizer, schedule, selection, ...).
    """

    def __init__(
        self,
        vision_encoder: VisionEncoder,
        language_model: LanguageModel,
        visual_mapper: MapperFactory = QueryMapper,
        prompt: PromptTemplate | None = None,
        view_pooling: ViewPooling = "first",
        image_preprocessing: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(language_model=language_model, prompt=prompt or PromptTemplate(SOFT_PROMPT_TEMPLATE), **kwargs)
        self.vision_encoder = vision_encoder
        self.visual_mapper = visual_mapper(vision_encoder.out_dim, language_model.hidden_size)
        self.view_pooling = view_pooling
        self._image_transform = (
            named_image_transform(image_preprocessing, vision_encoder.image_size)
            if image_preprocessing
            else vision_encoder.image_transform
        )

    @property
    def image_transform(self) -> ImageTransformConfig:
        """BioViL's preprocessing (``image_preprocessing: biovil``) or the encoder's own."""
        return self._image_transform

    def encode(self, batch: ReportBatch) -> Tensor:
        """The soft visual prompt ``C`` (§3) from the grid features ``I`` of the frontal view (§4; ResNet-50 at
        480 px: ``[B, 225, 2048]``).

        Returns:
            ``[B, N, D_txt]`` (``N`` = 10 queries).
        """
        images, view_mask = require_images(batch, "TwoStageFinetune")
        return visual_prefix(self.vision_encoder, self.visual_mapper, images, view_mask, self.view_pooling)
