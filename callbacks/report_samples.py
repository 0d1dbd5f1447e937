"""Sample reports to look at after each validation and test: on the console, as an HTML page, as a W&B table."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.loggers import WandbLogger

from radiolm.samples.page import page_name, write_page
from radiolm.samples.studies import SampleStudy, sample_studies
from radiolm.samples.table import TABLE_COLUMNS, table_rows
from radiolm.wandb_run import record_wandb_run

__all__ = ["ReportSamples"]

log = logging.getLogger(__name__)


class ReportSamples(pl.Callback):
    """Show ``n`` studies of the last evaluation: the pictures, the generated and the reference report, the CE labels.

    After every validation and test (not the sanity check), on rank 0:

    * prints each study's id, reference and prediction;
    * writes ``samples-<stage>-<epoch>.html`` into the run folder, next to ``predictions-<stage>-<epoch>.jsonl``: a
      self-contained page (:mod:`radiolm.samples.page`) with the X-ray views or CT slices inline;
    * logs the W&B table ``<stage>/samples`` (:mod:`radiolm.samples.table`) to every ``WandbLogger`` of the trainer.

    It also records the run folder's W&B run in ``wandb-run.json`` (:mod:`radiolm.wandb_run`), so that
    ``radiolm analyze`` logs its figures to the same run.

    Reads ``pl_module.last_records[stage]``, which :class:`~radiolm.methods.base.ReportGenerationModule` fills after
    scoring (on rank 0); the pictures come from the DataModule's dataset of the split, by study id.

    Args:
        n: Number of studies shown (the first ``n`` ids in sorted order, so epochs are comparable).
        width: Characters of each text shown on the console.
        page: Write the HTML page.
        max_side: Largest side of a picture on the page and in the table, in pixels.
    """

    def __init__(self, n: int = 3, width: int = 300, page: bool = True, max_side: int = 256) -> None:
        if n < 1 or max_side < 1:
            raise ValueError(f"ReportSamples: n and max_side must be >= 1, got n={n}, max_side={max_side}")
        self.n, self.width, self.page, self.max_side = n, width, page, max_side

    # -- hooks ------------------------------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._record_wandb(trainer)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._record_wandb(trainer)  # again, with the last step

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._show(trainer, pl_module, "val")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._show(trainer, pl_module, "test")

    # -- work -------------------------------------------------------------------------------------------------------
    @staticmethod
    def _run_dir(trainer: pl.Trainer) -> Path:
        """The run folder, as the module writes its predictions. ``trainer.log_dir`` is a collective: every rank
        calls this."""
        return Path(trainer.log_dir or trainer.default_root_dir)

    def _record_wandb(self, trainer: pl.Trainer) -> None:
        loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if not loggers:
            return
        run_dir = self._run_dir(trainer)
        if trainer.is_global_zero:
            record_wandb_run(run_dir, loggers[0].experiment, loggers[0].save_dir)

    def _show(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.sanity_checking:
            return
        run_dir = self._run_dir(trainer)
        records = getattr(pl_module, "last_records", {}).get(stage)
        if not records or not trainer.is_global_zero:
            return
        epoch = trainer.current_epoch
        split = "val" if stage == "val" else "test"
        dataset = getattr(trainer.datamodule, "datasets", {}).get(split)
        studies = sample_studies(records, dataset, self.n, self.max_side)
        self._print(studies, stage, epoch, len(records))
        if self.page:
            title = f"{run_dir}: {stage} samples, epoch {epoch}"
            note = f"The first {len(studies)} of {len(records)} studies in id order."
            path = write_page(run_dir / page_name(stage, epoch), studies, title, note)
            log.info("radiolm: wrote %s", path)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_table(
                    key=f"{stage}/samples", columns=TABLE_COLUMNS, data=table_rows(studies), step=trainer.global_step
                )

    def _print(self, studies: list[SampleStudy], stage: str, epoch: int, total: int) -> None:
        lines: list[Any] = [f"\n[{stage} epoch {epoch}] {total} studies; samples:"]
        for s in studies:
            lines += [f"  {s.id}", f"    reference:  {s.reference[: self.width]}"]
            lines += [f"    prediction: {s.prediction[: self.width]}"]
        print("\n".join(lines), flush=True)
