"""``radiolm evaluate``: score a predictions JSONL with the function validation and test use.

``radiolm evaluate --predictions preds.jsonl --out DIR [--metrics nlg,ce,...] [--labeler rules|chexbert]
[--uncertain negative|positive] [--bootstrap N --seed S]`` writes ``metrics.json``, ``metrics.md`` and
``per_observation.md`` (:func:`radiolm.metrics.evaluate.evaluate`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from radiolm.errors import RadioLMError
from radiolm.metrics.commands import add_labeler_options

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv``, score the predictions and write the three files."""
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
    add_labeler_options(parser)
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
