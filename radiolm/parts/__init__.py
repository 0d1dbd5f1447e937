"""Plain ``nn.Module`` parts (no Lightning) that the methods compose; YAML names them ``radiolm.parts.<Name>``.

Names are imported on first use (PEP 562), so ``import radiolm.parts`` stays cheap: a part's heavy dependencies
(transformers, timm, MONAI, torchmetrics) load only with the part.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from radiolm.parts.class_centres import ClassCentres
    from radiolm.parts.diagnostic_prompt import DiagnosisTokenPrompt, DiagnosticTextPrompt
    from radiolm.parts.disease_attention import DiseaseAwareAttention, MeanPoolDiseaseFeatures
    from radiolm.parts.domain_prompts import DomainPrompt, DomainPromptSet, QueryAggregator
    from radiolm.parts.generation import DecodingConfig
    from radiolm.parts.image_decoder import MAEImageDecoder
    from radiolm.parts.language_model import LanguageModel
    from radiolm.parts.mappers import Adapter2D3D, LinearMapper, PerceiverResampler, QueryMapper
    from radiolm.parts.prompt import MaskedEmbeddings, PromptInputs, PromptTemplate
    from radiolm.parts.prototype_memory import DiseaseClassifier, DiseasePrototypeMemory
    from radiolm.parts.text_encoder import TextEncoder
    from radiolm.parts.vision import VisionEncoder
    from radiolm.parts.volume_encoder import RadFMViT3D, VolumeEncoder

# public name -> the module that defines it
_MODULES = {
    "Adapter2D3D": "mappers",
    "ClassCentres": "class_centres",
    "DecodingConfig": "generation",
    "DiagnosisTokenPrompt": "diagnostic_prompt",
    "DiagnosticTextPrompt": "diagnostic_prompt",
    "DiseaseAwareAttention": "disease_attention",
    "DiseaseClassifier": "prototype_memory",
    "DiseasePrototypeMemory": "prototype_memory",
    "DomainPrompt": "domain_prompts",
    "DomainPromptSet": "domain_prompts",
    "LanguageModel": "language_model",
    "LinearMapper": "mappers",
    "MAEImageDecoder": "image_decoder",
    "MaskedEmbeddings": "prompt",
    "MeanPoolDiseaseFeatures": "disease_attention",
    "PerceiverResampler": "mappers",
    "PromptInputs": "prompt",
    "PromptTemplate": "prompt",
    "QueryAggregator": "domain_prompts",
    "QueryMapper": "mappers",
    "RadFMViT3D": "volume_encoder",
    "TextEncoder": "text_encoder",
    "VisionEncoder": "vision",
    "VolumeEncoder": "volume_encoder",
}

__all__ = [
    "Adapter2D3D",
    "ClassCentres",
    "DecodingConfig",
    "DiagnosisTokenPrompt",
    "DiagnosticTextPrompt",
    "DiseaseAwareAttention",
    "DiseaseClassifier",
    "DiseasePrototypeMemory",
    "DomainPrompt",
    "DomainPromptSet",
    "LanguageModel",
    "LinearMapper",
    "MAEImageDecoder",
    "MaskedEmbeddings",
    "MeanPoolDiseaseFeatures",
    "PerceiverResampler",
    "PromptInputs",
    "PromptTemplate",
    "QueryAggregator",
    "QueryMapper",
    "RadFMViT3D",
    "TextEncoder",
    "VisionEncoder",
    "VolumeEncoder",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
