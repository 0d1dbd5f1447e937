"""Batched report generation from prefix embeddings."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from radiolm.parts.language_model import LanguageModel
from radiolm.parts.prompt import PromptInputs

__all__ = ["DecodingConfig", "generate_reports"]


@dataclass
class DecodingConfig:
    """Decoding settings (defaults: R2GenGPT's public code for IU-Xray).

    Attributes:
        num_beams: Beam size (R2GenGPT §4.2: 3).
        min_new_tokens: Minimum generated tokens.
        max_new_tokens: Maximum generated tokens.
        repetition_penalty: >1 discourages repeated tokens.
        length_penalty: Exponent on length in beam scores (>0 favours longer reports).
        no_repeat_ngram_size: Forbid repeated n-grams of this size (0 = off).
        do_sample: Sample instead of beam / greedy search.
        temperature: Sampling temperature.
    """

    num_beams: int = 3
    min_new_tokens: int = 40
    max_new_tokens: int = 100
    repetition_penalty: float = 2.0
    length_penalty: float = 2.0
    no_repeat_ngram_size: int = 0
    do_sample: bool = False
    temperature: float = 1.0


@torch.no_grad()
def generate_reports(lm: LanguageModel, inputs: PromptInputs, decoding: DecodingConfig) -> list[str]:
    """Decode one report per prompt.

    Args:
        lm: The language model (its tokenizer decodes).
        inputs: Left-padded prompts (:meth:`PromptTemplate.build` without reports).
        decoding: Search settings.

    Returns:
        ``B`` strings without special tokens, stripped.
    """
    tok = lm.tokenizer
    settings = asdict(decoding)
    if not decoding.do_sample:
        settings.pop("temperature")
    out = lm.model.generate(
        inputs_embeds=inputs.inputs_embeds,
        attention_mask=inputs.attention_mask,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
        **settings,
    )
    return [text.strip() for text in tok.batch_decode(out, skip_special_tokens=True)]
