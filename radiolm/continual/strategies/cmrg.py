"""CMRG-LLM's own strategy (``../shared/papers/cmrg_llm_continual.md`` §2.3) and its Table 2 switches.

§2.3, "Tunable Parameters": after XE1, ``E`` and ``M`` are frozen and every domain gets its own ``f^t``, ``q``,
LayerNorm and (XE2 excepted, which keeps XE1's) ``P``. Table 2 asks what each of ``q``, ``f^t`` and ``P`` adds "by
freezing one of them" (§3.2): with ``own_queries: false`` every later domain uses the first domain's ``q``, frozen
after stage 1 (likewise ``own_domain_token`` for ``f^t`` and ``own_projection`` for ``P``). ``L^SC`` and the centres
``h_d^c`` are the method's ``contrastive`` and ``use_centres``.
"""

from __future__ import annotations

from typing import ClassVar

from radiolm.continual.strategies.base import (
    ContinualModel,
    ContinualStrategy,
    PromptSources,
    freeze_outside_llm,
    train_prompt,
)

__all__ = ["CMRG"]


class CMRG(ContinualStrategy):
    """Per-domain prompt parameters, ``E`` and ``M`` frozen after the first stage (§2.3).

    Args:
        own_queries: Each domain learns its own ``q`` (Table 2's ``q`` column); else the first domain's, frozen.
        own_domain_token: Each domain learns its own ``f^t`` (Table 2's ``f^t``); else the first domain's, frozen.
        own_projection: Domains learn their own ``P`` as ``share_projection_with`` says (Table 2's ``P``); else
            every domain uses the first domain's, frozen after stage 1.
    """

    name: ClassVar[str] = "cmrg"
    own_prompts: ClassVar[bool] = True

    def __init__(self, own_queries: bool = True, own_domain_token: bool = True, own_projection: bool = True) -> None:
        super().__init__()
        self.own_queries, self.own_domain_token, self.own_projection = own_queries, own_domain_token, own_projection

    def projection_sharing(self, names: list[str], share: dict[str, str]) -> dict[str, str] | None:
        if self.own_projection:
            return share
        return {d: names[0] for d in names[1:]}  # one P, the first domain's

    def sources(self, model: ContinualModel, domain: str) -> PromptSources:
        first = model.names[0]
        return PromptSources(
            (domain if self.own_domain_token else first,),
            domain if self.own_queries else first,
            domain,  # the prompt set maps it to its owner (own, shared as configured, or the first's)
            domain,
        )

    def encoder_frozen(self, stage: int) -> bool:
        return stage > 0

    def set_stage(self, model: ContinualModel, stage: int) -> None:
        """Stage 1: ``E`` (as its ``trainable`` says), ``M``, ``P_h`` and the domain's prompt; later stages only the
        prompt parameters the domain owns, and ``A`` for a volume domain (§2.3)."""
        freeze_outside_llm(model)
        name = model.names[stage]
        if stage == 0:
            model.train_shared_parts()
            model.hidden_projection.requires_grad_(True)
        train_prompt(model, self.sources(model, name), only=name)
        if model.volume_adapter is not None and model.domains[stage].volume:
            model.volume_adapter.requires_grad_(True)
