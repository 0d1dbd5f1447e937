"""``radiolm baseline``: score the trivial baseline, the most common training report predicted for every study.

It is scored on a split with the same metrics as the models (:func:`radiolm.metrics.evaluate.evaluate_records`) and
written as ``predictions-<split>.jsonl`` + ``metrics-<split>.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """``radiolm baseline --annotation FILE --out DIR [--split test] [--report-key report]``."""
    parser = argparse.ArgumentParser(
        prog="radiolm baseline", description="Predict the most common training report for every study and score it."
    )
    parser.add_argument("--annotation", required=True, type=Path, help="R2Gen annotation.json")
    parser.add_argument("--split", default="test", choices=["val", "test"])
    parser.add_argument("--report-key", default="report")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    from radiolm.data.formats.annotation import load_annotation
    from radiolm.metrics.evaluate import evaluate_records, metrics_table, write_predictions

    annotation = load_annotation(args.annotation, args.report_key)
    counts = Counter(entry[args.report_key] for entry in annotation["train"])
    report, freq = counts.most_common(1)[0]
    records = [{"id": e["id"], "prediction": report, "reference": e[args.report_key]} for e in annotation[args.split]]
    scores = evaluate_records(records)
    args.out.mkdir(parents=True, exist_ok=True)
    write_predictions(args.out / f"predictions-{args.split}.jsonl", records)
    (args.out / f"metrics-{args.split}.json").write_text(json.dumps({"n": len(records), **scores}, indent=2))
    print(f"most common training report ({freq} of {len(annotation['train'])}): {report}")
    print(metrics_table({"most-common-report": scores}))
