"""PromptTemplate: ``[bos, before, <visual tokens>, after, (context), report, eos]`` as embeddings.

Labels are -100 everywhere but on the report and eos, so the loss is the report's likelihood given the image and
the instruction (R2GenGPT §3, Eq. 2). Training pads on the right, generation on the left; both pad to the longest
sequence of the batch, never to a fixed length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from radiolm.parts.language_model import LanguageModel

__all__ = ["R2GENGPT_TEMPLATE", "PromptInputs", "PromptTemplate"]

# R2GenGPT §3: "Human: <Img>X_v</Img> X_p. Assistant: X_r</s>", with X_p from the paper; spacing as in its code.
R2GENGPT_TEMPLATE = (
    "Human: <Img>{image}</Img> Generate a comprehensive and detailed diagnosis report for this chest xray image."
    " \nAssistant:"
)


@dataclass
class PromptInputs:
    """What the language model consumes.

    Attributes:
        inputs_embeds: ``[B, T, D]``.
        attention_mask: ``[B, T]`` (1 on real tokens).
        labels: ``[B, T]`` (-100 outside report + eos), ``None`` for generation.
    """

    inputs_embeds: Tensor
    attention_mask: Tensor
    labels: Tensor | None = None


class PromptTemplate:
    """Assembles prompts around visual tokens.

    Args:
        template: Text with exactly one ``{image}`` where the visual tokens go.
        max_report_tokens: Reports are truncated to this many tokens for training (references for metrics are
            never truncated).
        add_bos: Prepend the tokenizer's bos token (when it has one).
    """

    def __init__(self, template: str = R2GENGPT_TEMPLATE, max_report_tokens: int = 100, add_bos: bool = True) -> None:
        if template.count("{image}") != 1:
            raise ValueError(f"prompt template needs exactly one '{{image}}', got: {template!r}")
        self.before, self.after = template.split("{image}")
        self.template, self.max_report_tokens, self.add_bos = template, max_report_tokens, add_bos

    def build(
        self,
        lm: LanguageModel,
        visual: Tensor,
        reports: list[str] | None = None,
        context: list[str] | None = None,
        padding_side: Literal["right", "left"] | None = None,
    ) -> PromptInputs:
        """Build the LLM input for a batch.

        Args:
            lm: Supplies the tokenizer and the embedding table.
            visual: Visual tokens in the LLM space ``[B, L, D]``.
            reports: Target reports (training) or ``None`` (generation: the prompt ends after ``after``).
            context: Optional per-study text placed after the instruction (e.g. Dia-LLaMA's diagnosis prompt).
            padding_side: Default right with reports, left without.

        Returns:
            :class:`PromptInputs` with labels when ``reports`` is given.
        """
        tok = lm.tokenizer
        batch, n_visual = visual.shape[:2]
        side = padding_side or ("right" if reports is not None else "left")
        bos = [tok.bos_token_id] if self.add_bos and tok.bos_token_id is not None else []
        before = bos + tok(self.before, add_special_tokens=False).input_ids
        after = tok(self.after, add_special_tokens=False).input_ids
        contexts = tok(context, add_special_tokens=False).input_ids if context else [[] for _ in range(batch)]
        if reports is not None:
            targets = tok(reports, add_special_tokens=False).input_ids
            targets = [[*t[: self.max_report_tokens], tok.eos_token_id] for t in targets]
        else:
            targets = [[] for _ in range(batch)]

        rows = []
        for ctx, target in zip(contexts, targets, strict=True):
            prompt = before + [tok.pad_token_id] * n_visual + after + ctx
            rows.append((prompt, target, len(before)))
        length = max(len(p) + len(t) for p, t, _ in rows)
        ids = torch.full((batch, length), tok.pad_token_id, dtype=torch.long)
        labels = torch.full((batch, length), -100, dtype=torch.long)
        mask = torch.zeros(batch, length, dtype=torch.long)
        is_visual = torch.zeros(batch, length, dtype=torch.bool)
        for i, (prompt, target, start) in enumerate(rows):
            seq = prompt + target
            offset = 0 if side == "right" else length - len(seq)
            ids[i, offset : offset + len(seq)] = torch.tensor(seq)
            mask[i, offset : offset + len(seq)] = 1
            labels[i, offset + len(prompt) : offset + len(seq)] = torch.tensor(target, dtype=torch.long)
            is_visual[i, offset + start : offset + start + n_visual] = True
        device = visual.device
        embeds = lm.embed(ids.to(device))
        embeds = embeds.masked_scatter(is_visual.to(device)[..., None], visual.to(embeds.dtype))
        return PromptInputs(embeds, mask.to(device), labels.to(device) if reports is not None else None)
