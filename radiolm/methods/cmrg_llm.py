"""CMRG-LLM (Sun et al.; ``../shared/papers/cmrg_llm_continual.md``): continual report generation across domains.

A frozen multilingual LLM is prompted with ``[f^t, f_i^v, f^p]`` (§2.2): the domain token ``f^t``, the visual
prompt ``f_i^v = LN(1/k_i sum_k P(M(q, E(x_k), E(x_k))))`` and the instruction ``f^p`` (the prompt template's text
after ``{image}``). Every domain owns its ``f^t``, ``q``, LayerNorm and (except where shared) ``P``
(:class:`~radiolm.parts.domain_prompts.DomainPromptSet`); CT volumes pass the 2D-3D adapter ``A`` first (§2.3).

The module is one stage of the sequence at a time: :meth:`CMRGLLM.set_stage` sets what trains (§2.3, "Tunable
Parameters"), and :meth:`CMRGLLM.use_domain` which domain's parameters inference uses (the test set's, §2.3). The
sequence driver (training the stages in order, testing every seen task) sets both.

What trains in each stage, whose prompt parameters a domain uses, extra loss terms and what a finished stage
leaves behind are the injected strategy's (:mod:`radiolm.continual.strategies`; ``model.init_args.strategy``):

* ``cmrg`` (the method, §2.3): stage 1 (XE1) trains ``E`` (as the encoder's ``trainable`` says), ``M``, ``P_h`` and
  the domain's ``q, P, LN, f^t``; later stages the domain's own ``q, LN, f^t``, its ``P`` when it has its own (XE2
  shares XE1's), ``A`` when its input is a volume (CTC); ``E``, ``M`` and earlier domains' parameters are frozen.
  Its ``own_queries`` / ``own_domain_token`` / ``own_projection`` are Table 2's ``q`` / ``f^t`` / ``P`` columns;
  ``contrastive`` and ``use_centres`` below are its ``L^SC`` and ``h_d^c`` columns.
* Table 1's baselines, the LLM frozen in all: ``seqft``, ``per_task_ft``, ``replay``, ``ewc``, ``der``,
  ``progprompt`` (their values as ``class_path`` / ``init_args``).

Losses (§2.3): ``L = L^LM + lambda_1 L^SC(_center) [+ lambda_2 L^TP on CT]``. ``h^p = P_h(mean of the LLM's last
hidden states over the prompt)``: the states of the prompt positions do not depend on the report (causal
attention), so the one decoder pass of ``L^LM`` gives them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from radiolm.batch import ReportBatch, require_images, require_volumes
from radiolm.continual.strategies import ContinualStrategy, resolve_strategy
from radiolm.data.labels import CHEXPERT_14, label_index
from radiolm.data.transforms import ImageTransformConfig
from radiolm.errors import RadioLMError
from radiolm.methods.base import ReportGenerationModule
from radiolm.parts.class_centres import ClassCentres
from radiolm.parts.domain_prompts import DomainPromptSet, QueryAggregator
from radiolm.parts.language_model import LanguageModel
from radiolm.parts.losses import centre_triplet_loss, multilabel_supcon_loss
from radiolm.parts.mappers import Adapter2D3D
from radiolm.parts.prompt import PromptInputs, PromptTemplate
from radiolm.parts.vision import VisionEncoder
from radiolm.parts.visual_prefix import encode_views

__all__ = ["CMRGLLM", "CMRG_TEMPLATE", "CMRGDomain"]

# [f^t, f_i^v, f^p] (§2.2): the domain token and the visual prompt fill {image}, the instruction follows. The
# paper's instruction is in its supplementary material, which is not available: this one is a config value.
CMRG_TEMPLATE = "{image} Generate a comprehensive and detailed diagnosis report for this chest image.\n"


@dataclass
class CMRGDomain:
    """One task of the sequence (§2.1, §2.2).

    Attributes:
        name: Its name (``XE1``, ``XE2``, ``XC``, ``CTC`` in the paper).
        share_projection_with: An earlier domain whose ``P`` this one uses, frozen (§2.3: XE2 uses XE1's).
        volume: Its inputs are CT volumes, passed through the 2D-3D adapter ``A`` (§2.3: CTC).
        update_centres: Its single-label features update the class centres (§2.3: XE1, XE2 and XC do).
    """

    name: str
    share_projection_with: str | None = None
    volume: bool = False
    update_centres: bool = True


class CMRGLLM(ReportGenerationModule):
    """CMRG-LLM.

    Args:
        vision_encoder: ``E``: Swin-B, ImageNet-pretrained (§3.1); its ``trainable`` applies in stage 1.
        language_model: The frozen multilingual LLM (§3.1: Qwen-7B).
        domains: The tasks in training order (§2.2: XE1 -> XE2 -> XC -> CTC).
        volume_adapter: ``A`` (§2.3), needed when a domain has ``volume: true``.
        num_queries: ``L_q`` (§2.2 leaves it open; 32 as BLIP-2 [16]).
        attention_heads: Heads of ``M`` (§2.2 leaves it open; 8).
        hidden_dim: Width of ``h^p`` after ``P_h`` (§2.3 leaves it open; 128 as SupCon's projection [14]).
        sc_weight: ``lambda_1`` (§2.3 leaves its value open; 0.1).
        tp_weight: ``lambda_2`` (§2.3 leaves its value open; 0.1).
        temperature: ``tau`` of L^SC (§2.3 leaves it open; 0.07 as SupCon [14]).
        margin: ``delta`` of L^TP (§2.3 leaves it open; 0.5).
        contrastive: L^SC on (Table 2's ablation turns it off; then no centres either).
        use_centres: The previous stages' class centres join the positives (L^SC_center; Table 2's ``h_d^c``).
        centres_in_denominator: The centres also join L^SC_center's denominator (§2.3: "similar to Eq. (2)").
        normalize_features: Inner products of unit vectors in L^SC and L^TP (§2.3 writes ``<.,.>``).
        ignored_observations: Not counted as a second label when centres are computed
            (:data:`radiolm.parts.class_centres.DEFAULT_IGNORED` when ``None``).
        centre_momentum: EMA momentum of the centres (§2.3 leaves the update rule open).
        related_xray: ``{CT-only observation: most related X-ray class}`` (the paper's CT disease graph is in its
            supplementary material): in volume domains a sample positive for a key gets L^TP toward the key's X-ray
            centre, and the key's own centre is not a positive. Names are observations of the label vector.
        train_hidden_projection: ``P_h`` trains in the ``first`` stage only or in ``every`` stage (§2.3 leaves it
            open). ``first``: a later stage lowers L^SC_center only by moving its own LLM features toward the earlier
            centres (the transfer §2.3 and Fig. 2 describe), not by moving ``P_h``, which generation never uses.
        prompt_init: A new domain's own prompt parameters (``f^t``, ``q``, LN, ``P``) start ``random`` or as copies of
            the ``previous`` domain's when its stage begins (§2.3 leaves it open).
        strategy: ``cmrg`` (the method), a Table 1 baseline by name (``seqft``, ``per_task_ft``, ``replay``, ``ewc``,
            ``der``, ``progprompt``; :data:`radiolm.continual.strategies.STRATEGIES`), or a strategy object
            (``class_path`` / ``init_args``: its values, and Table 2's switches of ``cmrg``).
        stage: The stage the module starts in (0-based; the sequence driver sets it).
        **kwargs: :class:`ReportGenerationModule` arguments (prompt, decoding, optimizer, schedule, ...).
    """

    def __init__(
        self,
        vision_encoder: VisionEncoder,
        language_model: LanguageModel,
        domains: list[CMRGDomain],
        volume_adapter: Adapter2D3D | None = None,
        num_queries: int = 32,
        attention_heads: int = 8,
        hidden_dim: int = 128,
        sc_weight: float = 0.1,
        tp_weight: float = 0.1,
        temperature: float = 0.07,
        margin: float = 0.5,
        contrastive: bool = True,
        use_centres: bool = True,
        centres_in_denominator: bool = True,
        normalize_features: bool = True,
        ignored_observations: list[str] | None = None,
        centre_momentum: float = 0.9,
        related_xray: dict[str, str] | None = None,
        train_hidden_projection: Literal["first", "every"] = "first",
        prompt_init: Literal["random", "previous"] = "random",
        strategy: ContinualStrategy | str = "cmrg",
        stage: int = 0,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("prompt") is None:
            kwargs["prompt"] = PromptTemplate(CMRG_TEMPLATE)
        super().__init__(language_model=language_model, **kwargs)
        if train_hidden_projection not in ("first", "every"):
            raise ValueError(f"train_hidden_projection must be first or every, got {train_hidden_projection!r}")
        if prompt_init not in ("random", "previous"):
            raise ValueError(f"prompt_init must be random or previous, got {prompt_init!r}")
        if not domains:
            raise RadioLMError("CMRGLLM: model.init_args.domains is empty; list the tasks in training order")
        if any(d.volume for d in domains) and volume_adapter is None:
            raise RadioLMError(
                "CMRGLLM: a domain has volume: true but model.init_args.volume_adapter is not set; add "
                "class_path: radiolm.parts.Adapter2D3D with the volumes' depth"
            )
        if language_model.trainable != "frozen":
            raise RadioLMError("CMRGLLM: the LLM is frozen in CMRG-LLM (§2.2); set language_model trainable: frozen")
        for name in [*(related_xray or {}), *(related_xray or {}).values()]:
            label_index(name)  # a clear KeyError naming the valid observations
        self.vision_encoder = vision_encoder
        self.volume_adapter = volume_adapter
        self.domains = list(domains)
        self.strategy = resolve_strategy(strategy)
        self.names = [d.name for d in domains]
        share = {d.name: d.share_projection_with for d in domains if d.share_projection_with}
        llm_dim, enc_dim = language_model.hidden_size, vision_encoder.out_dim
        self.aggregator = QueryAggregator(enc_dim, attention_heads)
        # per-domain prompt sets (cmrg, progprompt) or the one shared set (seqft and the baselines on it)
        self.prompts = DomainPromptSet(
            self.strategy.prompt_domains(self.names),
            enc_dim,
            llm_dim,
            num_queries,
            self.strategy.projection_sharing(self.names, share),
            _embedding_std(language_model),
        )
        self.hidden_projection = nn.Linear(llm_dim, hidden_dim)  # P_h
        self.centres = ClassCentres(hidden_dim, list(CHEXPERT_14), ignored_observations, centre_momentum)
        self.sc_weight, self.tp_weight, self.temperature, self.margin = sc_weight, tp_weight, temperature, margin
        self.contrastive, self.use_centres = contrastive, use_centres
        self.centres_in_denominator, self.normalize_features = centres_in_denominator, normalize_features
        self.related_xray = dict(related_xray or {})
        self.train_hidden_projection = train_hidden_projection
        self.prompt_init = prompt_init
        # E's own trainable setting (frozen / lora / full) is what stage 1 trains of it
        self._encoder_grad = {n: p.requires_grad for n, p in vision_encoder.named_parameters()}
        self.stage = 0
        self.active_domain = self.names[0]
        self.strategy.bind(self)
        self.set_stage(stage, begins=False)

    # -- stages and domains ---------------------------------------------------------------------------------------
    def set_stage(self, stage: int, begins: bool = True) -> None:
        """Train stage ``stage`` (0-based) next: ``requires_grad`` as the strategy says (§2.3 for ``cmrg``), and its
        domain active.

        Args:
            stage: Index into :attr:`domains`.
            begins: The stage begins (call once; a resumed stage has both in its checkpoint): the centres so far
                become the ``h^c`` of this stage, and with ``prompt_init: previous`` the domain's own prompt
                parameters start as copies of the previous domain's.
        """
        if not 0 <= stage < len(self.domains):
            raise RadioLMError(f"CMRGLLM: stage {stage} is not one of 0..{len(self.domains) - 1} ({self.names})")
        self.stage = stage
        self.active_domain = self.names[stage]
        self.strategy.set_stage(self, stage)
        if self.train_hidden_projection == "every":
            self.hidden_projection.requires_grad_(True)
        if begins:
            self.centres.snapshot()
            if self.prompt_init == "previous" and stage > 0 and self.active_domain in self.prompts.domains:
                self.prompts.start_from(self.active_domain, self.names[stage - 1])

    def train_shared_parts(self) -> None:
        """``E`` (as its own ``trainable`` says: frozen / lora / full) and ``M`` train (strategies call this)."""
        for name, param in self.vision_encoder.named_parameters():
            param.requires_grad_(self._encoder_grad[name])
        self.aggregator.requires_grad_(True)

    def use_domain(self, name: str) -> None:
        """Inference (validation, test, predict) uses ``name``'s parameters: the test set's domain (§2.3)."""
        if name not in self.names:
            raise RadioLMError(f"CMRGLLM: unknown domain {name!r}; the domains are {self.names}")
        self.strategy.on_use_domain(self, name)
        self.active_domain = name

    @property
    def keeps_stage_state(self) -> bool:
        """The strategy leaves state after a stage (a buffer, a Fisher, cached weights) that a resumed run rebuilds
        with :meth:`end_stage` from each finished stage's checkpoint."""
        return self.strategy.keeps_stage_state

    def end_stage(self, stage: int, loader: Iterable[ReportBatch], device: Any = None) -> None:
        """Stage ``stage`` is done and its best weights are loaded: the strategy keeps what it needs of it.

        Args:
            stage: 0-based.
            loader: The stage's training loader (buffers draw from it, EWC's Fisher averages over it).
            device: Where to run (default: where the parameters are).
        """
        device = torch.device(device) if device is not None else self.aggregator.attention.in_proj_weight.device
        self.to(device)
        self.strategy.end_stage(self, stage, loader, device)

    def train(self, mode: bool = True) -> CMRGLLM:
        """Where the strategy freezes ``E`` and ``M`` (CMRG-LLM after stage 1) they stay in eval mode (no dropout),
        as a frozen LLM does."""
        super().train(mode)
        if self.strategy.encoder_frozen(self.stage):
            self.vision_encoder.eval()
            self.aggregator.eval()
        return self

    @property
    def image_transform(self) -> ImageTransformConfig:
        return self.vision_encoder.image_transform

    # -- the hot path: encode -> prompt -> LLM -> losses ----------------------------------------------------------
    def encode(self, batch: ReportBatch) -> Tensor:
        """``[f^t, f_i^v]`` of the active domain ``[B, n_t + L_q, D]`` (the instruction ``f^p`` follows in the
        template; ``n_t = 1`` domain token, ProgPrompt's chain of them)."""
        name = self.active_domain
        domain = self.domains[self.names.index(name)]
        if domain.volume:
            assert self.volume_adapter is not None
            images = self.volume_adapter(require_volumes(batch, "CMRGLLM").to(self.aggregator.attention.in_proj_weight))
            tokens, encoded = (
                self.vision_encoder(images),
                torch.ones(len(batch), 1, dtype=torch.bool, device=images.device),
            )
        else:
            images, view_mask = require_images(batch, "CMRGLLM")
            tokens, encoded = encode_views(self.vision_encoder, images, view_mask, "mean")
        sources = self.strategy.sources(self, name)
        visual = self.prompts.visual_prompt(
            sources.norm, self.aggregator, tokens, encoded, sources.queries, sources.projection
        )
        tokens_t = [self.prompts.domain_token(d, len(batch), visual.dtype) for d in sources.tokens]
        return torch.cat([*tokens_t, visual], dim=1)

    def compute_losses(self, batch: ReportBatch) -> dict[str, Tensor]:
        """``L = L^LM + lambda_1 L^SC(_center) + lambda_2 L^TP`` of the active stage (§2.3).

        Returns:
            ``{"loss", "lm"}`` plus ``"sc"`` (when contrastive) and ``"tp"`` (volume domains with ``related_xray``).
        """
        domain = self.domains[self.names.index(self.active_domain)]
        hidden, inputs = self.prompt_states(batch)
        assert inputs.labels is not None
        losses = {"lm": self.language_model.loss_from_hidden(hidden, inputs.labels)}
        total = losses["lm"]
        if self.training:
            total = self.strategy.add_losses(self, batch, losses, total)
        if self.contrastive:
            features = self.hidden_features(hidden, inputs.attention_mask, inputs.labels)  # h^p [B, hidden_dim]
            positive = batch.labels.to(features.device) == 1
            losses["sc"] = self.supcon(features, positive, domain)
            total = total + self.sc_weight * losses["sc"]
            if domain.volume and self.related_xray and self.use_centres:
                losses["tp"] = self.triplet(features, positive)
                total = total + self.tp_weight * losses["tp"]
            if domain.update_centres and self.training:
                self.centres.update(features, positive)
        losses["loss"] = total
        return losses

    def hidden_features(self, hidden: Tensor, attention_mask: Tensor, labels: Tensor) -> Tensor:
        """``h^p = P_h(1/L_h sum_l h(l))`` (§2.3): the LLM's last hidden states averaged over the prompt positions.

        Args:
            hidden: ``[B, T, D_llm]`` last hidden states of the prompt + report sequence.
            attention_mask: ``[B, T]`` (1 on real tokens).
            labels: ``[B, T]``; ``-100`` on the prompt (and padding), the report's token ids elsewhere.

        Returns:
            ``[B, hidden_dim]``.
        """
        prompt_mask = (attention_mask.bool() & (labels == -100))[..., None]  # [B, T, 1]
        pooled = (hidden * prompt_mask).sum(1) / prompt_mask.sum(1).clamp(min=1)  # mean over L_h
        return self.hidden_projection(pooled.to(self.hidden_projection.weight.dtype))

    @torch.no_grad()
    def prompt_features(self, batch: ReportBatch) -> Tensor:
        """``h^p`` ``[B, hidden_dim]`` of a batch with the active domain's parameters, as L^SC sees it (Fig. 2).

        The prompt's states do not depend on the report (causal attention), so the references fill the template."""
        hidden, inputs = self.prompt_states(batch)
        assert inputs.labels is not None
        return self.hidden_features(hidden, inputs.attention_mask, inputs.labels)

    def prompt_states(self, batch: ReportBatch) -> tuple[Tensor, PromptInputs]:
        """The LLM's last hidden states ``[B, T, D_llm]`` over the active domain's prompt + report sequence, and
        that sequence (its ``labels`` mark the report tokens)."""
        inputs = self.prompt.build(self.language_model, self.encode(batch), batch.reports)
        return self.language_model.hidden_states(inputs.inputs_embeds, inputs.attention_mask), inputs

    def lm_loss(self, batch: ReportBatch) -> Tensor:
        """``L^LM`` of a batch with the active domain's parameters (the strategies' term on buffered studies:
        Replay's loss, EWC's Fisher)."""
        hidden, inputs = self.prompt_states(batch)
        assert inputs.labels is not None
        return self.language_model.loss_from_hidden(hidden, inputs.labels)

    def report_states(self, batch: ReportBatch) -> tuple[Tensor, Tensor, list[Tensor]]:
        """The LLM's last hidden states where it predicts the report (each report token and eos), for DER's
        logits on buffered studies.

        Returns:
            ``(states [N, D], targets [N], per study [n_i, D])``: the frozen LM head turns ``states`` into the logits
            over the report tokens (``CE(head(states), targets)`` is :meth:`lm_loss`).
        """
        hidden, inputs = self.prompt_states(batch)
        assert inputs.labels is not None
        targets = inputs.labels[:, 1:]
        keep = targets != -100  # [B, T - 1]
        states = hidden[:, :-1][keep]
        return states, targets[keep], list(states.split(keep.sum(1).tolist()))

    def supcon(self, features: Tensor, positive: Tensor, domain: CMRGDomain) -> Tensor:
        """L^SC (stage 1, or without centres) or L^SC_center (later stages): Eq. 2 with ``S'`` of §2.3."""
        valid = self.centres.valid.clone()
        if domain.volume:  # CT-only findings have no common X-ray centre: L^TP transfers them instead
            for name in self.related_xray:
                valid[label_index(name)] = False
        with_centres = self.use_centres and bool(valid.any())
        return multilabel_supcon_loss(
            features,
            positive,
            self.temperature,
            self.centres.previous if with_centres else None,
            valid if with_centres else None,
            self.centres_in_denominator,
            self.normalize_features,
        )

    def triplet(self, features: Tensor, positive: Tensor) -> Tensor:
        """L^TP (§2.3): one term per (sample, CT-only finding) whose related X-ray centre exists."""
        valid = self.centres.valid
        no_finding = self.centres.no_finding()
        rows, related = [], []
        if bool(valid[no_finding]):
            for ct_name, xray_name in self.related_xray.items():
                target = label_index(xray_name)
                if not bool(valid[target]):
                    continue
                hits = positive[:, label_index(ct_name)].nonzero().flatten()
                rows.append(hits)
                related += [target] * len(hits)
        if not related:
            return features.sum() * 0.0
        index = torch.cat(rows)
        previous = self.centres.previous
        return centre_triplet_loss(
            features[index], previous[related], previous[no_finding], self.margin, self.normalize_features
        )

    # -- checkpoints: every parameter outside the LLM ------------------------------------------------------------
    def _checkpoint_keys(self) -> set[str]:
        """Trainable weights and every parameter outside the LLM, frozen earlier-domain ones included: a later stage
        resumes, and every seen task is tested, from the checkpoint alone."""
        keys = super()._checkpoint_keys()
        return keys | {n for n, _ in self.named_parameters() if not n.startswith("language_model.")}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["cmrg_stage"] = self.stage


def _embedding_std(lm: LanguageModel) -> float:
    """Scale of the LLM's input embeddings: ``f^t`` starts like a word embedding."""
    weight = lm.base.get_input_embeddings().weight
    return 0.02 if weight.is_meta else float(weight.detach().float().std())
