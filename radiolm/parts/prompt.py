"""PromptTemplate: an LLM input assembled from text and embedding segments, ``[bos, segments..., report, eos]``.

A template is text with named slots, ``{image}`` always among them: R2GenGPT's
``[bos, before, <visual tokens>, after, (context), report, eos]`` is :data:`R2GENGPT_TEMPLATE` with the visual tokens
in ``{image}``; the bidirectional method's T2V prompt has a ``{report}`` slot too, filled with text-encoder
embeddings. :meth:`PromptTemplate.assemble` takes any list of segments; each is

* ``str``: the same text in every row;
* ``list[str]``: one text per row (e.g. Dia-LLaMA's diagnosis sentences);
* ``Tensor`` ``[B, n, D]``: ``n`` embeddings per row, in the LLM space;
* :class:`MaskedEmbeddings`: a different number of embeddings per row (``mask [B, n]``).

Labels are -100 everywhere but on the report and eos, so the loss is the report's likelihood given the image and
the instruction (R2GenGPT §3, Eq. 2). Training pads on the right, generation on the left; both pad to the longest
sequence of the batch, never to a fixed length. Text is tokenised here and only here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import torch
from torch import Tensor

from radiolm.parts.language_model import LanguageModel

__all__ = ["R2GENGPT_TEMPLATE", "MaskedEmbeddings", "PromptInputs", "PromptTemplate", "Segment", "SlotValue"]

# R2GenGPT §3: "Human: <Img>X_v</Img> X_p. Assistant: X_r</s>", with X_p from the paper; spacing as in its code.
R2GENGPT_TEMPLATE = (
    "Human: <Img>{image}</Img> Generate a comprehensive and detailed diagnosis report for this chest xray image."
    " \nAssistant:"
)

_SLOT = re.compile(r"\{([A-Za-z_]\w*)\}")


@dataclass
class MaskedEmbeddings:
    """Embeddings with a different length per row: row ``b`` contributes ``values[b][mask[b]]``.

    Attributes:
        values: ``[B, n, D]``.
        mask: ``[B, n]``, True (or 1) on the real embeddings.
    """

    values: Tensor
    mask: Tensor


Segment: TypeAlias = str | list[str] | Tensor | MaskedEmbeddings
"""One piece of a prompt: shared text, per-row text, embeddings ``[B, n, D]``, or :class:`MaskedEmbeddings`."""
SlotValue: TypeAlias = Segment | tuple[Segment, ...]
"""What fills a template slot: a segment, or a tuple of segments placed one after the other."""


@dataclass
class PromptInputs:
    """What the language model consumes.

    Attributes:
        inputs_embeds: ``[B, T, D]``.
        attention_mask: ``[B, T]`` (1 on real tokens).
        labels: ``[B, T]`` (-100 outside report + eos), ``None`` for generation.
        slot_starts: Per template slot (``"image"``, ...), the position ``[B]`` of its first token in each row.
    """

    inputs_embeds: Tensor
    attention_mask: Tensor
    labels: Tensor | None = None
    slot_starts: dict[str, Tensor] = field(default_factory=dict)


class PromptTemplate:
    """Assembles prompts around visual tokens.

    Args:
        template: Text with named slots; exactly one ``{image}`` where the visual tokens go, any other slot once.
        max_report_tokens: Reports are truncated to this many tokens for training (references for metrics are
            never truncated).
        add_bos: Prepend the tokenizer's bos token (when it has one).
    """

    def __init__(self, template: str = R2GENGPT_TEMPLATE, max_report_tokens: int = 100, add_bos: bool = True) -> None:
        if template.count("{image}") != 1:
            raise ValueError(f"prompt template needs exactly one '{{image}}', got: {template!r}")
        parts = _SLOT.split(template)  # text, slot, text, slot, ..., text
        self.texts, self.slots = parts[0::2], parts[1::2]
        if len(set(self.slots)) != len(self.slots):
            raise ValueError(f"prompt template names a slot twice: {template!r}")
        self.before, self.after = template.split("{image}")
        self.template, self.max_report_tokens, self.add_bos = template, max_report_tokens, add_bos

    def build(
        self,
        lm: LanguageModel,
        visual: SlotValue,
        reports: list[str] | None = None,
        context: list[str] | None = None,
        padding_side: Literal["right", "left"] | None = None,
        **slots: SlotValue,
    ) -> PromptInputs:
        """Build the LLM input for a batch from the template.

        Args:
            lm: Supplies the tokenizer and the embedding table.
            visual: Visual tokens in the LLM space ``[B, L, D]`` for ``{image}`` (or a tuple of segments, e.g.
                Dia-LLaMA's visual tokens followed by its diagnosis embeddings).
            reports: Target reports (training) or ``None`` (generation: the prompt ends after the template).
            context: Optional per-study text placed after the template (e.g. Dia-LLaMA's diagnosis prompt).
            padding_side: Default right with reports, left without.
            **slots: Values of the template's other slots.

        Returns:
            :class:`PromptInputs` with labels when ``reports`` is given.
        """
        values = {"image": visual, **slots}
        if set(values) != set(self.slots):
            raise ValueError(f"prompt template {self.template!r} has slots {self.slots}, got values for {list(values)}")
        segments: list[Segment] = []
        names: list[str | None] = []
        for i, text in enumerate(self.texts):
            if text:
                segments.append(text)
                names.append(None)
            if i < len(self.slots):
                value = values[self.slots[i]]
                pieces = value if isinstance(value, tuple) else (value,)
                segments += pieces
                names += [self.slots[i]] + [None] * (len(pieces) - 1)
        if context:
            segments.append(context)
            names.append(None)
        return self.assemble(lm, segments, reports, padding_side, names)

    def assemble(
        self,
        lm: LanguageModel,
        segments: Sequence[Segment],
        reports: list[str] | None = None,
        padding_side: Literal["right", "left"] | None = None,
        names: Sequence[str | None] | None = None,
    ) -> PromptInputs:
        """``[bos, *segments, report, eos]`` as embeddings, padded to the longest row.

        Args:
            lm: Supplies the tokenizer and the embedding table.
            segments: Text and embedding segments in order (see the module docstring); embeddings ``[B, n, D]``.
            reports: Target reports (training: labels on report + eos) or ``None``.
            padding_side: Default right with reports, left without.
            names: A name per segment (or ``None``) whose first position is returned in ``slot_starts``.

        Returns:
            :class:`PromptInputs` ``[B, T, D]`` with labels when ``reports`` is given.
        """
        tok = lm.tokenizer
        batch = _batch_size(segments, reports)
        side = padding_side or ("right" if reports is not None else "left")
        bos = [tok.bos_token_id] if self.add_bos and tok.bos_token_id is not None else []
        prompts = [list(bos) for _ in range(batch)]
        starts = torch.zeros(batch, len(segments), dtype=torch.long)
        spans: list[list[tuple[int, int]]] = [[] for _ in range(batch)]  # per row: (start, length) of embeddings
        pieces: list[list[Tensor]] = [[] for _ in range(batch)]  # per row: the embeddings, in position order
        device = None
        for s, segment in enumerate(segments):
            if isinstance(segment, str):
                ids = tok(segment, add_special_tokens=False).input_ids
                rows: list[list[int]] = [ids] * batch
            elif isinstance(segment, list):
                rows = tok(segment, add_special_tokens=False).input_ids
            else:
                values = segment.values if isinstance(segment, MaskedEmbeddings) else segment
                device = values.device
                for b in range(batch):
                    row = values[b][segment.mask[b].bool()] if isinstance(segment, MaskedEmbeddings) else values[b]
                    pieces[b].append(row)
                    spans[b].append((len(prompts[b]), len(row)))
                rows = [[tok.pad_token_id] * len(p[-1]) for p in pieces]
            for b in range(batch):
                starts[b, s] = len(prompts[b])
                prompts[b] += rows[b]
        if reports is not None:
            targets = tok(reports, add_special_tokens=False).input_ids
            targets = [[*t[: self.max_report_tokens], tok.eos_token_id] for t in targets]
        else:
            targets = [[] for _ in range(batch)]

        length = max(len(p) + len(t) for p, t in zip(prompts, targets, strict=True))
        ids = torch.full((batch, length), tok.pad_token_id, dtype=torch.long)
        labels = torch.full((batch, length), -100, dtype=torch.long)
        mask = torch.zeros(batch, length, dtype=torch.long)
        is_embedding = torch.zeros(batch, length, dtype=torch.bool)
        offsets = torch.zeros(batch, 1, dtype=torch.long)
        for i, (prompt, target) in enumerate(zip(prompts, targets, strict=True)):
            seq = prompt + target
            offset = 0 if side == "right" else length - len(seq)
            ids[i, offset : offset + len(seq)] = torch.tensor(seq)
            mask[i, offset : offset + len(seq)] = 1
            labels[i, offset + len(prompt) : offset + len(seq)] = torch.tensor(target, dtype=torch.long)
            for start, n in spans[i]:
                is_embedding[i, offset + start : offset + start + n] = True
            offsets[i] = offset
        if device is None:
            device = lm.base.get_input_embeddings().weight.device
        embeds = lm.embed(ids.to(device))
        if is_embedding.any():
            tensors = [s for s in segments if isinstance(s, (Tensor, MaskedEmbeddings))]
            if len(tensors) == 1 and isinstance(tensors[0], Tensor):  # one block of the same length in every row
                source = tensors[0].to(embeds.dtype)
            else:
                source = torch.cat([p.to(embeds.dtype) for row in pieces for p in row])
            embeds = embeds.masked_scatter(is_embedding.to(device)[..., None], source)
        starts = (starts + offsets).to(device)
        slot_starts = {name: starts[:, s] for s, name in enumerate(names or []) if name is not None}
        return PromptInputs(
            embeds, mask.to(device), labels.to(device) if reports is not None else None, slot_starts=slot_starts
        )

    def report_embeddings(self, lm: LanguageModel, reports: list[str]) -> tuple[Tensor, Tensor]:
        """The reports as the LLM's word embeddings, truncated to ``max_report_tokens`` as training targets are.

        Args:
            lm: Supplies the tokenizer and the embedding table.
            reports: ``B`` texts (an empty one becomes the eos token).

        Returns:
            Embeddings ``[B, T, D]`` (right padded) and the mask of real tokens ``[B, T]`` (bool), on the LLM's device.
        """
        tok = lm.tokenizer
        ids = tok(reports, add_special_tokens=False).input_ids
        ids = [row[: self.max_report_tokens] or [tok.eos_token_id] for row in ids]
        padded = torch.full((len(ids), max(map(len, ids))), tok.pad_token_id, dtype=torch.long)
        keep = torch.zeros(padded.shape, dtype=torch.bool)
        for i, row in enumerate(ids):
            padded[i, : len(row)], keep[i, : len(row)] = torch.tensor(row), True
        device = lm.base.get_input_embeddings().weight.device
        return lm.embed(padded.to(device)), keep.to(device)


def _batch_size(segments: Sequence[Segment], reports: list[str] | None) -> int:
    for segment in segments:
        if isinstance(segment, MaskedEmbeddings):
            return len(segment.values)
        if isinstance(segment, (Tensor, list)):
            return len(segment)
    if reports is not None:
        return len(reports)
    raise ValueError("a prompt needs at least one per-row segment (embeddings or a list of texts) or the reports")
