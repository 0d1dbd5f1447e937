"""``radiolm label``: CheXpert-14 labels of a report file, or the rule-based labeler's measured agreement.

* ``--reports FILE.jsonl|csv --out labels.csv [--text-field report] [--labeler rules|chexbert]``: id + 14 columns,
  1 / 0 / -1 / blank, and a count table.
* ``--text REPORT``: one report's labels and every mention the rules found (for inspection).
* ``--validate TSV|JSONL [--errors [SET]]``: agreement with hand-labelled sentences
  (``tests/data/chexpert_sentences.tsv``; real Open-i sentences: ``tests/data/openi_sentences_labelled.jsonl``);
  ``--errors dev`` lists the disagreements of one set only.
* ``--phantom N``: agreement with the labels of N phantom studies.
* ``--draw-openi NLMCXR_reports.tgz --out FILE.jsonl``: the seeded draw of real sentences behind
  ``tests/data/openi_sentences_labelled.jsonl`` (:mod:`radiolm.metrics.openi_sentences`), without labels.

``--propagate-opacity`` marks Lung Opacity positive with its positive children (the rules labeler only);
``docs/labeler.md`` has the rules and the measured numbers.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter
from pathlib import Path

from radiolm.errors import DataError
from radiolm.metrics.commands import add_labeler_options

__all__ = ["main", "read_reports"]


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radiolm label",
        description="Write the CheXpert-14 labels of a report file (id + 14 columns, 1 / 0 / -1 / blank), or "
        "measure the rules labeler's agreement (--text, --validate, --phantom).",
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--reports", type=Path, help="reports .jsonl or .csv with an id column (needs --out)")
    what.add_argument("--text", help="label one report and show its mentions")
    what.add_argument(
        "--validate", type=Path, metavar="FILE", help="hand-labelled sentences (.tsv, .jsonl) to measure agreement on"
    )
    what.add_argument("--phantom", type=int, metavar="N", help="measure agreement on N phantom studies")
    what.add_argument(
        "--draw-openi",
        type=Path,
        metavar="TGZ",
        help="draw 320 distinct Open-i sentences (seed 0; 200 dev, 120 holdout) from NLMCXR_reports.tgz into --out "
        "(JSONL) for labelling by hand",
    )
    parser.add_argument("--out", type=Path, help="--reports: the labels CSV to write; --draw-openi: the JSONL")
    parser.add_argument("--text-field", default="report", help="--reports: field / column holding the report text")
    parser.add_argument(
        "--errors",
        nargs="?",
        const="all",
        metavar="SET",
        help="--validate: list the disagreements (of one set, e.g. dev: a held-out set stays unread while fixing)",
    )
    add_labeler_options(parser)
    parser.add_argument(
        "--propagate-opacity", action="store_true", help="rules labeler: Lung Opacity from its positive children"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv``; label a report file, or measure the rules labeler."""
    from radiolm.data.labels import CHEXPERT_14
    from radiolm.metrics.chexpert_labeler import (
        SHORT_NAMES,
        RuleLabeler,
        phantom_agreement,
        validate,
        validation_markdown,
    )
    from radiolm.metrics.evaluate import MetricOptions, make_labeler

    parser = _parser()
    args = parser.parse_args(argv)
    if args.reports is not None and args.out is None:
        parser.error("--reports needs --out (the labels CSV to write)")
    if args.draw_openi is not None:
        if args.out is None:
            parser.error("--draw-openi needs --out (the JSONL of drawn sentences to write)")
        from radiolm.metrics.openi_sentences import draw_sentences

        rows = draw_sentences(args.draw_openi)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        print(f"{len(rows)} sentences -> {args.out}; label them by hand (docs/labeler.md, 'Real report text')")
        return
    if args.labeler != "rules" and (args.reports is None or args.propagate_opacity):
        parser.error("--text, --validate, --phantom and --propagate-opacity are for --labeler rules")
    rules = RuleLabeler(propagate_opacity=args.propagate_opacity)
    if args.text is not None:
        for mention in rules.explain(args.text):
            print(mention)
        print(dict(zip(SHORT_NAMES.values(), rules.label(args.text), strict=True)))
    elif args.validate is not None:
        results = validate(args.validate, rules)
        print(validation_markdown(results))
        if args.errors is not None and args.errors not in results:
            parser.error(f"--errors {args.errors}: {args.validate} has the sets {sorted(results)}")
        for sentence, wrong in results[args.errors]["errors"] if args.errors else []:
            print(f"- {sentence} " + ", ".join(f"{SHORT_NAMES[o]} gold {g} got {p}" for o, (g, p) in wrong.items()))
    elif args.phantom is not None:
        agreement = phantom_agreement(args.phantom, labeler=rules)
        print(f"phantom n={agreement['n']} exact match {agreement['exact_match']:.3f}")
        for name, value in agreement["accuracy"].items():
            print(f"| {name} | {value:.3f} |")
    else:
        reports = read_reports(args.reports, args.text_field)
        options = MetricOptions(
            labeler=rules if args.labeler == "rules" else args.labeler,
            chexbert_checkpoint=args.chexbert_checkpoint,
            chexbert_tokenizer=args.chexbert_tokenizer,
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
