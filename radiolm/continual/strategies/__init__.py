"""Continual-learning strategies of CMRG-LLM's Table 1 (``../shared/papers/cmrg_llm_continual.md`` §3.2), injected
into :class:`radiolm.methods.CMRGLLM` as ``model.init_args.strategy``: a name below, or a ``class_path`` with
``init_args`` (``radiolm.continual.strategies.Replay`` with ``buffer_size``, ``ratio``; ``EWC`` with ``lam``; ...).

=============== ============================================================================================
``cmrg``        :class:`CMRG`: the method (§2.3), own ``f^t, q, P, LN`` per domain; Table 2's switches
``seqft``       :class:`SeqFT`: one shared set, everything outside the LLM trains in every stage
``per_task_ft`` :class:`PerTaskFT`: own weights per task, each stage from the initial weights
``replay``      :class:`Replay`: SeqFT + ``L^LM`` on buffered earlier studies mixed into every step
``ewc``         :class:`EWC`: SeqFT + the diagonal-Fisher penalty per finished task
``der``         :class:`DER`: SeqFT + MSE to the buffered studies' stored logits over their report tokens
``progprompt``  :class:`ProgPrompt`: a new domain token per task, the earlier ones frozen and prepended
=============== ============================================================================================
"""

from __future__ import annotations

from radiolm.continual.strategies.base import ContinualModel, ContinualStrategy, PromptSources, SeqFT
from radiolm.continual.strategies.cmrg import CMRG
from radiolm.continual.strategies.ewc import EWC
from radiolm.continual.strategies.per_task import PerTaskFT
from radiolm.continual.strategies.progprompt import ProgPrompt
from radiolm.continual.strategies.replay import DER, Replay, ReplayBuffer
from radiolm.errors import RadioLMError

__all__ = [
    "CMRG",
    "DER",
    "EWC",
    "STRATEGIES",
    "ContinualModel",
    "ContinualStrategy",
    "PerTaskFT",
    "ProgPrompt",
    "PromptSources",
    "Replay",
    "ReplayBuffer",
    "SeqFT",
    "resolve_strategy",
]

STRATEGIES: dict[str, type[ContinualStrategy]] = {
    cls.name: cls for cls in (CMRG, SeqFT, PerTaskFT, Replay, EWC, DER, ProgPrompt)
}
"""The strategies by the name ``model.init_args.strategy`` accepts (each with its default values)."""


def resolve_strategy(strategy: ContinualStrategy | str) -> ContinualStrategy:
    """A strategy object from a name of :data:`STRATEGIES` (its defaults) or the object itself."""
    if isinstance(strategy, ContinualStrategy):
        return strategy
    if strategy not in STRATEGIES:
        raise RadioLMError(
            f"model.init_args.strategy: unknown strategy {strategy!r}; use one of {sorted(STRATEGIES)} or a "
            "class_path such as radiolm.continual.strategies.Replay with its init_args"
        )
    return STRATEGIES[strategy]()
