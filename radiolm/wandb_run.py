"""The W&B run of a run folder: recorded when training starts, found again when ``radiolm analyze`` logs to it.

A run folder (``runs/<experiment>/version_N``, the CSV logger's) and its W&B run (``runs/wandb/offline-run-...``)
share nothing that names one from the other, so :func:`record_wandb_run` writes ``wandb-run.json`` into the run
folder (id, project, W&B save dir, mode, last step); :class:`radiolm.callbacks.ReportSamples` calls it. An analysis
calls :func:`log_analysis` once with its PNG and JSON: they go to the active W&B run if there is one, else to the run
folder's W&B run, resumed in its own mode (an offline run gets a second offline folder with the same id, which
``wandb sync`` uploads into the same run), after its last step. ``WANDB_MODE=disabled``, or a run folder without a
W&B run, logs nothing.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["RUN_FILE", "find_wandb_run", "log_analysis", "record_wandb_run"]

log = logging.getLogger(__name__)

RUN_FILE = "wandb-run.json"
"""The file in a run folder that names its W&B run."""


def record_wandb_run(run_dir: str | Path, run: Any, save_dir: str | Path | None = None) -> Path:
    """Write ``<run_dir>/wandb-run.json`` for the W&B ``run`` (a ``wandb.Run``).

    Args:
        run_dir: The run folder (``trainer.log_dir``).
        run: The live W&B run (``WandbLogger.experiment``).
        save_dir: The folder W&B writes ``wandb/`` into (``WandbLogger.save_dir``); default: the run's parent.
    """
    files_dir = Path(run.dir).resolve()  # <save_dir>/wandb/<offline-run-...>/files
    record = {
        "id": run.id,
        "project": run.project,
        "entity": getattr(run, "entity", None) or None,
        "save_dir": str(Path(save_dir).resolve() if save_dir is not None else files_dir.parents[2]),
        "run_dir": str(files_dir.parent),
        "mode": "offline" if run.offline else "online",
        "step": int(run.step),
    }
    path = Path(run_dir) / RUN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def find_wandb_run(run_dir: str | Path) -> dict[str, Any] | None:
    """The record :func:`record_wandb_run` wrote in ``run_dir``, or ``None`` when the run had no W&B logger."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return None
    try:
        record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        log.warning("radiolm: %s is not JSON (%s); not logging to W&B", path, e)
        return None
    return record if {"id", "project", "save_dir"} <= set(record) else None


def log_analysis(name: str, run_dir: str | Path | None, png: str | Path, summary: str | Path) -> str | None:
    """Log an analysis's figure (as ``wandb.Image``) and JSON (into the run summary, and the file itself) to W&B.

    Args:
        name: The analysis (``prompt-attention``); the keys are ``analysis/<name>``.
        run_dir: The analysed run folder, whose W&B run is used when none is active.
        png: The figure.
        summary: The JSON file of the analysis.

    Returns:
        The id of the W&B run logged to, or ``None`` when nothing was logged.
    """
    if os.environ.get("WANDB_MODE", "").lower() == "disabled":
        return None
    active = sys.modules["wandb"].run if "wandb" in sys.modules else None  # no import: no active run
    record = None if active is not None or run_dir is None else find_wandb_run(run_dir)
    if active is None and record is None:
        return None
    import wandb

    run = active
    if run is None:
        assert record is not None
        run = wandb.init(
            id=record["id"],
            project=record["project"],
            entity=record.get("entity"),
            dir=record["save_dir"],
            mode=os.environ.get("WANDB_MODE") or record.get("mode", "offline"),  # type: ignore[arg-type]
            resume="allow",
        )
    try:
        png, summary = Path(png), Path(summary)
        key = f"analysis/{name}"
        step = max(int(run.step), int((record or {}).get("step", 0)) + 1)
        run.log({key: wandb.Image(str(png), caption=name)}, step=step)
        run.summary[key] = json.loads(summary.read_text(encoding="utf-8"))
        run.save(str(summary), base_path=str(summary.parent), policy="now")
        if record is not None and run_dir is not None:  # the next analysis logs after this one
            record_file = Path(run_dir) / RUN_FILE
            record_file.write_text(json.dumps({**record, "step": step}, indent=2) + "\n", encoding="utf-8")
        log.info("radiolm: logged %s to W&B run %s", name, run.id)
        return str(run.id)
    finally:
        if active is None:
            run.finish()
