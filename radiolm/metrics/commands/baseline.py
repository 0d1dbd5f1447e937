"""``radiolm baseline``: score the trivial baseline, the most common training report predicted for every study.

Two ways to name the data:

- ``--annotation FILE [--report-key KEY]``: an R2Gen ``annotation.json``, scored with the suite's default metrics;
- ``-c EXP.yaml [--data.init_args.x=...]``: an experiment. Its DataModule (built by the real CLI, so a phantom is
  written on first use and the report section, split and filters are the experiment's) gives the training and test
  reports, and its method's evaluation protocol and metric families score them, exactly as its ``test`` would. This
  is the baseline row of a table (``kind: baseline`` in ``experiments/tables/*.yaml``).

Both write ``predictions-<split>.jsonl`` + ``metrics-<split>-baseline.json`` to ``--out`` (the names the table runner
collects) and print the scores.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["main", "most_common_report"]


def most_common_report(reports: list[str]) -> tuple[str, int]:
    """The most frequent training report and its count (the first one seen among equals).

    Raises:
        RadioLMError: no training reports.
    """
    from radiolm.errors import RadioLMError

    if not reports:
        raise RadioLMError("radiolm baseline: the training split has no studies; nothing to predict from")
    return Counter(reports).most_common(1)[0]


Scorer = Callable[[list[dict[str, Any]]], dict[str, Any]]


def _from_annotation(args: argparse.Namespace) -> tuple[list[str], list[dict[str, Any]], Scorer]:
    """The training reports, the split's studies (no prediction yet) and the default protocol's scorer."""
    from radiolm.data.formats.annotation import load_annotation
    from radiolm.metrics.evaluate import evaluate_records

    annotation = load_annotation(args.annotation, args.report_key)
    train = [entry[args.report_key] for entry in annotation["train"]]
    studies = [{"id": e["id"], "reference": e[args.report_key]} for e in annotation[args.split]]
    return train, studies, lambda records: {"protocol": "default", **evaluate_records(records)}


def _from_experiment(args: argparse.Namespace, cli_args: list[str]) -> tuple[list[str], list[dict[str, Any]], Scorer]:
    """As :func:`_from_annotation`, from an experiment's DataModule, scored by its evaluation protocol."""
    from radiolm.benchmarks.experiment import build

    bench = build(cli_args, random_weights=False, trainer_kwargs={})
    datamodule, model = bench.datamodule, bench.model
    datamodule.prepare_data()
    datamodule.setup("fit")
    train = datamodule.datasets["train"].reports()
    test = datamodule.datasets[args.split]
    language = getattr(test, "language", "en")  # the data set's language; an R2Gen entry may override it
    studies = [
        {"id": str(e["id"]), "reference": reference, "language": e.get("language", language)}
        for e, reference in zip(test.entries, test.reports(), strict=True)
    ]

    def score(records: list[dict[str, Any]]) -> dict[str, Any]:
        tokenizer = model.language_model.tokenizer
        result = model.evaluation.evaluate(records, tokenizer=tokenizer, metrics=model.metric_families)
        return {"protocol": model.evaluation.name, **result.flat()}

    return train, studies, score


def main(argv: list[str] | None = None) -> None:
    """``radiolm baseline (--annotation FILE | -c EXP.yaml [overrides]) --out DIR [--split test]``."""
    parser = argparse.ArgumentParser(
        prog="radiolm baseline",
        description="Predict the most common training report for every study and score it.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--annotation", type=Path, help="R2Gen annotation.json (or name an experiment with -c)")
    parser.add_argument("--split", default="test", choices=["val", "test"])
    parser.add_argument("--report-key", default="report", help="with --annotation: the report field")
    parser.add_argument("--out", required=True, type=Path)
    args, rest = parser.parse_known_args(argv)
    from radiolm.errors import RadioLMError
    from radiolm.metrics.evaluate import metrics_table, write_predictions

    has_config = any(a in ("-c", "--config") or a.startswith("--config=") for a in rest)
    if (args.annotation is None) == (not has_config):
        raise RadioLMError("radiolm baseline: name the data with --annotation FILE or with -c EXP.yaml (one of them)")
    if args.annotation is None:
        train, studies, score = _from_experiment(args, rest)
    elif rest:
        raise RadioLMError(f"radiolm baseline: unknown arguments {rest} (experiment overrides need -c EXP.yaml)")
    else:
        train, studies, score = _from_annotation(args)
    report, freq = most_common_report(train)
    records = [{"id": s["id"], "prediction": report, **s} for s in studies]
    scores = score(records)
    args.out.mkdir(parents=True, exist_ok=True)
    write_predictions(args.out / f"predictions-{args.split}.jsonl", records)
    metrics = {"n": len(records), **scores}
    (args.out / f"metrics-{args.split}-baseline.json").write_text(json.dumps(metrics, indent=2))
    print(f"most common training report ({freq} of {len(train)}): {report}")
    print(metrics_table({"most-common-report": {k: v for k, v in scores.items() if k != "protocol"}}))
