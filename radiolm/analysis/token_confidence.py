"""Average token confidence of generated reports, true vs false positive findings (Lu et al. Appendix E, Eq. 4).

For a generated report ``Y = y_1 .. y_n`` the average confidence is

    AC(Y | θ) = 1/n Σ_t p_θ(y_t | C, y_<t)                                              (Eq. 4)

the mean probability the model gave each token it produced (computed by feeding the generated report back with
teacher forcing; the end-of-sequence token counts as a token). Each generated report is labelled with the suite's
CheXpert-14 labeler, as are the references (the clinical-efficacy metrics' convention); for every observation the
report's AC goes to the true positives (the reference is positive too) or to the false positives (a hallucination,
Appendix E's definition). Fig. E shows the two distributions per observation; overlapping supports mean AC cannot
flag mistakes.

    radiolm analyze token-confidence --run runs/two_stage_phantom/version_0 [--split test --limit 200]

writes ``token-confidence.png`` (TP vs FP AC per observation) and ``token-confidence.json``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from radiolm.data.labels import CHEXPERT_14
from radiolm.wandb_run import log_analysis

__all__ = ["average_confidence", "main", "split_by_outcome"]

NAME = "token-confidence"


def average_confidence(logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Eq. 4: mean probability of the target tokens.

    Args:
        logits: ``[B, T, V]`` next-token logits (row ``t`` predicts ``targets[:, t]``).
        targets: ``[B, T]`` token ids.
        mask: ``[B, T]`` bool, the positions of the report's tokens.

    Returns:
        ``[B]`` AC per report (NaN for a report with no tokens).
    """
    probs = logits.float().softmax(-1).gather(-1, targets.clamp(min=0)[..., None])[..., 0]  # [B, T]
    weights = mask.float()
    return (probs * weights).sum(-1) / weights.sum(-1)


def split_by_outcome(
    confidence: Sequence[float], predicted: Sequence[Sequence[int]], reference: Sequence[Sequence[int]]
) -> dict[str, dict[str, list[float]]]:
    """Group each report's AC by observation into true and false positives.

    Args:
        confidence: ``N`` AC values.
        predicted: ``[N, 14]`` binarized labels of the generated reports.
        reference: ``[N, 14]`` binarized labels of the references.

    Returns:
        ``{observation: {"tp": [AC, ...], "fp": [AC, ...]}}`` for the 14 CheXpert observations.
    """
    groups: dict[str, dict[str, list[float]]] = {name: {"tp": [], "fp": []} for name in CHEXPERT_14}
    for ac, pred, ref in zip(confidence, predicted, reference, strict=True):
        for name, p, r in zip(CHEXPERT_14, pred, ref, strict=True):
            if p == 1:
                groups[name]["tp" if r == 1 else "fp"].append(float(ac))
    return groups


@torch.no_grad()
def report_confidence(model: Any, batch: Any, reports: list[str]) -> Tensor:
    """``[B]`` AC of ``reports`` under ``model`` given each study's soft visual prompt."""
    from radiolm.analysis.prompt_attention import teacher_forced_inputs

    forced = teacher_forced_inputs(model, batch, reports)
    inputs = forced.inputs
    assert inputs.labels is not None
    logits = model.language_model.base(
        inputs_embeds=inputs.inputs_embeds, attention_mask=inputs.attention_mask, use_cache=False
    ).logits  # [B, T, V]
    targets = inputs.labels[:, 1:]
    return average_confidence(logits[:, :-1], targets, targets != -100)


def _stats(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "mean": None, "min": None, "max": None}
    t = torch.tensor(values)
    return {"n": len(values), "mean": float(t.mean()), "min": float(t.min()), "max": float(t.max())}


def plot(groups: dict[str, dict[str, list[float]]], title: str, path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in CHEXPERT_14 if groups[n]["tp"] or groups[n]["fp"]]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(names) + 2), 3.6))
    for offset, (kind, color) in zip((-0.18, 0.18), (("tp", "tab:green"), ("fp", "tab:red")), strict=True):
        data = [groups[n][kind] for n in names]
        spots = [i + offset for i, d in enumerate(data) if d]
        if spots:
            parts = ax.boxplot([d for d in data if d], positions=spots, widths=0.3, patch_artist=True)
            for box in parts["boxes"]:
                box.set_facecolor(color)
                box.set_alpha(0.6)
        label = "true positive" if kind == "tp" else "false positive"
        ax.plot([], [], color=color, linewidth=6, alpha=0.6, label=label)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set(ylabel="average token confidence (Eq. 4)", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    from radiolm.analysis.run import add_run_arguments, batches, load_run, output_dir
    from radiolm.metrics.chexpert_labeler import label_reports
    from radiolm.metrics.clinical import binarize

    parser = argparse.ArgumentParser(prog=f"radiolm analyze {NAME}", description=__doc__.split("\n\n")[0])
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    run = load_run(args.run, args.ckpt, {"num_workers": 0})
    confidence: list[float] = []
    generated: list[str] = []
    references: list[str] = []
    for batch in batches(run, args.split, args.limit):
        reports = run.model.generate(batch)
        confidence += report_confidence(run.model, batch, reports).tolist()
        generated += reports
        references += batch.reports
    if args.limit is not None:
        confidence, generated, references = confidence[: args.limit], generated[: args.limit], references[: args.limit]
    if not confidence:
        raise SystemExit(f"radiolm analyze {NAME}: the {args.split} split is empty")
    predicted = binarize(label_reports(generated), name="generated reports")
    reference = binarize(label_reports(references), name="references")
    groups = split_by_outcome(confidence, predicted, reference)
    summary: dict[str, Any] = {"run": str(args.run), "checkpoint": str(run.checkpoint), "split": args.split}
    summary |= {"n_studies": len(confidence), "mean_confidence": float(torch.tensor(confidence).nanmean())}
    summary["per_observation"] = {n: {k: _stats(v) for k, v in g.items()} for n, g in groups.items()}
    summary["confidence"] = confidence
    out = output_dir(args)
    (out / f"{NAME}.json").write_text(json.dumps(summary, indent=2))
    plot(groups, f"{run.run_dir.parent.name}/{run.run_dir.name}: AC of true vs false positives", out / f"{NAME}.png")
    log_analysis(NAME, args.run, out / f"{NAME}.png", out / f"{NAME}.json")
    print(f"{NAME}: mean AC {summary['mean_confidence']:.3f} over {len(confidence)} reports; wrote {out / NAME}.png")
