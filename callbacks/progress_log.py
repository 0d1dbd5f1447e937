"""Plain progress lines for job logs, ``nohup`` and CI, where the progress bar shows nothing useful."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Literal

import lightning.pytorch as pl

__all__ = ["ProgressLog", "format_duration"]

log = logging.getLogger("radiolm")


def format_duration(seconds: float) -> str:
    """``75.2`` -> ``"1m15s"``; ``3725`` -> ``"1h02m"``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class ProgressLog(pl.Callback):
    """A log line every ``every_n_steps`` training steps and after every generation batch.

    Training: ``epoch 1/3 step 40/159 loss 2.314 | 8.1 samples/s | elapsed 1m05s, ETA 3m12s``.
    Validation / test / predict: ``test: 60/120 studies generated | 4.2 studies/s | ETA 14s``.
    The entry point (:class:`radiolm.lightning_cli.RadioLMCLI`) adds it to every run, and turns the progress bar off
    when stderr is not a terminal, so a log file holds these lines instead of carriage returns.

    Args:
        every_n_steps: Training steps between lines (the first step is always logged).
        when: ``auto`` logs only when stderr is not a terminal (a terminal has the progress bar); ``always``;
            ``never``.
    """

    def __init__(self, every_n_steps: int = 10, when: Literal["auto", "always", "never"] = "auto") -> None:
        if every_n_steps < 1:
            raise ValueError(f"ProgressLog every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps, self.when = every_n_steps, when
        self._train_start = 0.0
        self._window_start = 0.0
        self._window_samples = 0
        self._eval: dict[str, Any] = {}

    @property
    def active(self) -> bool:
        if self.when == "auto":
            return not sys.stderr.isatty()
        return self.when == "always"

    # -- training ----------------------------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._train_start = self._window_start = time.perf_counter()
        self._window_samples = 0
        self._first_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._window_samples += _batch_size(batch)
        step = trainer.global_step
        if not (self.active and trainer.is_global_zero) or not (step == 1 or step % self.every_n_steps == 0):
            return
        if getattr(self, "_last_logged", None) == step:  # gradient accumulation: one line per optimizer step
            return
        self._last_logged = step
        now = time.perf_counter()
        total = int(trainer.estimated_stepping_batches)
        done = step - self._first_step
        rate = self._window_samples / max(now - self._window_start, 1e-9)
        eta = (now - self._train_start) / max(done, 1) * max(total - step, 0)
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        loss_text = f" loss {float(loss):.4f}" if loss is not None else ""
        max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        log.info(
            "radiolm: epoch %d/%s step %d/%d%s | %.1f samples/s | elapsed %s, ETA %s",
            trainer.current_epoch + 1,
            max_epochs,
            step,
            total,
            loss_text,
            rate,
            format_duration(now - self._train_start),
            format_duration(eta),
        )
        self._window_start, self._window_samples = now, 0

    # -- generation (validation, test, predict) ----------------------------------------------------------------
    def _eval_start(self, trainer: pl.Trainer, stage: str) -> None:
        batches = {"val": trainer.num_val_batches, "test": trainer.num_test_batches}.get(
            stage, trainer.num_predict_batches
        )
        loaders = {"val": trainer.val_dataloaders, "test": trainer.test_dataloaders}.get(
            stage, trainer.predict_dataloaders
        )
        loaders = loaders if isinstance(loaders, list | tuple) else [loaders]
        total = 0
        for loader, n_batches in zip(loaders, batches, strict=False):
            size = len(loader.dataset) if hasattr(loader, "dataset") and hasattr(loader.dataset, "__len__") else 0
            per_batch = getattr(loader, "batch_size", None) or 1
            total += min(size, int(n_batches) * per_batch) if size else int(n_batches) * per_batch
        self._eval = {"stage": stage, "start": time.perf_counter(), "done": 0, "total": total}

    def _eval_batch(self, trainer: pl.Trainer, batch: Any) -> None:
        if not self._eval or trainer.sanity_checking:
            return
        self._eval["done"] += _batch_size(batch)
        if not (self.active and trainer.is_global_zero):
            return
        done, total = self._eval["done"], self._eval["total"]
        elapsed = time.perf_counter() - self._eval["start"]
        rate = done / max(elapsed, 1e-9)
        eta = (total - done) / rate if rate > 0 and total > done else 0.0
        log.info(
            "radiolm: %s: %d/%d studies generated | %.1f studies/s | ETA %s",
            self._eval["stage"],
            done,
            total,
            rate,
            format_duration(eta),
        )

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._eval_start(trainer, "val")

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._eval_start(trainer, "test")

    def on_predict_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._eval_start(trainer, "predict")

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self._eval_batch(trainer, args[1])

    def on_test_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self._eval_batch(trainer, args[1])

    def on_predict_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self._eval_batch(trainer, args[1])


def _batch_size(batch: Any) -> int:
    try:
        return len(batch)
    except TypeError:
        return 1
