"""What a continual-learning strategy decides for CMRG-LLM (``../shared/papers/cmrg_llm_continual.md`` §2.3, §3.2).

The method (:class:`radiolm.methods.CMRGLLM`) is one module; the strategy is injected (``model.init_args.strategy``:
a name of :data:`radiolm.continual.strategies.STRATEGIES` or a ``class_path``) and decides four things:

* **whose prompt parameters** a domain uses (:meth:`ContinualStrategy.sources`): its own ``f^t, q, P, LN`` (CMRG-LLM),
  or the one shared set (SeqFT and the baselines built on it), or a chain of domain tokens (ProgPrompt);
* **what trains** in stage ``t`` (:meth:`ContinualStrategy.set_stage`);
* **extra loss terms** of a training step (:meth:`ContinualStrategy.add_losses`: replay, EWC, DER);
* **what a finished stage leaves behind** (:meth:`ContinualStrategy.end_stage`: a buffer, a Fisher, weights).

A strategy's end-of-stage state is not in the checkpoints: the sequence driver rebuilds it on resume by loading each
finished stage's checkpoint and calling :meth:`~ContinualStrategy.end_stage` again (:attr:`keeps_stage_state`), which
draws the same samples (a seeded draw) and so gives the same state.

Strategies never import :mod:`radiolm.methods` (no cycle): the model is typed by what they read of it,
:class:`ContinualModel`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn

from radiolm.batch import ReportBatch

__all__ = ["ContinualModel", "ContinualStrategy", "PromptSources", "SeqFT", "move_batch"]


@dataclass(frozen=True)
class PromptSources:
    """Which domain's parameter of each kind a domain's prompt uses.

    Attributes:
        tokens: Domains whose ``f^t`` are prepended, in order (one for all but ProgPrompt).
        queries: Whose ``q``.
        projection: Whose ``P`` (a domain that shares one names its owner; see ``DomainPromptSet``).
        norm: Whose LayerNorm ``gamma, beta``.
    """

    tokens: tuple[str, ...]
    queries: str
    projection: str
    norm: str


class ContinualModel(Protocol):
    """What a strategy reads of :class:`radiolm.methods.CMRGLLM`."""

    names: list[str]
    domains: list[Any]
    stage: int
    active_domain: str
    prompts: Any
    language_model: Any
    training: bool

    @property
    def vision_encoder(self) -> nn.Module: ...

    @property
    def aggregator(self) -> nn.Module: ...

    @property
    def volume_adapter(self) -> nn.Module | None: ...

    @property
    def hidden_projection(self) -> nn.Module: ...

    def named_parameters(self) -> Iterable[tuple[str, nn.Parameter]]: ...

    def parameters(self) -> Iterable[nn.Parameter]: ...

    def report_states(self, batch: ReportBatch) -> tuple[Tensor, Tensor, list[Tensor]]: ...

    def lm_loss(self, batch: ReportBatch) -> Tensor: ...

    def train_shared_parts(self) -> None: ...

    def eval(self) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...


class ContinualStrategy(nn.Module):
    """The interface, and SeqFT's answers where a subclass keeps them (Table 1: "sequentially fine-tuning all
    parameters across a sequence of tasks", the LLM frozen, §3.2).

    A strategy is an ``nn.Module`` child of the method, so parameters it owns (ProgPrompt's tokens) are saved and
    optimised with the method's.
    """

    name: ClassVar[str] = "seqft"
    own_prompts: ClassVar[bool] = False
    """Every domain has its own :class:`~radiolm.parts.domain_prompts.DomainPrompt` (else one shared set)."""
    keeps_stage_state: ClassVar[bool] = False
    """:meth:`end_stage` leaves state that the driver must rebuild when it resumes a run."""

    def prompt_domains(self, names: list[str]) -> list[str]:
        """The domains that get a :class:`~radiolm.parts.domain_prompts.DomainPrompt`."""
        return list(names) if self.own_prompts else list(names[:1])

    def projection_sharing(self, names: list[str], share: dict[str, str]) -> dict[str, str] | None:
        """``{domain: owner}`` of ``P`` for the prompt set (the config's ``share_projection_with``)."""
        return share if self.own_prompts else None

    def bind(self, model: ContinualModel) -> None:
        """Called once when the method is built (after its parts exist)."""

    def sources(self, model: ContinualModel, domain: str) -> PromptSources:
        """SeqFT: every domain uses the one shared set."""
        first = model.names[0]
        return PromptSources((first,), first, first, first)

    def encoder_frozen(self, stage: int) -> bool:
        """``E`` and ``M`` are frozen in ``stage`` (kept in eval mode, as the frozen LLM)."""
        return False

    def set_stage(self, model: ContinualModel, stage: int) -> None:
        """SeqFT: every parameter outside the LLM trains in every stage (``E`` as its ``trainable`` says)."""
        freeze_outside_llm(model)
        model.train_shared_parts()
        train_prompt(model, self.sources(model, model.names[stage]))
        if model.volume_adapter is not None:
            model.volume_adapter.requires_grad_(True)
        model.hidden_projection.requires_grad_(True)

    def add_losses(self, model: ContinualModel, batch: ReportBatch, losses: dict[str, Tensor], total: Tensor) -> Tensor:
        """Add named terms to ``losses`` (logged) and return the optimised total. None by default."""
        return total

    def end_stage(self, model: ContinualModel, stage: int, loader: Iterable[ReportBatch], device: torch.device) -> None:
        """After stage ``stage`` (its best weights loaded), with its training loader. Nothing by default."""

    def on_use_domain(self, model: ContinualModel, name: str) -> None:
        """Inference switches to ``name``'s parameters. Nothing to do where all of them live in the module."""


class SeqFT(ContinualStrategy):
    """Table 1's SeqFT: one set of parameters for every domain, all of them trained in every stage (§3.2)."""


def freeze_outside_llm(model: ContinualModel) -> None:
    """``requires_grad = False`` on every parameter outside the LLM (the LLM stays as its ``trainable`` says)."""
    for name, param in model.named_parameters():
        if not name.startswith("language_model."):
            param.requires_grad_(False)


def train_prompt(model: ContinualModel, sources: PromptSources, only: str | None = None) -> None:
    """Train the prompt parameters ``sources`` names; with ``only``, just those owned by domain ``only``."""
    prompts = model.prompts
    parts: list[tuple[str, Any]] = [(d, prompts[d].domain_token) for d in sources.tokens]
    parts += [(sources.queries, prompts[sources.queries].queries), (sources.norm, prompts[sources.norm].norm)]
    parts += [(prompts.projection_owner[sources.projection], prompts.projection(sources.projection))]
    for owner, part in parts:
        if only is None or owner == only:
            part.requires_grad_(True)


def move_batch(batch: ReportBatch, device: torch.device) -> ReportBatch:
    """``batch`` with its tensors on ``device`` (outside a Trainer, which moves batches itself)."""
    return batch.map_tensors(lambda x: x.to(device))
