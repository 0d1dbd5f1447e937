"""EncoderUnfreeze: two-stage fine-tuning (Lu et al., ``two_stage_finetune.md`` §3, "Two-Stage Fine-tuning").

Stage 1 freezes the vision encoder for ``freeze_epochs`` epochs while the randomly initialised mapping network
(and the LoRA weights, which "are tuned in both stages") align to the language model; stage 2 trains everything.
``freeze_epochs: 0`` is vanilla one-stage fine-tuning; ``freeze_epochs`` >= ``max_epochs`` keeps the encoder
frozen for the whole run (the "frozen" arm of Fig. 1).

How it differs from Lightning's ``BaseFinetuning``: the encoder's parameters are in the optimizer from the start
(they still have ``requires_grad`` when ``configure_optimizers`` runs) and stage 1 only switches their gradients
off. No parameter group is added mid-run, which is what breaks under DeepSpeed, where the optimizer's flat
buffers are built once. With ``torch.optim.AdamW`` a parameter whose ``.grad`` is ``None`` is skipped entirely,
so stage 1 applies neither an Adam update nor weight decay to the encoder, and its Adam moments start at the
first stage-2 step. The parameters are tagged (:data:`~radiolm.parts.trainable.SCHEDULED_ATTR`) so that
:meth:`~radiolm.methods.base.ReportGenerationModule.trainable_parameters` keeps them in the optimizer and in
checkpoints while their gradients are off.

The stage is a function of the epoch, re-applied at every epoch and batch start, so a run resumed in the middle
of either stage (even mid-epoch) continues in the right one; ``freeze_epochs`` and the epoch of the switch are
saved in the checkpoint's callback state, and the saved schedule wins on resume. In stage 1 the frozen encoder is
kept in eval mode (fixed BatchNorm statistics, no dropout).
"""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
from torch import nn

from radiolm.parts.trainable import SCHEDULED_ATTR, is_scheduled

__all__ = ["EncoderUnfreeze"]

log = logging.getLogger(__name__)


class EncoderUnfreeze(pl.Callback):
    """Freeze a submodule for the first ``freeze_epochs`` epochs, then train it.

    Args:
        freeze_epochs: Epochs of stage 1 (§3: "we first freeze it for one epoch"); 0 = one-stage fine-tuning.
        module: Attribute path of the submodule on the LightningModule (``vision_encoder``).
        log_metric: Name of the logged stage indicator (1 in stage 1, 2 in stage 2), logged at every epoch start.
    """

    def __init__(self, freeze_epochs: int = 1, module: str = "vision_encoder", log_metric: str = "train/stage") -> None:
        if freeze_epochs < 0:
            raise ValueError(f"EncoderUnfreeze: freeze_epochs must be >= 0, got {freeze_epochs}")
        self.freeze_epochs, self.module_path, self.log_metric = freeze_epochs, module, log_metric
        self.unfrozen_at_epoch: int | None = None  # the epoch stage 2 began (None while in stage 1 / not started)
        self._frozen: bool | None = None  # what is applied now (None: nothing yet)

    # -- state ---------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"freeze_epochs": self.freeze_epochs, "unfrozen_at_epoch": self.unfrozen_at_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = int(state_dict["freeze_epochs"])
        if saved != self.freeze_epochs:
            log.warning(
                "EncoderUnfreeze: the checkpoint was trained with freeze_epochs=%d; resuming with it (config: %d)",
                saved,
                self.freeze_epochs,
            )
        self.freeze_epochs = saved
        self.unfrozen_at_epoch = state_dict.get("unfrozen_at_epoch")
        self._frozen = None  # re-apply at the next epoch / batch start

    # -- hooks ---------------------------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Before ``configure_optimizers``: tag the parameters so they stay in the optimizer and checkpoints."""
        if stage != "fit":
            return
        params = list(self._module(pl_module).parameters())
        trainable = [p for p in params if p.requires_grad]
        if not trainable:
            raise ValueError(
                f"EncoderUnfreeze: {type(pl_module).__name__}.{self.module_path} has no trainable parameters; set "
                f"its trainable to full (or lora), or remove the callback"
            )
        for p in trainable:
            setattr(p, SCHEDULED_ATTR, True)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._apply(trainer, pl_module)
        stage = 1.0 if self.is_frozen(trainer.current_epoch) else 2.0
        for logger in trainer.loggers:
            logger.log_metrics({self.log_metric: stage}, step=trainer.global_step)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, idx: int) -> None:
        self._apply(trainer, pl_module)  # mid-epoch resume; and validation may have restored train() modes

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Leave the module as configured (gradients on), e.g. for a later ``fit`` in the same process."""
        module = self._module(pl_module)
        for p in module.parameters():
            if is_scheduled(p):
                p.requires_grad_(True)
        self._frozen = None

    # -- logic ---------------------------------------------------------------------------------------------------
    def is_frozen(self, epoch: int) -> bool:
        """Stage 1 holds for epochs ``0 .. freeze_epochs - 1``."""
        return epoch < self.freeze_epochs

    def _module(self, pl_module: pl.LightningModule) -> nn.Module:
        module: Any = pl_module
        for part in self.module_path.split("."):
            if not hasattr(module, part):
                raise ValueError(f"EncoderUnfreeze: {type(pl_module).__name__} has no submodule {self.module_path!r}")
            module = getattr(module, part)
        if not isinstance(module, nn.Module):
            raise ValueError(f"EncoderUnfreeze: {self.module_path!r} is not an nn.Module")
        return module

    def _apply(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        frozen = self.is_frozen(epoch)
        module = self._module(pl_module)
        if frozen:
            module.eval()  # every batch: fixed BatchNorm statistics even after validation restored train()
        if frozen == self._frozen:
            return
        for p in module.parameters():
            if is_scheduled(p):
                p.requires_grad_(not frozen)
                if frozen:
                    p.grad = None
        if not frozen:
            module.train(pl_module.training)
            if self.unfrozen_at_epoch is None:
                self.unfrozen_at_epoch = epoch
        state = "frozen (stage 1)" if frozen else "trains (stage 2)"
        log.info("EncoderUnfreeze: epoch %d: %s %s", epoch, self.module_path, state)
        self._frozen = frozen
