"""ReportGenerationModule: the shared LightningModule under every method (DESIGN.md, "methods/").

A method injects its parts, overrides :meth:`encode` (batch -> visual tokens in the LLM space) and, when it has
objectives beyond the report's likelihood, :meth:`compute_losses`. Everything else lives here once:

* training: ``losses = self.compute_losses(batch)``; every term is logged, ``losses["loss"]`` is optimised;
* validation / test: generate, gather every rank's records, keep each id once, score with :mod:`radiolm.metrics`
  against the untruncated references, log, write ``predictions-<stage>-<epoch>.jsonl`` and ``metrics-...json``;
* the optimizer sees trainable parameters only, and checkpoints hold only those (plus buffers outside the LLM),
  so a frozen 7B language model is never written to disk; loading fills the frozen rest from the fresh module.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn

from radiolm.batch import ReportBatch
from radiolm.data.transforms import ImageTransformConfig
from radiolm.errors import RadioLMError
from radiolm.methods.optim import LRSchedule, apply_lr_scale, build_scheduler, parameter_groups
from radiolm.metrics.evaluate import dedupe_records, write_predictions
from radiolm.metrics.protocols import EvaluationProtocol
from radiolm.parts.generation import DecodingConfig, generate_reports
from radiolm.parts.language_model import LanguageModel
from radiolm.parts.prompt import PromptTemplate
from radiolm.parts.trainable import is_scheduled

__all__ = ["ReportGenerationModule"]

log = logging.getLogger(__name__)

# R2GenGPT's public code selects checkpoints by 0.5 * BLEU-4 + 0.5 * CIDEr on the validation split.
DEFAULT_SELECTION = {"bleu4": 0.5, "cider": 0.5}


class ReportGenerationModule(pl.LightningModule):
    """Shared training / evaluation logic for LLM report generators.

    Args:
        language_model: The causal LM (frozen, LoRA or full).
        prompt: How visual tokens, instruction and report become the LLM input.
        decoding: Beam search settings for validation, test and predict.
        optimizer: Optimizer over the trainable parameters (YAML: ``class_path: torch.optim.AdamW``).
        schedule: Learning-rate schedule, stepped every optimizer step.
        selection: Weights of the validation metrics whose sum is logged as ``val/selection`` (the checkpoint
            monitor in ``experiments/_base/callbacks.yaml``).
        metrics: Metric families computed in validation and test (default: the evaluation protocol's).
        evaluation: How validation and test score the reports (labeler, averages, text handling, ...;
            :mod:`radiolm.metrics.protocols`); default the suite's ``default`` protocol.
    """

    def __init__(
        self,
        language_model: LanguageModel,
        prompt: PromptTemplate | None = None,
        decoding: DecodingConfig | None = None,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        schedule: LRSchedule | None = None,
        selection: dict[str, float] | None = None,
        metrics: list[str] | None = None,
        evaluation: EvaluationProtocol | None = None,
    ) -> None:
        super().__init__()
        self._save_cli_hyperparameters()
        self.language_model = language_model
        self.prompt = prompt or PromptTemplate()
        self.decoding = decoding or DecodingConfig()
        self.optimizer_factory = optimizer
        self.schedule = schedule or LRSchedule()
        self.selection = dict(selection or DEFAULT_SELECTION)
        self.evaluation = evaluation or EvaluationProtocol()
        self.metric_families = list(metrics or self.evaluation.metrics)
        self._records: dict[str, list[dict[str, Any]]] = {}
        self.last_records: dict[str, list[dict[str, Any]]] = {}  # per stage, after scoring (for callbacks)

    def _save_cli_hyperparameters(self) -> None:
        """Save hparams only when the CLI built the module: they are then its config (class paths and values),
        which ``load_from_checkpoint`` re-instantiates; for a module built in Python they would be the live parts
        (a deep copy of the LLM), so nothing is saved."""
        try:
            from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters
        except ImportError:  # pragma: no cover - Lightning moved it
            return
        if _given_hyperparameters.get() is not None:
            self.save_hyperparameters()

    # -- what a method provides -------------------------------------------------------------------------------
    @property
    def image_transform(self) -> ImageTransformConfig | None:
        """Image size / normalisation the DataModule must produce (linked by the CLI); ``None``: defaults."""
        return None

    def encode(self, batch: ReportBatch) -> Tensor:
        """Visual tokens in the LLM embedding space ``[B, L, D_llm]``."""
        raise NotImplementedError

    def prompt_context(self, batch: ReportBatch) -> list[str] | None:
        """Per-study text after the instruction (e.g. diagnosis prompts); none by default."""
        return None

    def compute_losses(self, batch: ReportBatch) -> dict[str, Tensor]:
        """Named loss terms with the optimised total under ``"loss"``. Default: the report's NLL (R2GenGPT Eq. 2)."""
        visual = self.encode(batch)
        inputs = self.prompt.build(self.language_model, visual, batch.reports, self.prompt_context(batch))
        assert inputs.labels is not None
        return {"loss": self.language_model.loss(inputs.inputs_embeds, inputs.attention_mask, inputs.labels)}

    def generate(self, batch: ReportBatch) -> list[str]:
        """One report per study."""
        visual = self.encode(batch)
        inputs = self.prompt.build(self.language_model, visual, None, self.prompt_context(batch))
        return generate_reports(self.language_model, inputs, self.decoding)

    # -- training ---------------------------------------------------------------------------------------------
    def on_train_start(self) -> None:
        """Put every part in its training mode through ``train()``, so that the parts' own ``train`` (a frozen
        encoder or LLM stays in eval mode: fixed BatchNorm statistics, no dropout) take effect. Lightning 2.x does
        not call ``train()`` when fitting starts (the module keeps the mode it has; validation restores the modes
        it found), so without this a frozen ResNet's BatchNorm statistics drifted in training."""
        self.train()

    def training_step(self, batch: ReportBatch, batch_idx: int) -> Tensor:
        losses = self.compute_losses(batch)
        for name, value in losses.items():
            self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=len(batch))
        return losses["loss"]

    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Parameters handed to the optimizer (and saved in checkpoints): those with ``requires_grad``, and those a
        callback has frozen for a while (tagged :data:`~radiolm.parts.trainable.SCHEDULED_ATTR`, e.g.
        ``EncoderUnfreeze``'s stage 1)."""
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad or is_scheduled(p)]

    def configure_optimizers(self) -> Any:
        named = self.trainable_parameters()
        if not named:
            raise ValueError("no trainable parameters: every part is frozen; set a part's `trainable` to lora/full")
        groups = parameter_groups(named, self.schedule.lr_scale)
        # the optimizer's lr is each group's base; ``lr_scale`` multiplies it once (the schedule's factor after)
        optimizer = apply_lr_scale(self.optimizer_factory(groups))
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = build_scheduler(optimizer, self.schedule, total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- checkpoints: trainable weights only --------------------------------------------------------------------
    def _checkpoint_keys(self) -> set[str]:
        keys = {name for name, _ in self.trainable_parameters()}
        keys |= {name for name, _ in self.named_buffers() if not name.startswith("language_model.")}
        return keys

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        keep = self._checkpoint_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}
        checkpoint["radiolm_trainable_only"] = True

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Frozen weights come from the freshly built module (its pretrained source); the rest from the file.

        Under DeepSpeed ``checkpoint`` is the client state without ``state_dict``: the engine has loaded the weights
        already (non-strictly, see :attr:`strict_loading`), and nothing is left to do here."""
        if checkpoint.get("radiolm_trainable_only") and "state_dict" in checkpoint:
            own = self.state_dict()
            checkpoint["state_dict"] = {**own, **checkpoint["state_dict"]}

    @property
    def strict_loading(self) -> bool:
        """Strict (every key must match), except under a DeepSpeed strategy with ``exclude_frozen_parameters``
        (``experiments/_base/deepspeed_zero2.yaml``): its checkpoint folder lacks the frozen weights, and the engine
        loads it into the module as built, whose frozen parts came from their pretrained source."""
        strategy = getattr(getattr(self, "_trainer", None), "strategy", None)
        if getattr(strategy, "exclude_frozen_parameters", False):
            return False
        return self._strict_loading in (None, True)

    @strict_loading.setter
    def strict_loading(self, strict_loading: bool) -> None:
        self._strict_loading = strict_loading

    # -- evaluation ---------------------------------------------------------------------------------------------
    def validation_step(self, batch: ReportBatch, batch_idx: int) -> None:
        self._collect(batch, "val")

    def test_step(self, batch: ReportBatch, batch_idx: int) -> None:
        self._collect(batch, "test")

    def predict_step(self, batch: ReportBatch, batch_idx: int) -> None:
        self._collect(batch, "predict")

    def on_validation_epoch_end(self) -> None:
        self._score("val")

    def on_test_epoch_end(self) -> None:
        self._score("test")

    def on_predict_epoch_end(self) -> None:
        """Write ``predictions-predict-<epoch>.jsonl`` (with the references, unscored)."""
        records = dedupe_records(_gather_objects(self._records.pop("predict", [])))
        run_dir = self._run_dir()
        if self.global_rank == 0:
            path = write_predictions(run_dir / f"predictions-predict-{self.current_epoch}.jsonl", records)
            log.info("radiolm: wrote %s (%d studies)", path, len(records))

    def _collect(self, batch: ReportBatch, stage: str) -> None:
        predictions = self.generate(batch)
        records = self._records.setdefault(stage, [])
        for i, prediction in enumerate(predictions):
            records.append(
                {
                    "id": batch.ids[i],
                    "prediction": prediction,
                    "reference": batch.reports[i],
                    "labels": batch.labels[i].tolist(),
                    "language": batch.language[i] if batch.language else "en",
                }
            )

    def _score(self, stage: str) -> None:
        records = self._records.pop(stage, [])
        if self.trainer.sanity_checking:
            return
        records = dedupe_records(_gather_objects(records))
        run_dir = self._run_dir()
        scores: dict[str, float] = {}
        error = ""  # set on rank 0, raised on every rank after the broadcast (no rank waits for a failed one)
        if self.global_rank == 0:
            result = self.evaluation.evaluate(
                records, tokenizer=self.language_model.tokenizer, metrics=self.metric_families
            )
            scores = result.flat()
            if stage == "val":
                error = self._missing_selection(scores, result.unavailable)
                if not error:
                    scores["selection"] = sum(w * scores.get(k, 0.0) for k, w in self.selection.items())
            if not error:
                self._write(run_dir, stage, records, scores)
                self.last_records[stage] = records
        scores, error = _broadcast_object((scores, error))
        if error:
            raise RadioLMError(error)
        for name, value in scores.items():
            self.log(f"{stage}/{name}", value, prog_bar=name in ("bleu4", "cider", "selection"), sync_dist=False)

    def _missing_selection(self, scores: dict[str, float], unavailable: dict[str, str]) -> str:
        """Why :attr:`selection` cannot be computed, or ``""``.

        A selection metric of a family that was asked for but could not be computed (a missing model, say) stops
        the run: a checkpoint is never chosen on a metric silently read as 0. One of a family left out on purpose
        (``metrics: [ce]`` with the default BLEU-4 + CIDEr selection, for speed) counts 0, with a warning."""
        missing = [key for key in self.selection if key not in scores]
        failed = [key for key in missing if _family_of(key) in self.metric_families]
        if failed:
            reasons = "; ".join(f"{k}: {v}" for k, v in unavailable.items()) or "not a metric of these families"
            return (
                f"model.init_args.selection needs {failed}, which the {self.evaluation.name!r} evaluation protocol "
                f"did not compute ({reasons}); change selection or the evaluation settings"
            )
        if missing:
            log.warning(
                "radiolm: selection metrics %s are not computed (metrics: %s); they count 0",
                missing,
                self.metric_families,
            )
        return ""

    def _run_dir(self) -> Path:
        """The run folder. ``trainer.log_dir`` is a collective (rank 0 broadcasts it): every rank must call this,
        or rank 0's broadcast pairs with another rank's next collective."""
        return Path(self.trainer.log_dir or self.trainer.default_root_dir)

    def _write(self, run_dir: Path, stage: str, records: list[dict[str, Any]], scores: dict[str, float]) -> None:
        epoch = self.current_epoch
        path = write_predictions(run_dir / f"predictions-{stage}-{epoch}.jsonl", records)
        summary = {"n": len(records), "protocol": self.evaluation.name, **scores}
        (run_dir / f"metrics-{stage}-{epoch}.json").write_text(json.dumps(summary, indent=2))
        log.info("radiolm: wrote %s (%d studies)", path, len(records))


def _family_of(metric: str) -> str:
    """The metric family of a metric name (``bleu4`` -> ``nlg``, ``f1_cxb_14`` -> ``ce``)."""
    if metric.startswith(("ce_", "f1_cxb_")):
        return "ce"
    for family in ("bertscore", "radgraph", "radcliq"):
        if metric.startswith(family):
            return family
    return "nlg"


def _gather_objects(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return records
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, records)
    return [r for part in parts for r in part]


def _broadcast_object(obj: Any) -> Any:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
