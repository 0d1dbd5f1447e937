"""Attention allocated to the soft visual prompt, per layer, length-normalised (Lu et al. §4 Eq. 2, Fig. 2).

For each generated token ``i`` and each layer, the attention weights of its query row (``H`` heads) are summed over
the ``K`` visual-prompt positions and divided by ``K / L_i``, the share the prompt would get if attention were
uniform over the ``L_i`` positions the query sees (Eq. 2 writes ``K / (K + i)`` for a prompt of only the visual
tokens; radiolm counts the positions actually attended, which adds the bos token). An average of 1 means the
visual prompt gets attention in proportion to its length. The values are averaged over heads, generated tokens
and studies, one number per layer.

The generated reports are fed back with teacher forcing: with causal attention the rows of the generated tokens
are those computed while generating them, so one forward pass with eager attention gives every layer's weights.

    radiolm analyze prompt-attention --run runs/two_stage_phantom/version_0 [--split test --limit 64]

writes ``prompt-attention.png`` (per-layer bars) and ``prompt-attention.json`` into the run folder (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from radiolm.batch import ReportBatch
from radiolm.methods.base import ReportGenerationModule
from radiolm.parts.prompt import PromptInputs
from radiolm.wandb_run import log_analysis

__all__ = ["ForcedInputs", "main", "normalised_visual_attention", "teacher_forced_inputs"]

NAME = "prompt-attention"


@dataclass
class ForcedInputs:
    """A batch's prompts followed by given reports, with the positions the analyses need.

    Attributes:
        inputs: Right-padded :class:`PromptInputs` (labels on the report tokens and eos).
        visual_mask: ``[B, T]`` bool, the ``K`` soft-prompt positions.
        query_mask: ``[B, T]`` bool, the positions whose next-token prediction is a report token (the query row
            that "generates" token ``t + 1``).
    """

    inputs: PromptInputs
    visual_mask: Tensor
    query_mask: Tensor


@torch.no_grad()
def teacher_forced_inputs(model: ReportGenerationModule, batch: ReportBatch, reports: list[str]) -> ForcedInputs:
    """Encode ``batch``, place ``reports`` after the prompt, and mark the visual and query positions.

    Args:
        model: A trained method (its ``encode``, ``prompt`` and ``language_model``).
        batch: The studies.
        reports: One text per study (usually the model's own generated reports).
    """
    visual = model.encode(batch)  # [B, K, D]
    inputs = model.prompt.build(model.language_model, visual, reports, model.prompt_context(batch), "right")
    assert inputs.labels is not None
    b, t = inputs.attention_mask.shape
    positions = inputs.slot_starts["image"][:, None] + torch.arange(visual.shape[1], device=visual.device)
    visual_mask = torch.zeros(b, t, dtype=torch.bool, device=visual.device).scatter_(1, positions, True)
    query_mask = torch.zeros_like(visual_mask)
    query_mask[:, :-1] = inputs.labels[:, 1:] != -100
    return ForcedInputs(inputs, visual_mask, query_mask)


def normalised_visual_attention(
    attention: Tensor, visual_mask: Tensor, query_mask: Tensor, attention_mask: Tensor
) -> Tensor:
    """Eq. 2 for one layer: ``alpha = sum_{j in prompt} a_ij / (K / L_i)``, averaged over heads and queries.

    Args:
        attention: ``[B, H, T, T]`` attention weights (rows: queries, columns: keys; rows sum to 1).
        visual_mask: ``[B, T]`` bool, the soft visual prompt positions (``K`` per study).
        query_mask: ``[B, T]`` bool, the query rows of the generated tokens.
        attention_mask: ``[B, T]`` 1 on real tokens (padding is never attended).

    Returns:
        ``[B]``: each study's mean normalised attention to its visual prompt (NaN when it has no query rows).
    """
    attention = attention.float()
    to_visual = (attention * visual_mask[:, None, None, :].float()).sum(-1).mean(1)  # [B, T]: mean over heads
    k = visual_mask.sum(-1, keepdim=True).float()  # [B, 1]
    seen = attention_mask.float().cumsum(-1)  # [B, T]: L_i, positions a causal query row sees
    alpha = to_visual / (k / seen)
    weights = query_mask.float()
    return (alpha * weights).sum(-1) / weights.sum(-1)


@torch.no_grad()
def prompt_attention_per_layer(model: ReportGenerationModule, batch: ReportBatch, reports: list[str]) -> Tensor:
    """``[n_layers, B]`` normalised attention to the soft prompt while producing ``reports``."""
    forced = teacher_forced_inputs(model, batch, reports)
    base = model.language_model.base
    out = base(
        inputs_embeds=forced.inputs.inputs_embeds,
        attention_mask=forced.inputs.attention_mask,
        output_attentions=True,
        use_cache=False,
    )
    if not out.attentions or out.attentions[0] is None:
        raise RuntimeError("the language model returned no attention weights; it needs eager attention")
    per_layer = [
        normalised_visual_attention(a, forced.visual_mask, forced.query_mask, forced.inputs.attention_mask)
        for a in out.attentions
    ]
    return torch.stack(per_layer)


def summarise(per_study: Tensor) -> dict[str, Any]:
    """``[n_layers, N]`` -> per-layer mean and standard deviation over studies (NaN studies dropped)."""
    means, stds = [], []
    for row in per_study:
        row = row[~row.isnan()]
        means.append(float(row.mean()) if len(row) else float("nan"))
        stds.append(float(row.std()) if len(row) > 1 else 0.0)
    return {"per_layer_mean": means, "per_layer_std": stds, "mean": float(torch.tensor(means).nanmean())}


def plot(summary: dict[str, Any], title: str, path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means, stds = summary["per_layer_mean"], summary["per_layer_std"]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(means) + 2), 3.2))
    ax.bar(range(1, len(means) + 1), means, yerr=stds, color="tab:blue", alpha=0.8, capsize=2)
    ax.axhline(1.0, color="gray", linestyle="--", linewidth=1, label="proportional to length")
    ax.set(xlabel="layer", ylabel="attention to prompt (Eq. 2)", title=title)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _eager(model: ReportGenerationModule) -> None:
    base = model.language_model.base
    if hasattr(base, "set_attn_implementation"):
        base.set_attn_implementation("eager")
    else:  # pragma: no cover - older transformers
        base.config._attn_implementation = "eager"


def main(argv: list[str] | None = None) -> None:
    from radiolm.analysis.run import add_run_arguments, batches, load_run, output_dir

    parser = argparse.ArgumentParser(prog=f"radiolm analyze {NAME}", description=__doc__.split("\n\n")[0])
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    run = load_run(args.run, args.ckpt, {"num_workers": 0})
    _eager(run.model)
    columns = []
    for batch in batches(run, args.split, args.limit):
        reports = run.model.generate(batch)
        columns.append(prompt_attention_per_layer(run.model, batch, reports))
    if not columns:
        raise SystemExit(f"radiolm analyze {NAME}: the {args.split} split is empty")
    per_study = torch.cat(columns, dim=1)
    if args.limit is not None:
        per_study = per_study[:, : args.limit]
    summary = {"run": str(args.run), "checkpoint": str(run.checkpoint), "split": args.split}
    summary |= {"n_studies": per_study.shape[1], "n_layers": per_study.shape[0], **summarise(per_study)}
    out = output_dir(args)
    (out / f"{NAME}.json").write_text(json.dumps(summary, indent=2))
    title = f"{run.run_dir.parent.name}/{run.run_dir.name}: attention to the soft visual prompt"
    plot(summary, title, out / f"{NAME}.png")
    log_analysis(NAME, args.run, out / f"{NAME}.png", out / f"{NAME}.json")
    print(f"{NAME}: mean over layers {summary['mean']:.3f}; wrote {out / NAME}.png and .json")
