"""Diagnostic prompts D = {d_1, ..., d_L} placed after the visual tokens (Dia-LLaMA §2.1 Eq. 1, §2.4, Table 3).

* ``text`` (the paper's DTP, §2.4): "The {disease} is present/absent in this image." per disease, as text that
  the LLM's own embedding table embeds (:class:`DiagnosticTextPrompt`).
* ``token`` (Table 3): one learnable ``<POS>`` or ``<NEG>`` embedding per disease instead of the sentence
  (:class:`DiagnosisTokenPrompt`).
* ``feature`` (Table 3): the state's prototype ``P^l_0`` / ``P^l_1`` itself, mapped to the LLM width (built by
  the method from :meth:`radiolm.parts.prototype_memory.DiseasePrototypeMemory.prototype`).
* ``none``: no diagnosis in the prompt (the RadFM-style baseline).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from radiolm.data.labels import CHEXPERT_14

__all__ = ["DISEASE_PHRASES", "DiagnosisTokenPrompt", "DiagnosticTextPrompt", "PromptType", "diagnosis_targets"]

PromptType = Literal["none", "text", "token", "feature"]

# How each CheXpert-14 observation reads inside the sentence (§2.4's example: "The enlarged cardio mediastinum
# is present in this image").
DISEASE_PHRASES: dict[str, str] = {name: name.lower() for name in CHEXPERT_14}


def diagnosis_targets(labels: Tensor) -> Tensor:
    """Binary disease states from ReportBatch labels: 1 present, everything else (0, -1 unknown) absent.

    Dia-LLaMA §3.1: "Due to the clinical focus on present diagnosis, we categorized all other states as absent."

    Args:
        labels: ``[B, L]`` with 1 / 0 / -1.

    Returns:
        ``[B, L]`` long, 1 or 0.
    """
    return (labels == 1).long()


class DiagnosticTextPrompt:
    """Diagnosis -> text, one sentence per disease (§2.4).

    Args:
        diseases: Disease names in label order (default: the 14 CheXpert observations, as CheXbert labels them).
        template: Sentence with ``{disease}`` and ``{state}``.
        states: Words for absent (index 0) and present (index 1).
        separator: Between sentences.
    """

    def __init__(
        self,
        diseases: list[str] | None = None,
        template: str = "The {disease} is {state} in this image.",
        states: tuple[str, str] = ("absent", "present"),
        separator: str = " ",
    ) -> None:
        if "{disease}" not in template or "{state}" not in template:
            raise ValueError(f"diagnostic prompt template needs '{{disease}}' and '{{state}}', got {template!r}")
        self.diseases = list(diseases or CHEXPERT_14)
        self.template, self.states, self.separator = template, tuple(states), separator

    def __call__(self, states: Tensor) -> list[str]:
        """``[B, L]`` states (0 / 1) -> ``B`` prompt strings."""
        if states.ndim != 2 or states.shape[1] != len(self.diseases):
            raise ValueError(f"diagnostic prompt: states must be [B, {len(self.diseases)}], got {tuple(states.shape)}")
        return [
            self.separator.join(
                self.template.format(disease=DISEASE_PHRASES.get(name, name.lower()), state=self.states[int(s)])
                for name, s in zip(self.diseases, row.tolist(), strict=True)
            )
            for row in states
        ]


class DiagnosisTokenPrompt(nn.Module):
    """Learnable ``<NEG>`` / ``<POS>`` embeddings: one token per disease (Table 3, "Token" prompt).

    Args:
        dim: LLM embedding width ``d``.
        init_std: Standard deviation of their normal initialisation (set it near the LLM embedding table's).
    """

    def __init__(self, dim: int, init_std: float = 0.02) -> None:
        super().__init__()
        self.embeddings = nn.Parameter(torch.randn(2, dim) * init_std)  # [2, d]: <NEG>, <POS>

    def forward(self, states: Tensor) -> Tensor:
        """``[B, L]`` states -> ``[B, L, d]``."""
        return self.embeddings[states.long().clamp(0, 1)]
