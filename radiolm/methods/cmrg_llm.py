"""CMRG-LLM (Sun et al.; ``../shared/papers/cmrg_llm_continual.md``): continual report generation across domains.

A frozen multilingual LLM is prompted with ``[f^t, f_i^v, f^p]`` (§2.2): the domain token ``f^t``, the visual
prompt ``f_i^v = LN(1/k_i sum_k P(M(q, E(x_k), E(x_k))))`` and the instruction ``f^p`` (the prompt template's text
after ``{image}``). Every domain owns its ``f^t``, ``q``, LayerNorm and (except where shared) ``P``
(:class:`~radiolm.parts.domain_prompts.DomainPromptSet`); CT volumes pass the 2D-3D adapter ``A`` first (§2.3).

The module is one stage of the sequence at a time: :meth:`CMRGLLM.set_stage` sets what trains (§2.3, "Tunable
Parameters"), and :meth:`CMRGLLM.use_domain` which domain's parameters inference uses (the test set's, §2.3). The
sequence driver (training the stages in order, testing every seen task) sets both.

What trains in stage ``t`` (``strategy: cmrg``):

* stage 1 (XE1): ``E`` (as the encoder's ``trainable`` says), ``M``, and the domain's ``q, P, LN, f^t``; ``P_h``;
* later stages: the domain's own ``q, LN, f^t``, its ``P`` when it has its own (XE2 shares XE1's, §2.3), ``A`` when
  its input is a volume (CTC); ``E``, ``M`` and every earlier domain's parameters are frozen.

``strategy: seqft`` is Table 1's SeqFT baseline: one set of prompt parameters for every domain, and every
parameter outside the LLM (``E``, ``M``, ``q, P, LN, f^t``, ``A``, ``P_h``) trains in every stage.

Losses (§2.3): ``L = L^LM + lambda_1 L^SC(_center) [+ lambda_2 L^TP on CT]``. ``h^p = P_h(mean of the LLM's last
hidden states over the prompt)``: the states of the prompt positions do not depend on the report (causal
attention), so the one decoder pass of ``L^LM`` gives them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from radiolm.batch import ReportBatch, require_images, require_volumes
from radiolm.data.labels import CHEXPERT_14, label_index
from radiolm.data.transforms import ImageTransformConfig
from radiolm.errors import RadioLMError
from radiolm.methods.base import ReportGenerationModule
from radiolm.parts.class_centres import ClassCentres
from radiolm.parts.domain_prompts import DomainPromptSet, QueryAggregator
from radiolm.parts.language_model import LanguageModel
from radiolm.parts.losses import centre_triplet_loss, multilabel_supcon_loss
from radiolm.parts.mappers import Adapter2D3D
from radiolm.parts.prompt import PromptTemplate
from radiolm.parts.vision import VisionEncoder
from radiolm.parts.visual_prefix import encode_views

__all__ = ["CMRGLLM", "CMRG_TEMPLATE", "CMRGDomain"]

# [f^t, f_i^v, f^p] (§2.2): the domain token and the visual prompt fill {image}, the instruction follows. The
# paper's instruction is in its supplementary material, which is not available: this one is a config value.
CMRG_TEMPLATE = "{image} Generate a comprehensive and detailed diagnosis report for this chest image.\n"

Strategy = Literal["cmrg", "seqft"]


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
        train_hidden_projection: ``P_h`` trains in the ``first`` stage only (later centres stay comparable) or in
            ``every`` stage (§2.3 leaves it open).
        strategy: ``cmrg`` (the method) or ``seqft`` (Table 1's SeqFT: shared parameters, all of them trained).
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
        strategy: Strategy = "cmrg",
        stage: int = 0,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("prompt") is None:
            kwargs["prompt"] = PromptTemplate(CMRG_TEMPLATE)
        super().__init__(language_model=language_model, **kwargs)
        if strategy not in ("cmrg", "seqft"):
            raise ValueError(f"strategy must be cmrg or seqft, got {strategy!r}")
        if train_hidden_projection not in ("first", "every"):
            raise ValueError(f"train_hidden_projection must be first or every, got {train_hidden_projection!r}")
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
        self.strategy: Strategy = strategy
        self.names = [d.name for d in domains]
        share = {d.name: d.share_projection_with for d in domains if d.share_projection_with}
        llm_dim, enc_dim = language_model.hidden_size, vision_encoder.out_dim
        self.aggregator = QueryAggregator(enc_dim, attention_heads)
        # SeqFT keeps one set of prompt parameters (the first domain's) for every domain
        prompt_names = self.names if strategy == "cmrg" else self.names[:1]
        self.prompts = DomainPromptSet(
            prompt_names,
            enc_dim,
            llm_dim,
            num_queries,
            share if strategy == "cmrg" else None,
            _embedding_std(language_model),
        )
        self.hidden_projection = nn.Linear(llm_dim, hidden_dim)  # P_h
        self.centres = ClassCentres(hidden_dim, list(CHEXPERT_14), ignored_observations, centre_momentum)
        self.sc_weight, self.tp_weight, self.temperature, self.margin = sc_weight, tp_weight, temperature, margin
        self.contrastive, self.use_centres = contrastive, use_centres
        self.centres_in_denominator, self.normalize_features = centres_in_denominator, normalize_features
        self.related_xray = dict(related_xray or {})
        self.train_hidden_projection = train_hidden_projection
        # E's own trainable setting (frozen / lora / full) is what stage 1 trains of it
        self._encoder_grad = {n: p.requires_grad for n, p in vision_encoder.named_parameters()}
        self.stage = 0
        self.active_domain = self.names[0]
        self.set_stage(stage, snapshot_centres=False)

    # -- stages and domains ---------------------------------------------------------------------------------------
    def set_stage(self, stage: int, snapshot_centres: bool = True) -> None:
        """Train stage ``stage`` (0-based) next: set ``requires_grad`` as §2.3 says and make its domain active.

        Args:
            stage: Index into :attr:`domains`.
            snapshot_centres: The centres so far become the ``h^c`` of this stage (call once when a stage
                begins; a resumed stage has its snapshot in the checkpoint).
        """
        if not 0 <= stage < len(self.domains):
            raise RadioLMError(f"CMRGLLM: stage {stage} is not one of 0..{len(self.domains) - 1} ({self.names})")
        self.stage = stage
        self.active_domain = self.names[stage]
        domain = self.domains[stage]
        for name, param in self.named_parameters():
            if not name.startswith("language_model."):
                param.requires_grad_(False)
        first = stage == 0
        if first or self.strategy == "seqft":
            for name, param in self.vision_encoder.named_parameters():
                param.requires_grad_(self._encoder_grad[name])
            self.aggregator.requires_grad_(True)
        own = self.prompts[self.prompt_domain(domain.name)]
        own.domain_token.requires_grad_(True)
        own.queries.requires_grad_(True)
        own.norm.requires_grad_(True)
        if own.projection is not None:
            own.projection.requires_grad_(True)
        if self.volume_adapter is not None and (domain.volume or self.strategy == "seqft"):
            self.volume_adapter.requires_grad_(True)
        if first or self.strategy == "seqft" or self.train_hidden_projection == "every":
            self.hidden_projection.requires_grad_(True)
        if snapshot_centres:
            self.centres.snapshot()

    def use_domain(self, name: str) -> None:
        """Inference (validation, test, predict) uses ``name``'s parameters: the test set's domain (§2.3)."""
        if name not in self.names:
            raise RadioLMError(f"CMRGLLM: unknown domain {name!r}; the domains are {self.names}")
        self.active_domain = name

    def prompt_domain(self, name: str) -> str:
        """Whose prompt parameters domain ``name`` uses (its own; under SeqFT the one shared set)."""
        return name if self.strategy == "cmrg" else self.names[0]

    def train(self, mode: bool = True) -> CMRGLLM:
        """After stage 1 the frozen ``E`` and ``M`` stay in eval mode (no dropout), as a frozen LLM does."""
        super().train(mode)
        if self.stage > 0 and self.strategy == "cmrg":
            self.vision_encoder.eval()
            self.aggregator.eval()
        return self

    @property
    def image_transform(self) -> ImageTransformConfig:
        return self.vision_encoder.image_transform

    # -- the hot path: encode -> prompt -> LLM -> losses ----------------------------------------------------------
    def encode(self, batch: ReportBatch) -> Tensor:
        """``[f^t, f_i^v]`` of the active domain ``[B, 1 + L_q, D]`` (the instruction ``f^p`` follows in the
        template)."""
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
        visual = self.prompts.visual_prompt(self.prompt_domain(name), self.aggregator, tokens, encoded)
        token = self.prompts.domain_token(self.prompt_domain(name), len(batch), visual.dtype)
        return torch.cat([token, visual], dim=1)

    def compute_losses(self, batch: ReportBatch) -> dict[str, Tensor]:
        """``L = L^LM + lambda_1 L^SC(_center) + lambda_2 L^TP`` of the active stage (§2.3).

        Returns:
            ``{"loss", "lm"}`` plus ``"sc"`` (when contrastive) and ``"tp"`` (volume domains with ``related_xray``).
        """
        domain = self.domains[self.names.index(self.active_domain)]
        inputs = self.prompt.build(self.language_model, self.encode(batch), batch.reports)
        assert inputs.labels is not None
        hidden = self.language_model.hidden_states(inputs.inputs_embeds, inputs.attention_mask)
        losses = {"lm": self.language_model.loss_from_hidden(hidden, inputs.labels)}
        total = losses["lm"]
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
        inputs = self.prompt.build(self.language_model, self.encode(batch), batch.reports)
        assert inputs.labels is not None
        hidden = self.language_model.hidden_states(inputs.inputs_embeds, inputs.attention_mask)
        return self.hidden_features(hidden, inputs.attention_mask, inputs.labels)

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
