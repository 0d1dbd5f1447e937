"""Per-disease F1 of generated reports across configurations (Dia-LLaMA Fig. 2), as a grouped bar chart.

    radiolm analyze per-disease-f1 --run full=runs/dia_llama_phantom/full --run no-dtp=runs/dia_llama_phantom/no-dtp

For each configuration (a run folder, or a folder holding run folders: the newest ``predictions-<split>-*.jsonl``
below it is used), the generated reports are labelled with the CheXpert labeler (``rules`` by default) and compared
with the references' labels (the ``labels`` field the test loop writes; 1 present, anything else absent, §3.1).
As in Fig. 2, only diseases whose abnormal ratio in the *training* split is above 4% are shown, sorted by their
number of abnormal training studies (ascending), and a last group gives the average over them. The training labels
come from the first run's DataModule (its ``config.yaml``), or from ``--train-labels labels.csv`` (all rows).

Writes ``per-disease-f1.png`` and ``per-disease-f1.json`` into ``--out`` (default: the first run folder).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from radiolm.data.labels import CHEXPERT_14
from radiolm.errors import RadioLMError
from radiolm.wandb_run import log_analysis

__all__ = ["abnormal_ratio", "main", "per_disease_f1", "plot_grouped_bars", "select_diseases"]

# Dia-LLaMA §3.3: "we selected eight diseases with an abnormal ratio greater than 4% to evaluate".
MIN_ABNORMAL_RATIO = 0.04


def abnormal_ratio(labels: Tensor) -> Tensor:
    """Fraction of studies with each disease present: ``[N, L]`` (1 / 0 / -1) -> ``[L]``."""
    if labels.ndim != 2 or len(labels) == 0:
        raise ValueError(f"abnormal_ratio needs labels [N, L] with N > 0, got {tuple(labels.shape)}")
    return (labels == 1).float().mean(dim=0)


def select_diseases(ratio: Tensor, threshold: float = MIN_ABNORMAL_RATIO) -> list[int]:
    """Indices with ``ratio > threshold``, ascending by ratio (Fig. 2: ascending number of abnormal samples)."""
    keep = [i for i in range(len(ratio)) if float(ratio[i]) > threshold]
    return sorted(keep, key=lambda i: (float(ratio[i]), i))


def per_disease_f1(predicted: Tensor, reference: Tensor) -> Tensor:
    """F1 of each disease column: ``[N, L]`` predicted and reference (1 present, anything else absent) -> ``[L]``.

    A disease with no positive in either matrix has F1 0 (nothing found, nothing to find).
    """
    if predicted.shape != reference.shape:
        raise ValueError(f"per_disease_f1: shapes differ, {tuple(predicted.shape)} vs {tuple(reference.shape)}")
    pred, ref = (predicted == 1).float(), (reference == 1).float()
    tp = (pred * ref).sum(0)
    denominator = pred.sum(0) + ref.sum(0)
    return torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), torch.zeros_like(tp))


def plot_grouped_bars(groups: list[str], series: dict[str, list[float]], path: Path, title: str) -> Path:
    """Grouped bars: one group per entry of ``groups``, one bar per series (values in [0, 1], shown in %)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(series)
    width = 0.8 / max(1, n)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(groups) * max(1, n) * 0.5 + 2), 4))
    for k, (name, values) in enumerate(series.items()):
        xs = [g + (k - (n - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, [100 * v for v in values], width, label=name)
    ax.set_xticks(range(len(groups)), groups, rotation=30, ha="right")
    ax.set_ylabel("F1 (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# -- files -----------------------------------------------------------------------------------------------------
def _predictions_file(folder: Path, split: str) -> Path:
    files = sorted(folder.rglob(f"predictions-{split}-*.jsonl"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise RadioLMError(f"{folder}: no predictions-{split}-*.jsonl below it; pass a run folder that `fit` wrote")
    return files[-1]


def _read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _train_labels_from_run(folder: Path) -> Tensor:
    """Labels ``[N, 14]`` of the training split of the DataModule in the run's ``config.yaml`` (no model built)."""
    import yaml
    from jsonargparse import ArgumentParser

    from radiolm.data.datamodules.base import ReportDataModule

    configs = sorted(folder.rglob("config.yaml"), key=lambda p: p.stat().st_mtime)
    if not configs:
        raise RadioLMError(f"{folder}: no config.yaml below it; pass --train-labels labels.csv instead")
    config = yaml.safe_load(configs[-1].read_text(encoding="utf-8"))
    data = dict(config["data"])
    data["init_args"] = {k: v for k, v in data.get("init_args", {}).items() if k != "image_transform"}
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(ReportDataModule, "data", required=True)
    datamodule = parser.instantiate_classes(parser.parse_object({"data": data})).data
    datamodule.setup("fit")
    dataset = datamodule.datasets["train"]
    if hasattr(dataset, "entries") and hasattr(dataset, "labels"):
        rows = [dataset.labels.get(e["id"], [-1] * len(CHEXPERT_14)) for e in dataset.entries]
    else:  # a dataset without a label table: read its items
        rows = [dataset[i]["labels"].tolist() for i in range(len(dataset))]
    return torch.tensor(rows, dtype=torch.long)


def _train_labels_from_csv(path: Path) -> Tensor:
    from radiolm.data.formats.labels_csv import load_labels_csv

    labels = load_labels_csv(path)
    if not labels:
        raise RadioLMError(f"{path}: no labelled studies")
    return torch.tensor(list(labels.values()), dtype=torch.long)


def _parse_run(value: str) -> tuple[str, Path]:
    name, _, folder = value.rpartition("=")
    path = Path(folder)
    return (name or path.name), path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="radiolm analyze per-disease-f1", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, metavar="[NAME=]DIR", help="a configuration")
    parser.add_argument("--split", default="test", choices=["val", "test"])
    parser.add_argument("--train-labels", type=Path, help="labels CSV of the training studies (default: from --run)")
    parser.add_argument("--min-abnormal-ratio", type=float, default=MIN_ABNORMAL_RATIO)
    parser.add_argument("--labeler", default="rules", choices=["rules", "chexbert"])
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the first run folder)")
    args = parser.parse_args(argv)
    from radiolm.metrics.evaluate import MetricOptions, make_labeler

    runs = [_parse_run(v) for v in args.run]
    for _, folder in runs:
        if not folder.is_dir():
            raise RadioLMError(f"--run {folder}: no such folder")
    train = _train_labels_from_csv(args.train_labels) if args.train_labels else _train_labels_from_run(runs[0][1])
    ratio = abnormal_ratio(train)
    chosen = select_diseases(ratio, args.min_abnormal_ratio)
    if not chosen:
        raise RadioLMError(f"no disease has an abnormal ratio above {args.min_abnormal_ratio} in the training split")
    labeler = make_labeler(MetricOptions(labeler=args.labeler))
    names = [CHEXPERT_14[i] for i in chosen]
    result: dict[str, Any] = {
        "split": args.split,
        "diseases": names,
        "abnormal_ratio_train": {CHEXPERT_14[i]: round(float(ratio[i]), 4) for i in chosen},
        "n_train": len(train),
        "f1": {},
        "files": {},
    }
    series: dict[str, list[float]] = {}
    for name, folder in runs:
        path = _predictions_file(folder, args.split)
        records = _read_records(path)
        predicted = torch.tensor(
            [[1 if v == 1 else 0 for v in row] for row in labeler([r["prediction"] for r in records])]
        )
        if all(r.get("labels") is not None for r in records):
            reference = torch.tensor([r["labels"] for r in records], dtype=torch.long)
        else:
            reference = torch.tensor(
                [[1 if v == 1 else 0 for v in row] for row in labeler([r["reference"] for r in records])]
            )
        f1 = per_disease_f1(predicted, reference)[chosen]
        values = [float(v) for v in f1] + [float(f1.mean())]
        series[name] = values
        result["f1"][name] = {g: round(v, 4) for g, v in zip([*names, "Average"], values, strict=True)}
        result["files"][name] = str(path)
    out: Path = args.out or runs[0][1]
    out.mkdir(parents=True, exist_ok=True)
    title = f"Per-disease F1 ({args.split}; abnormal ratio > {args.min_abnormal_ratio:.0%} in training)"
    plot_grouped_bars([*names, "Average"], series, out / "per-disease-f1.png", title)
    (out / "per-disease-f1.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    log_analysis("per-disease-f1", runs[0][1], out / "per-disease-f1.png", out / "per-disease-f1.json")
    header = "| disease | train ratio | " + " | ".join(series) + " |"
    print(header + "\n|---|---:|" + "---:|" * len(series))
    for k, g in enumerate([*names, "Average"]):
        share = f"{float(ratio[chosen[k]]):.3f}" if k < len(chosen) else ""
        print(f"| {g} | {share} | " + " | ".join(f"{series[s][k]:.3f}" for s in series) + " |")
    print(f"wrote {out / 'per-disease-f1.png'}, {out / 'per-disease-f1.json'}")
