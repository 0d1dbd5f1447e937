"""``radiolm evaluate``: score a predictions JSONL with the function validation and test use.

``radiolm evaluate --predictions preds.jsonl --out DIR [--protocol NAME] [--metrics nlg,ce,...]
[--labeler rules|chexbert] [--uncertain negative|positive] [--bootstrap N --seed S]`` writes ``metrics.json``,
``metrics.md`` and ``per_observation.md`` (:meth:`radiolm.metrics.protocols.EvaluationProtocol.evaluate`). The
protocol (default ``default``) sets every choice; an option given on the command line overrides that one choice.
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
    from radiolm.metrics.evaluate import METRIC_FAMILIES, read_predictions
    from radiolm.metrics.protocols import PRESETS, EvaluationProtocol

    parser = argparse.ArgumentParser(
        prog="radiolm evaluate",
        description="Score a predictions JSONL (one {id, prediction, reference[, language]} per line) and write "
        "metrics.json, metrics.md and per_observation.md to --out.",
    )
    parser.add_argument(
        "--predictions",
        required=True,
        type=Path,
        help="predictions JSONL, or CSV (id/prediction/reference or Dia-LLaMA's)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--protocol", choices=list(PRESETS), default="default", help="evaluation protocol (docs/protocols.md)"
    )
    parser.add_argument("--metrics", help=f"comma-separated families of {list(METRIC_FAMILIES)} (default: protocol's)")
    add_labeler_options(parser)
    parser.set_defaults(labeler=None)  # the protocol's labeler unless given
    parser.add_argument("--uncertain", choices=UNCERTAIN_POLICIES, help="CE: uncertain (-1) as (default: protocol's)")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="N", help="resamples for 95%% intervals (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling")
    parser.add_argument("--bertscore-model", help="BERTScore model alias or local path (default: protocol's)")
    parser.add_argument("--bertscore-layers", type=int, help="BERTScore layer (default: the model's)")
    parser.add_argument("--bertscore-baseline", help="baseline file to rescale BERTScore with")
    parser.add_argument("--radgraph-model", help="RadGraph model folder")
    parser.add_argument(
        "--reference-tokenizer", help="tokenizer folder or LLM alias of a protocol that cuts references"
    )
    args = parser.parse_args(argv)
    families = None if args.metrics is None else [f.strip() for f in args.metrics.split(",") if f.strip()]
    unknown = [f for f in families or () if f not in METRIC_FAMILIES]
    if unknown or families == []:
        raise RadioLMError(
            f"--metrics {args.metrics!r}: unknown {unknown}; use a comma-separated list of {list(METRIC_FAMILIES)}"
        )
    if args.bootstrap < 0:
        raise RadioLMError(f"--bootstrap {args.bootstrap}: use 0 (no intervals) or a number of resamples")
    protocol = EvaluationProtocol(
        args.protocol,
        metrics=families,
        labeler=args.labeler,
        uncertain=args.uncertain,
        chexbert_checkpoint=args.chexbert_checkpoint,
        chexbert_tokenizer=args.chexbert_tokenizer,
        bertscore_model=args.bertscore_model,
        bertscore_layers=args.bertscore_layers,
        bertscore_baseline=args.bertscore_baseline,
        radgraph_model=args.radgraph_model,
        reference_tokenizer=args.reference_tokenizer,
    )
    records = read_predictions(args.predictions)
    if protocol.settings.labeler == "chexbert" and "ce" in protocol.metrics and not protocol.has_chexbert():
        raise RadioLMError(
            f"the {args.protocol!r} protocol labels with CheXbert: pass --chexbert-checkpoint chexbert.pth and "
            "--chexbert-tokenizer DIR (or --labeler rules, or --metrics without ce)"
        )
    try:
        result = protocol.evaluate(records, bootstrap=args.bootstrap, seed=args.seed)
    except ValueError as e:  # a bad setting or input of a metric: one line, not a traceback
        raise RadioLMError(str(e)) from None
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"predictions": str(args.predictions), "metrics": protocol.metrics, **result.to_json()}
    (args.out / "metrics.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    markdown = result.markdown(f"Evaluation of `{args.predictions.name}`")
    (args.out / "metrics.md").write_text(markdown, encoding="utf-8")
    if result.labels is not None:
        table = per_observation_markdown(*result.labels, uncertain=protocol.settings.uncertain)
        labeler = protocol.settings.labeler
        title = f"# Clinical efficacy per observation: `{args.predictions.name}` ({labeler} labeler)\n\n"
        (args.out / "per_observation.md").write_text(title + table + "\n", encoding="utf-8")
    print(markdown)
    print(
        f"wrote {args.out / 'metrics.json'}, {args.out / 'metrics.md'}"
        + (", per_observation.md" if result.labels else "")
    )
