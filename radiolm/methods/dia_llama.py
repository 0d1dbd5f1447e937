"""Dia-LLaMA (Chen et al.; ``../shared/papers/dia_llama.md``): CT report generation with diagnostic prompts.

A CT volume is encoded by a 3D ViT into M patch features (Eq. 3) that a perceiver turns into N visual embeddings
(Eq. 4). In parallel, disease-aware attention pools the patch features into one feature per disease (Eq. 5), a
prototype memory diagnoses each disease by its closer prototype and is trained with L_DP (Eq. 6), and the
diagnosis becomes a prompt placed after the visual tokens (P = {S, D}, Eq. 1). The loss is
L = L_DP + lambda * L_LM (Eq. 7).

The ablations are constructor values (YAML / CLI overrides), not classes: ``disease_attention`` (DAA),
``prototype_memory`` (DPM), ``prompt_type`` (``none`` = no DTP, ``text`` = DTP, ``token``, ``feature``; Table 3).
With DAA, DPM and the prompt all off, no diagnosis branch is built: the RadFM-style baseline of Table 2.

Prompt layout: ``[bos, before, visual (N), after, diagnosis text, report, eos]`` for ``text`` (the diagnosis is
the PromptTemplate's per-study context); for ``token`` and ``feature`` the diagnosis is made of embeddings, not
text, so the L diagnosis embeddings follow the N visual tokens in the template's ``{image}`` slot.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn
from torchmetrics.classification import MultilabelF1Score

from radiolm.batch import ReportBatch, require_volumes
from radiolm.data.labels import CHEXPERT_14, label_index
from radiolm.errors import DataError
from radiolm.methods.base import ReportGenerationModule
from radiolm.parts.diagnostic_prompt import (
    DiagnosisTokenPrompt,
    DiagnosticTextPrompt,
    PromptType,
    diagnosis_targets,
)
from radiolm.parts.disease_attention import DiseaseAwareAttention, MeanPoolDiseaseFeatures
from radiolm.parts.generation import generate_reports
from radiolm.parts.language_model import LanguageModel
from radiolm.parts.mappers import MapperFactory, PerceiverResampler
from radiolm.parts.prompt import PromptInputs
from radiolm.parts.prototype_memory import DiseaseClassifier, DiseasePrototypeMemory
from radiolm.parts.volume_encoder import VolumeEncoder

__all__ = ["DiaLLaMA"]

PromptLabels = Literal["ground_truth", "predicted"]


class DiaLLaMA(ReportGenerationModule):
    """Dia-LLaMA.

    Args:
        volume_encoder: 3D ViT (RadFM's ViT3D: 256 x 256 x 64 -> 1024 x 768).
        language_model: LLaMA-2-7B with LoRA r=8, alpha=32, dropout 0.1 on q_proj / v_proj (official code).
        visual_mapper: Built as ``visual_mapper(c, d)``; default :class:`PerceiverResampler` (N = 32, Eq. 4).
        prompt_type: Diagnosis in the prompt: ``text`` (DTP, §2.4, the default), ``token``, ``feature`` or
            ``none`` (Table 3).
        disease_attention: DAA (§2.2) on; off: average-pooled patch features (Table 2 ablation, §3.3).
        prototype_memory: DPM (§2.3) on; off: a linear classification head per disease (§3.3).
        train_prompt_labels: Which diagnosis fills the prompt during training. ``ground_truth`` (default, as the
            official code): the LLM learns to write reports consistent with a correct diagnosis instead of
            learning to ignore an early, mostly wrong one, and the diagnosis branch is trained by L_DP alone;
            ``predicted``: the branch's own (detached) diagnosis, as at inference, so train and test prompts match.
            Validation, test and predict always use the prediction.
        lm_weight: lambda of Eq. 7 (§3.2: 4).
        diseases: The L diseases, CheXpert-14 names (default all 14, the CheXbert classes of §3.1).
        text_prompt: Sentence template of the ``text`` prompt (§2.4).
        prototype_temperature: Initial tau of L_DP (0.07), learnable (§2.3).
        prototype_normalize: Cosine similarity in L_DP (default) or the raw dot product of Eq. 6.
        **kwargs: :class:`ReportGenerationModule` arguments (prompt, decoding, optimizer, schedule, ...).
    """

    disease_index: Tensor  # [L] positions of the diseases in the CheXpert-14 label order

    def __init__(
        self,
        volume_encoder: VolumeEncoder,
        language_model: LanguageModel,
        visual_mapper: MapperFactory = PerceiverResampler,
        prompt_type: PromptType = "text",
        disease_attention: bool = True,
        prototype_memory: bool = True,
        train_prompt_labels: PromptLabels = "ground_truth",
        lm_weight: float = 4.0,
        diseases: list[str] | None = None,
        text_prompt: DiagnosticTextPrompt | None = None,
        prototype_temperature: float = 0.07,
        prototype_normalize: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(language_model=language_model, **kwargs)
        if prompt_type not in ("none", "text", "token", "feature"):
            raise ValueError(f"prompt_type must be none, text, token or feature, got {prompt_type!r}")
        if train_prompt_labels not in ("ground_truth", "predicted"):
            raise ValueError(f"train_prompt_labels must be ground_truth or predicted, got {train_prompt_labels!r}")
        if prompt_type == "feature" and not prototype_memory:
            raise ValueError("prompt_type: feature puts the prototypes in the prompt; it needs prototype_memory: true")
        self.volume_encoder = volume_encoder
        c, d = volume_encoder.out_dim, language_model.hidden_size
        self.visual_mapper = visual_mapper(c, d)
        self.prompt_type, self.train_prompt_labels, self.lm_weight = prompt_type, train_prompt_labels, lm_weight
        self.diseases = list(diseases or CHEXPERT_14)
        self.register_buffer("disease_index", torch.tensor([label_index(n) for n in self.diseases]), persistent=False)
        self.text_prompt = text_prompt or DiagnosticTextPrompt()
        self.text_prompt.diseases = self.diseases
        n_dis = len(self.diseases)
        # the diagnosis branch: DAA or mean pooling -> DPM or classification head
        self.with_diagnosis = prompt_type != "none" or disease_attention or prototype_memory
        self.disease_features: nn.Module | None = None
        self.diagnoser: DiseasePrototypeMemory | DiseaseClassifier | None = None
        if self.with_diagnosis:
            self.disease_features = (
                DiseaseAwareAttention(n_dis, volume_encoder.num_patches)
                if disease_attention
                else MeanPoolDiseaseFeatures(n_dis)
            )
            self.diagnoser = (
                DiseasePrototypeMemory(n_dis, c, prototype_temperature, normalize=prototype_normalize)
                if prototype_memory
                else DiseaseClassifier(n_dis, c)
            )
        self.token_prompt = DiagnosisTokenPrompt(d, _embedding_std(language_model)) if prompt_type == "token" else None
        self.feature_prompt = nn.Linear(c, d) if prompt_type == "feature" else None  # prototype (c) -> LLM width
        # the diagnosis branch's own accuracy in validation / test (not a paper metric): micro F1 over diseases
        self.diagnosis_f1 = MultilabelF1Score(num_labels=n_dis, average="micro")

    # -- the hot path: encode -> diagnose -> prompt -> LLM -----------------------------------------------------
    def encode_volume(self, batch: ReportBatch) -> tuple[Tensor, Tensor]:
        """Patch features ``A [B, M, c]`` (Eq. 3) and visual embeddings ``X [B, N, d]`` (Eq. 4)."""
        patches = self.volume_encoder(require_volumes(batch, "DiaLLaMA"))
        return patches, self.visual_mapper(patches)

    def diagnose(self, patches: Tensor) -> tuple[Tensor, Tensor]:
        """Disease features ``D [B, L, c]`` (Eq. 5) and the diagnosis ``[B, L]`` (0 absent / 1 present)."""
        assert self.disease_features is not None and self.diagnoser is not None
        features = self.disease_features(patches)
        return features, self.diagnoser.predict(features)

    def diagnosis_prompt(self, states: Tensor | None, dtype: torch.dtype) -> list[str] | Tensor | None:
        """The diagnosis ``D`` of Eq. 1 as the prompt shows it.

        Args:
            states: Diagnosis ``[B, L]`` (0 absent / 1 present); ``None`` for no diagnosis in the prompt.
            dtype: Of the visual tokens.

        Returns:
            ``B`` sentences (``text``, §2.4), embeddings ``[B, L, d]`` (``token``: ``<POS>``/``<NEG>``; ``feature``:
            the state's prototype, Table 3), or ``None`` (``none``).
        """
        if states is None or self.prompt_type == "none":
            return None
        if self.prompt_type == "text":
            return self.text_prompt(states)
        if self.token_prompt is not None:
            return self.token_prompt(states).to(dtype)
        assert self.feature_prompt is not None and isinstance(self.diagnoser, DiseasePrototypeMemory)
        return self.feature_prompt(self.diagnoser.prototype(states).to(dtype)).to(dtype)  # [B, L, c] -> [B, L, d]

    def prompt_inputs(self, visual: Tensor, states: Tensor | None, reports: list[str] | None) -> PromptInputs:
        """The LLM input: visual tokens, then the diagnosis as the chosen prompt type (Eq. 1), then the report.

        Args:
            visual: ``[B, N, d]``.
            states: Diagnosis ``[B, L]`` that fills the prompt (``None`` for ``prompt_type: none``).
            reports: Targets (training) or ``None`` (generation).
        """
        diagnosis = self.diagnosis_prompt(states, visual.dtype)
        if isinstance(diagnosis, Tensor):  # token / feature: right after the visual tokens
            return self.prompt.build(self.language_model, (visual, diagnosis), reports)
        return self.prompt.build(self.language_model, visual, reports, diagnosis)  # text: after the instruction

    def compute_losses(self, batch: ReportBatch) -> dict[str, Tensor]:
        """``L = L_DP + lambda L_LM`` (Eq. 7); with the classification head (DPM off) its cross-entropy is the
        first term. Returns ``{"loss", "lm", "dp" | "cls"}``."""
        patches, visual = self.encode_volume(batch)
        losses: dict[str, Tensor] = {}
        states = None
        if self.with_diagnosis:
            assert self.diagnoser is not None
            features, predicted = self.diagnose(patches)
            self.require_labels(batch)
            targets = self.targets(batch)
            name = "dp" if isinstance(self.diagnoser, DiseasePrototypeMemory) else "cls"
            losses[name] = self.diagnoser.loss(features, targets)
            states = targets if self.train_prompt_labels == "ground_truth" else predicted.detach()
        inputs = self.prompt_inputs(visual, states, batch.reports)
        assert inputs.labels is not None
        losses["lm"] = self.language_model.loss(inputs.inputs_embeds, inputs.attention_mask, inputs.labels)
        diagnosis = [v for k, v in losses.items() if k in ("dp", "cls")]
        losses["loss"] = self.lm_weight * losses["lm"] + sum(diagnosis)  # Eq. 7
        return losses

    def encode(self, batch: ReportBatch) -> Tensor:
        """Visual tokens as the LLM sees them at inference: ``[B, N, d]``, or ``[B, N + L, d]`` with the
        ``token`` / ``feature`` diagnosis appended."""
        patches, visual = self.encode_volume(batch)
        if self.prompt_type in ("token", "feature"):
            _, states = self.diagnose(patches)
            diagnosis = self.diagnosis_prompt(states, visual.dtype)
            assert isinstance(diagnosis, Tensor)
            visual = torch.cat([visual, diagnosis], dim=1)
        return visual

    def generate(self, batch: ReportBatch) -> list[str]:
        """One report per study, the prompt filled with the predicted diagnosis."""
        patches, visual = self.encode_volume(batch)
        states = None
        if self.with_diagnosis:
            _, states = self.diagnose(patches)
            self.diagnosis_f1.update(states, self.targets(batch))
            if self.prompt_type == "none":
                states = None
        inputs = self.prompt_inputs(visual, states, None)
        return generate_reports(self.language_model, inputs, self.decoding)

    @staticmethod
    def require_labels(batch: ReportBatch) -> None:
        """L_DP (Eq. 6) and the training prompt (§2.4) learn from each study's labels: a batch whose studies all
        have none (-1 everywhere: no ``labels.csv``, or its rows lack these ids) would teach "no disease" to both.

        Raises:
            DataError: with the ids and how to write the labels.
        """
        if bool((batch.labels < 0).all()):
            raise DataError(
                f"Dia-LLaMA needs the CheXpert labels of its training studies; none of {list(batch.ids)[:4]} has any "
                "(no labels.csv, or its rows lack these ids). Write them with `radiolm label --reports reports.csv "
                "--text-field finding --out <root>/labels.csv` or set data.init_args.labels_path"
            )

    def targets(self, batch: ReportBatch) -> Tensor:
        """The L diseases' ground truth ``[B, L]`` (1 present; negative, uncertain and blank absent, §3.1)."""
        return diagnosis_targets(batch.labels.to(self.disease_index.device)[:, self.disease_index])

    # -- the diagnosis branch's own accuracy (validation / test) -----------------------------------------------
    def _log_diagnosis(self, stage: str) -> None:
        """Micro F1 of the diagnosis branch over all diseases and studies of every rank: ``<stage>/diagnosis_f1``."""
        if not self.diagnosis_f1.update_called:
            return
        f1 = float(self.diagnosis_f1.compute())
        self.diagnosis_f1.reset()
        if not self.trainer.sanity_checking:
            self.log(f"{stage}/diagnosis_f1", f1, sync_dist=False)

    def on_validation_epoch_end(self) -> None:
        self._log_diagnosis("val")
        super().on_validation_epoch_end()

    def on_test_epoch_end(self) -> None:
        self._log_diagnosis("test")
        super().on_test_epoch_end()


def _embedding_std(lm: LanguageModel) -> float:
    """Standard deviation of the LLM's input embeddings (the scale of the learnable ``<POS>``/``<NEG>``)."""
    weight = lm.base.get_input_embeddings().weight
    return 0.02 if weight.is_meta else float(weight.detach().float().std())
