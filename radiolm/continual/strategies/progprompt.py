"""Table 1's ProgPrompt (Razdaibiedina et al. 2023, ref. [27] of ``../shared/papers/cmrg_llm_continual.md``, §3.2):
"sequentially concatenating new learnable prompts for each task to LLM".

Each task gets a new soft prompt; the earlier ones are frozen and kept, and task ``t``'s input starts with
``[P_t, P_{t-1}, ..., P_1]`` (ProgPrompt §3: the new prompt is prepended). Here a task's soft prompt is its domain
token ``f^t`` (``1 x`` LLM width): the paper gives no ProgPrompt prompt length, and ``f^t`` is what CMRG-LLM itself
learns per domain. The visual path ``E, M, q, P, LN`` (and ``A``, ``P_h``) is one shared set; §3.2 tunes "all the
parameters ... except the LLM" for the baselines, so it trains in every stage (``train_shared: every``), or in the
first stage only (``first``: ProgPrompt's own setting, where nothing but the prompts learns after the first task).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from radiolm.continual.strategies.base import (
    ContinualModel,
    ContinualStrategy,
    PromptSources,
    freeze_outside_llm,
    train_prompt,
)
from radiolm.errors import RadioLMError

__all__ = ["ProgPrompt"]


class ProgPrompt(ContinualStrategy):
    """A new domain token per task, the earlier ones frozen and prepended after it.

    Args:
        train_shared: The shared visual path trains in ``every`` stage (§3.2's baselines) or the ``first`` only.
    """

    name: ClassVar[str] = "progprompt"
    own_prompts: ClassVar[bool] = True

    def __init__(self, train_shared: Literal["every", "first"] = "every") -> None:
        super().__init__()
        if train_shared not in ("every", "first"):
            raise RadioLMError(f"ProgPrompt: train_shared must be every or first, got {train_shared!r}")
        self.train_shared = train_shared

    def projection_sharing(self, names: list[str], share: dict[str, str]) -> dict[str, str] | None:
        return {d: names[0] for d in names[1:]}  # one P; later domains own only their token

    def sources(self, model: ContinualModel, domain: str) -> PromptSources:
        first, index = model.names[0], model.names.index(domain)
        return PromptSources(tuple(reversed(model.names[: index + 1])), first, first, first)

    def encoder_frozen(self, stage: int) -> bool:
        return stage > 0 and self.train_shared == "first"

    def set_stage(self, model: ContinualModel, stage: int) -> None:
        """The stage's new token; the shared path as ``train_shared`` says; every earlier token frozen."""
        freeze_outside_llm(model)
        name, first = model.names[stage], model.names[0]
        shared = stage == 0 or self.train_shared == "every"
        if shared:
            model.train_shared_parts()
            model.hidden_projection.requires_grad_(True)
            train_prompt(model, PromptSources((), first, first, first))
        model.prompts[name].domain_token.requires_grad_(True)
        if model.volume_adapter is not None and (shared or model.domains[stage].volume):
            model.volume_adapter.requires_grad_(True)
