"""The suite's own commands next to fit / validate / test / predict.

* ``radiolm data phantom --kind cxr|ct --language en|zh --out DIR ...``: write a phantom data set.
* ``radiolm data prepare iu-xray|mimic-cxr|ctrg-chest ...``: build a data set from its official download.
* ``radiolm data bench ...``: DataLoader throughput (studies/s).
* ``radiolm data views ...``: the frontal/lateral view classifier of the bidirectional method (train, cache labels).
* ``radiolm analyze <name> ...``: the papers' analyses of a trained run (PNG + JSON next to the run).
* ``radiolm table SPEC.yaml [--dry-run]``: run a paper's table grid and write it as markdown.
* ``radiolm baseline --annotation FILE --out DIR``: score the trivial baseline (the most common training report,
  predicted for every study) on a split, with the same metrics as the models.
* ``radiolm evaluate --predictions preds.jsonl --out DIR [--metrics nlg,ce,...] [--labeler rules|chexbert]
  [--uncertain negative|positive] [--bootstrap N --seed S]``: score a predictions file (``metrics.json``,
  ``metrics.md``, ``per_observation.md``), with the function validation and test use.
* ``radiolm label --reports FILE.jsonl|csv --out labels.csv [--text-field report] [--labeler rules|chexbert]``:
  CheXpert-14 labels of any report file (id + 14 columns, 1 / 0 / -1 / blank).
* ``radiolm assets prepare``: convert the built-in LLM once (the set-up does this).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from radiolm.errors import DataError, RadioLMError

__all__ = ["COMMANDS", "read_reports"]


# ``radiolm data <action>`` and ``radiolm analyze <name>``: "module:function" taking the remaining argv, imported on
# use so that one command's dependencies (MONAI, matplotlib, ...) never slow down or break another.
DATA_ACTIONS: dict[str, str] = {
    "phantom": "radiolm.data.phantom.command:main",
    "prepare": "radiolm.commands:prepare_command",
    "bench": "radiolm.data.builders.benchmark:main",
    "views": "radiolm.methods.view_classifier:views_command",
}
PREPARE: dict[str, str] = {
    "iu-xray": "radiolm.data.builders.iu_xray:main",
    "mimic-cxr": "radiolm.data.builders.mimic_cxr:main",
    "ctrg-chest": "radiolm.data.builders.ctrg_chest:main",
}
ANALYSES: dict[str, str] = {
    "prompt-attention": "radiolm.analysis.prompt_attention:main",
    "prompt-similarity": "radiolm.analysis.prompt_similarity:main",
    "token-confidence": "radiolm.analysis.token_confidence:main",
    "embedding-distance": "radiolm.analysis.embedding_distance:main",
    "per-disease-f1": "radiolm.analysis.per_disease_f1:main",
}


def _dispatch(prog: str, table: dict[str, str], argv: list[str], what: str) -> None:
    """Run ``table[argv[0]]`` with the rest of argv; ``--help`` or an unknown name lists the choices."""
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in table:
        listing = "\n".join(f"  {prog} {name} --help" for name in table)
        if argv and argv[0] not in ("-h", "--help"):
            raise RadioLMError(f"{prog}: unknown {what} {argv[0]!r}; choose one of {sorted(table)}")
        print(f"usage: {prog} <{what}> [options]\n\n{what}s:\n{listing}")
        return
    module_name, function = table[argv[0]].split(":")
    getattr(importlib.import_module(module_name), function)(argv[1:])


def data_command(argv: list[str]) -> None:
    _dispatch("radiolm data", DATA_ACTIONS, argv, "action")


def prepare_command(argv: list[str]) -> None:
    _dispatch("radiolm data prepare", PREPARE, argv, "data set")


def analyze_command(argv: list[str]) -> None:
    _dispatch("radiolm analyze", ANALYSES, argv, "analysis")


def table_command(argv: list[str]) -> None:
    from radiolm.tables import table_command as run

    run(argv)


def baseline_command(argv: list[str]) -> None:
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


def _add_labeler_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labeler", choices=["rules", "chexbert"], default="rules", help="CheXpert-14 labeler")
    parser.add_argument("--chexbert-checkpoint", help="--labeler chexbert: the CheXbert weights (chexbert.pth)")
    parser.add_argument("--chexbert-tokenizer", help="--labeler chexbert: a BERT tokenizer folder")


def evaluate_command(argv: list[str]) -> None:
    from radiolm.metrics.clinical import UNCERTAIN_POLICIES, per_observation_markdown
    from radiolm.metrics.evaluate import METRIC_FAMILIES, MetricOptions, evaluate, read_predictions

    parser = argparse.ArgumentParser(
        prog="radiolm evaluate",
        description="Score a predictions JSONL (one {id, prediction, reference[, language]} per line) and write "
        "metrics.json, metrics.md and per_observation.md to --out.",
    )
    parser.add_argument("--predictions", required=True, type=Path, help="predictions JSONL")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--metrics", default="nlg,ce", help=f"comma-separated families of {list(METRIC_FAMILIES)}")
    _add_labeler_options(parser)
    parser.add_argument("--uncertain", choices=UNCERTAIN_POLICIES, default="negative", help="CE: uncertain (-1) as")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="N", help="resamples for 95%% intervals (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling")
    parser.add_argument("--bertscore-model", default="minilm-l6", help="BERTScore model alias or local path")
    parser.add_argument("--bertscore-layers", type=int, help="BERTScore layer (default: the model's)")
    parser.add_argument("--bertscore-baseline", help="baseline file to rescale BERTScore with")
    parser.add_argument("--radgraph-model", help="RadGraph model folder")
    args = parser.parse_args(argv)
    families = [f.strip() for f in args.metrics.split(",") if f.strip()]
    unknown = [f for f in families if f not in METRIC_FAMILIES]
    if unknown or not families:
        raise RadioLMError(
            f"--metrics {args.metrics!r}: unknown {unknown}; use a comma-separated list of {list(METRIC_FAMILIES)}"
        )
    if args.bootstrap < 0:
        raise RadioLMError(f"--bootstrap {args.bootstrap}: use 0 (no intervals) or a number of resamples")
    options = MetricOptions(
        labeler=args.labeler,
        uncertain=args.uncertain,
        chexbert_checkpoint=args.chexbert_checkpoint,
        chexbert_tokenizer=args.chexbert_tokenizer,
        bertscore_model=args.bertscore_model,
        bertscore_layers=args.bertscore_layers,
        bertscore_baseline=args.bertscore_baseline,
        radgraph_model=args.radgraph_model,
    )
    records = read_predictions(args.predictions)
    try:
        result = evaluate(records, families, options, bootstrap=args.bootstrap, seed=args.seed)
    except ValueError as e:  # a bad setting or input of a metric: one line, not a traceback
        raise RadioLMError(str(e)) from None
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"predictions": str(args.predictions), "metrics": families, **result.to_json()}
    (args.out / "metrics.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    markdown = result.markdown(f"Evaluation of `{args.predictions.name}`")
    (args.out / "metrics.md").write_text(markdown, encoding="utf-8")
    if result.labels is not None:
        table = per_observation_markdown(*result.labels, uncertain=args.uncertain)
        title = f"# Clinical efficacy per observation: `{args.predictions.name}` ({args.labeler} labeler)\n\n"
        (args.out / "per_observation.md").write_text(title + table + "\n", encoding="utf-8")
    print(markdown)
    print(
        f"wrote {args.out / 'metrics.json'}, {args.out / 'metrics.md'}"
        + (", per_observation.md" if result.labels else "")
    )


def read_reports(path: Path, text_field: str = "report") -> list[tuple[str, str]]:
    """``(id, text)`` of each report of a JSONL (objects with ``id`` and ``text_field``) or CSV (same columns).

    Raises:
        DataError: naming the file (and line) for an unknown format, a missing column or field, a non-text report
            or a repeated id.
    """
    if not path.is_file():
        raise DataError(f"{path}: no such reports file")
    rows: list[tuple[int, dict]] = []
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in ("id", text_field) if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(
                    f"{path}: missing column(s) {missing}; a reports CSV needs 'id' and '{text_field}' (--text-field)"
                )
            rows = [(reader.line_num, row) for row in reader]
    elif path.suffix.lower() in (".jsonl", ".json"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise DataError(
                        f"{path}:{number}: not JSON ({e}); a reports file has one object per line"
                    ) from None
    else:
        raise DataError(f"{path}: unknown format {path.suffix!r}; use a .jsonl or .csv file")
    reports, seen = [], set()
    for number, row in rows:
        if not isinstance(row, dict) or "id" not in row or text_field not in row:
            raise DataError(
                f"{path}:{number}: needs fields 'id' and '{text_field}' (choose the text with --text-field)"
            )
        text = row[text_field] if row[text_field] is not None else ""
        if not isinstance(text, str):
            raise DataError(f"{path}:{number}: field '{text_field}' must be text, got {text!r}")
        if str(row["id"]) in seen:
            raise DataError(f"{path}:{number}: duplicate id {row['id']!r}")
        seen.add(str(row["id"]))
        reports.append((str(row["id"]), text))
    return reports


def label_command(argv: list[str]) -> None:
    from radiolm.data.labels import CHEXPERT_14
    from radiolm.metrics.evaluate import MetricOptions, make_labeler

    parser = argparse.ArgumentParser(
        prog="radiolm label",
        description="Write the CheXpert-14 labels of a report file: id + 14 columns, 1 / 0 / -1 / blank.",
    )
    parser.add_argument("--reports", required=True, type=Path, help="reports .jsonl or .csv with an id column")
    parser.add_argument("--text-field", default="report", help="field / column holding the report text")
    _add_labeler_options(parser)
    parser.add_argument("--out", required=True, type=Path, help="labels CSV to write")
    args = parser.parse_args(argv)
    reports = read_reports(args.reports, args.text_field)
    options = MetricOptions(
        labeler=args.labeler, chexbert_checkpoint=args.chexbert_checkpoint, chexbert_tokenizer=args.chexbert_tokenizer
    )
    labels = make_labeler(options)([text for _, text in reports])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", *CHEXPERT_14])
        for (study, _), row in zip(reports, labels, strict=True):
            writer.writerow([study, *("" if value is None else int(value) for value in row)])
    print(f"labelled {len(reports)} reports ({args.labeler} labeler) -> {args.out}")
    print("| observation | 1 | 0 | -1 | blank |\n|---|---:|---:|---:|---:|")
    for i, name in enumerate(CHEXPERT_14):
        counts = Counter(row[i] for row in labels)
        print(f"| {name} | {counts[1]} | {counts[0]} | {counts[-1]} | {counts[None]} |")


def assets_command(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="radiolm assets", description="Prepare the built-in offline models.")
    parser.add_argument("action", choices=["prepare"])
    parser.parse_args(argv)
    from radiolm.assets import BUILTIN_LANGUAGE_MODELS, resolve_language_model

    for alias in BUILTIN_LANGUAGE_MODELS:
        print(f"{alias}: {resolve_language_model(alias)}")


COMMANDS: dict[str, Callable[[list[str]], None]] = {
    "data": data_command,
    "analyze": analyze_command,
    "table": table_command,
    "baseline": baseline_command,
    "evaluate": evaluate_command,
    "label": label_command,
    "assets": assets_command,
}
