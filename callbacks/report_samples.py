"""Show a few generated reports next to their references after each validation and test."""

from __future__ import annotations

import logging

import lightning.pytorch as pl
from lightning.pytorch.loggers import WandbLogger

__all__ = ["ReportSamples"]

log = logging.getLogger(__name__)


class ReportSamples(pl.Callback):
    """Print (and log to W&B as a table) ``n`` prediction / reference pairs of the last evaluation.

    Reads ``pl_module.last_records[stage]``, which :class:`~radiolm.methods.base.ReportGenerationModule` fills
    after scoring (on rank 0).

    Args:
        n: Number of studies shown (the first ``n`` ids in sorted order, so epochs are comparable).
        width: Characters of each text shown on the console.
    """

    def __init__(self, n: int = 3, width: int = 300) -> None:
        self.n, self.width = n, width

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._show(trainer, pl_module, "val")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._show(trainer, pl_module, "test")

    def _show(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        records = getattr(pl_module, "last_records", {}).get(stage)
        if not records or trainer.sanity_checking or not trainer.is_global_zero:
            return
        sample = sorted(records, key=lambda r: r["id"])[: self.n]
        lines = [f"\n[{stage} epoch {trainer.current_epoch}] {len(records)} studies; samples:"]
        for r in sample:
            lines += [f"  {r['id']}", f"    reference:  {r['reference'][: self.width]}"]
            lines += [f"    prediction: {r['prediction'][: self.width]}"]
        print("\n".join(lines), flush=True)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                rows = [[r["id"], r["reference"], r["prediction"]] for r in sample]
                logger.log_text(key=f"{stage}/samples", columns=["id", "reference", "prediction"], data=rows)
