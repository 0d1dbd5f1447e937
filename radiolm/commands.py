"""The suite's own commands next to fit / validate / test / predict.

* ``radiolm data phantom --kind cxr --out DIR --n N --seed S --views 1|2``: write the phantom data set.
* ``radiolm baseline --annotation FILE --out DIR``: score the trivial baseline (the most common training report,
  predicted for every study) on a split, with the same metrics as the models.
* ``radiolm assets prepare``: convert the built-in LLM once (the set-up does this).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

__all__ = ["COMMANDS"]


def data_command(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="radiolm data", description="Build data sets.")
    sub = parser.add_subparsers(dest="action", required=True)
    phantom = sub.add_parser("phantom", help="write a phantom data set (R2Gen on-disk format)")
    phantom.add_argument("--kind", choices=["cxr"], default="cxr", help="cxr: chest X-rays (CT: data issue)")
    phantom.add_argument("--out", required=True, type=Path)
    phantom.add_argument("--n", type=int, default=1000, help="number of studies")
    phantom.add_argument("--seed", type=int, default=0)
    phantom.add_argument("--views", type=int, choices=[1, 2], default=2)
    phantom.add_argument("--image-size", type=int, default=256)
    phantom.add_argument("--language", choices=["en"], default="en")
    args = parser.parse_args(argv)
    from radiolm.data.phantom import generate_cxr

    summary = generate_cxr(
        args.out, n=args.n, seed=args.seed, views=args.views, image_size=args.image_size, language=args.language
    )
    (args.out / "phantom.json").write_text(
        json.dumps({"n": args.n, "seed": args.seed, "views": args.views, "image_size": args.image_size})
    )
    print(json.dumps(summary, indent=2, default=str))


def baseline_command(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="radiolm baseline", description="Predict the most common training report for every study and score it."
    )
    parser.add_argument("--annotation", required=True, type=Path, help="R2Gen annotation.json")
    parser.add_argument("--split", default="test", choices=["val", "test"])
    parser.add_argument("--report-key", default="report")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    from radiolm.data.annotation import load_annotation
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


def assets_command(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="radiolm assets", description="Prepare the built-in offline models.")
    parser.add_argument("action", choices=["prepare"])
    parser.parse_args(argv)
    from radiolm.assets import BUILTIN_LANGUAGE_MODELS, resolve_language_model

    for alias in BUILTIN_LANGUAGE_MODELS:
        print(f"{alias}: {resolve_language_model(alias)}")


COMMANDS: dict[str, Callable[[list[str]], None]] = {
    "data": data_command,
    "baseline": baseline_command,
    "assets": assets_command,
}
