"""``radiolm analyze learning-curves``: training loss and a validation metric against optimizer steps.

Reads the CSV logger's ``metrics.csv`` of each run (the newest ``version_N`` under a row folder, or the run folder
itself) and draws, per run, the training loss (left axis, every logged step) and the validation metric (right axis,
one point per validation), so that a table row shows whether its model learned and when. ``radiolm table`` calls
:func:`plot_learning_curves` for a spec with ``curves:`` (``make phantom-benchmark``)::

    radiolm analyze learning-curves --run R2GenGPT=runs/phantom_benchmark/r2gengpt \\
        --run Two-stage=runs/phantom_benchmark/two-stage --metric val/ce_f1_micro_5 --out runs/phantom_benchmark

writes ``learning-curve.png`` into each run folder, ``learning-curves.png`` (all runs, one panel each) and
``learning-curves.json`` (the series) into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
from pathlib import Path

from radiolm.analysis.continual_run import parse_named_run
from radiolm.errors import RadioLMError
from radiolm.wandb_run import log_analysis

log = logging.getLogger(__name__)

__all__ = ["Series", "main", "metrics_csv", "plot_learning_curves", "read_series"]

NAME = "learning-curves"

Series = dict[str, list[tuple[int, float]]]
"""Logged key -> ``(step, value)`` points in logging order."""
METRIC_COLOURS = ("tab:red", "tab:orange", "tab:green", "tab:purple", "tab:brown")


def metrics_csv(folder: Path) -> Path | None:
    """The ``metrics.csv`` of ``folder`` itself or of its newest ``version_N`` (``None`` when there is none)."""
    if (folder / "metrics.csv").is_file():
        return folder / "metrics.csv"
    found = sorted(folder.glob("version_*/metrics.csv"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def read_series(path: Path, keys: list[str]) -> Series:
    """The ``(step, value)`` points of each of ``keys`` in a CSV logger file (empty cells skipped).

    Raises:
        RadioLMError: the file has no ``step`` column.
    """
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        if reader.fieldnames is None or "step" not in reader.fieldnames:
            raise RadioLMError(f"{path}: not a Lightning CSV logger file (no `step` column)")
        series: Series = {key: [] for key in keys}
        for line in reader:
            for key in keys:
                cell = line.get(key) or ""
                if cell.strip():
                    series[key].append((int(float(line["step"])), float(cell)))
    return series


def _draw(ax: object, series: Series, loss: str, metrics: list[str], title: str) -> None:
    ax_loss = ax
    ax_loss.set_title(title, fontsize=9)  # type: ignore[attr-defined]
    steps, values = zip(*series[loss], strict=True) if series[loss] else ((), ())
    ax_loss.plot(steps, values, color="tab:blue", linewidth=1)  # type: ignore[attr-defined]
    ax_loss.set_xlabel("step")  # type: ignore[attr-defined]
    ax_loss.set_ylabel(loss, color="tab:blue")  # type: ignore[attr-defined]
    ax_metric = ax_loss.twinx()  # type: ignore[attr-defined]
    logged = [m for m in metrics if series[m]] or metrics[:1]
    for metric, color, marker in zip(logged, METRIC_COLOURS, "osd^v", strict=False):
        if series[metric]:
            steps, values = zip(*series[metric], strict=True)
            ax_metric.plot(steps, values, color=color, marker=marker, linewidth=1, label=metric)
    ax_metric.set_ylabel("validation", color="tab:red")
    ax_metric.set_ylim(0, 1)
    if len(logged) > 1 or series[logged[0]]:
        ax_metric.legend(loc="upper right", fontsize=7)


def plot_learning_curves(runs: dict[str, Path], loss: str, metrics: list[str], out: Path) -> list[Path]:
    """One ``learning-curve.png`` per run folder that has a ``metrics.csv`` and the overview in ``out``.

    Args:
        runs: Label -> run (or table row) folder.
        loss: The training-loss key (``train/loss``).
        metrics: Validation keys (``val/ce_f1_micro_5``); each run shows those it logged (a run that never
            validated: the loss only).
        out: Where ``learning-curves.png`` and ``learning-curves.json`` go.

    Returns:
        The PNG files written (none when no run has logged yet).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = {label: path for label, folder in runs.items() if (path := metrics_csv(Path(folder))) is not None}
    if not found:
        return []
    all_series = {label: read_series(path, [loss, *metrics]) for label, path in found.items()}
    for key in [loss, *metrics]:  # a typo, or no run has validated yet: drawn as nothing, so say it
        if not any(series[key] for series in all_series.values()):
            files = ", ".join(map(str, found.values()))
            log.warning("radiolm: no run logged %r (%s): nothing drawn for it", key, files)
    written = []
    for label, path in found.items():
        fig, ax = plt.subplots(figsize=(5, 3.2))
        _draw(ax, all_series[label], loss, metrics, label)
        fig.tight_layout()
        target = path.parent / "learning-curve.png"
        fig.savefig(target, dpi=110)
        plt.close(fig)
        written.append(target)
    cols = min(len(found), 3)
    rows = math.ceil(len(found) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False)
    for ax, label in zip(axes.flat, found, strict=False):
        _draw(ax, all_series[label], loss, metrics, label)
    for ax in list(axes.flat)[len(found) :]:
        ax.axis("off")
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    overview = out / "learning-curves.png"
    fig.savefig(overview, dpi=110)
    plt.close(fig)
    series_json = {label: {k: [list(p) for p in v] for k, v in s.items()} for label, s in all_series.items()}
    (out / "learning-curves.json").write_text(json.dumps({"loss": loss, "metrics": metrics, "runs": series_json}))
    return [*written, overview]


def main(argv: list[str] | None = None) -> None:
    """``radiolm analyze learning-curves --run LABEL=FOLDER [...] [--loss K] [--metric K] --out DIR``."""
    parser = argparse.ArgumentParser(
        prog="radiolm analyze learning-curves",
        description="Training loss and a validation metric against steps, per run and side by side.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--run", action="append", required=True, help="LABEL=FOLDER (a run or table-row folder)")
    parser.add_argument("--loss", default="train/loss")
    parser.add_argument(
        "--metric", action="append", help="a validation key (repeat for several; default val/selection)"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    runs: dict[str, Path] = {}
    for item in args.run:
        label, folder = parse_named_run(item)
        if not label or item.endswith("="):
            raise RadioLMError(f"--run {item!r}: write LABEL=FOLDER (e.g. R2GenGPT=runs/phantom_benchmark/r2gengpt)")
        if label in runs:
            raise RadioLMError(f"--run {label}= is given twice ({runs[label]}, {folder}): one folder per label")
        runs[label] = folder
    missing = [str(p) for p in runs.values() if metrics_csv(p) is None]
    if missing:
        raise RadioLMError(f"no metrics.csv (CSV logger) in {missing}: run them first, with the CSV logger on")
    written = plot_learning_curves(runs, args.loss, args.metric or ["val/selection"], args.out)
    for path in written:
        print(f"wrote {path}")
    # the overview and its series, to the first run's W&B run (or the active one)
    log_analysis(NAME, next(iter(runs.values())), args.out / f"{NAME}.png", args.out / f"{NAME}.json")
