"""Cosine similarity of soft visual prompts and the positive / negative ratio Δ (Lu et al. Appendix B, Eq. 3, Fig. B).

Each study's soft visual prompt (``K`` tokens of width ``D_txt``) is flattened to one ``K * D_txt`` vector; the
cosine similarities of all pairs form the matrix of Fig. B, rows and columns sorted by label so that studies with
the same findings sit together. A pair is positive when the two studies have the same labels (Appendix B): the same
binarized CheXpert-14 vector (1 = positive; 0, uncertain and unknown = not positive — the appendix does not say how
uncertain labels count, ``uncertain`` names the choice). Then

    Δ = mean_{(i, j) in P} cos(F_i, F_j) / mean_{(p, q) in N} cos(F_p, F_q) - 1          (Eq. 3)

over unordered pairs of distinct studies. A larger Δ means that prompts of studies with the same findings are
more alike than prompts of studies with different ones (Appendix B: two-stage > one-stage fine-tuning).

    radiolm analyze prompt-similarity --run runs/two_stage_phantom/version_0 [--split test --limit 500]

writes ``prompt-similarity.png`` (the sorted matrix, Δ in the title) and ``prompt-similarity.json``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch
from torch import Tensor

from radiolm.wandb_run import log_analysis

__all__ = ["cosine_matrix", "delta_ratio", "label_order", "main", "same_label_pairs"]

NAME = "prompt-similarity"


def cosine_matrix(prompts: Tensor) -> Tensor:
    """Pairwise cosine similarity of flattened prompts.

    Args:
        prompts: ``[N, K, D]`` soft visual prompts (or ``[N, F]`` already flat).

    Returns:
        ``[N, N]``.
    """
    flat = torch.nn.functional.normalize(prompts.reshape(len(prompts), -1).float(), dim=-1)
    return flat @ flat.T


def binarize_labels(labels: Tensor, uncertain: str = "negative") -> Tensor:
    """``[N, 14]`` of 1 / 0 / -1 -> ``[N, 14]`` of 0 / 1 (uncertain -1 counts as ``uncertain``)."""
    if uncertain not in ("negative", "positive"):
        raise ValueError(f"uncertain must be 'negative' or 'positive', got {uncertain!r}")
    positive = labels == 1
    if uncertain == "positive":
        positive |= labels == -1
    return positive.long()


def same_label_pairs(labels: Tensor) -> Tensor:
    """``[N, N]`` bool: True where two studies have identical binarized label vectors (diagonal included)."""
    return (labels[:, None, :] == labels[None, :, :]).all(-1)


def delta_ratio(similarity: Tensor, labels: Tensor) -> dict[str, float]:
    """Eq. 3 over the unordered pairs ``i < j``.

    Args:
        similarity: ``[N, N]`` cosine similarities.
        labels: ``[N, C]`` binarized labels.

    Returns:
        ``delta``, ``mean_positive``, ``mean_negative``, ``n_positive_pairs``, ``n_negative_pairs`` (``delta`` is
        NaN when either set of pairs is empty).
    """
    n = len(similarity)
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=similarity.device), diagonal=1)
    same = same_label_pairs(labels)
    pos, neg = similarity[upper & same], similarity[upper & ~same]
    mean_pos = float(pos.mean()) if len(pos) else float("nan")
    mean_neg = float(neg.mean()) if len(neg) else float("nan")
    delta = mean_pos / mean_neg - 1 if len(pos) and len(neg) else float("nan")
    return {
        "delta": delta,
        "mean_positive": mean_pos,
        "mean_negative": mean_neg,
        "n_positive_pairs": len(pos),
        "n_negative_pairs": len(neg),
    }


def label_order(labels: Tensor) -> Tensor:
    """Indices that sort studies by label vector (most frequent patterns first, then lexicographic), stable.

    Args:
        labels: ``[N, C]`` binarized labels.

    Returns:
        ``[N]`` permutation.
    """
    keys = ["".join(str(int(v)) for v in row) for row in labels.tolist()]
    counts: dict[str, int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    order = sorted(range(len(keys)), key=lambda i: (-counts[keys[i]], keys[i], i))
    return torch.tensor(order, dtype=torch.long)


def plot(similarity: Tensor, stats: dict[str, Any], title: str, path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    image = ax.imshow(similarity.numpy(), cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="cosine similarity")
    ax.set(title=f"{title} [Δ = {stats['delta']:.3f}]", xlabel="study (sorted by labels)", ylabel="study")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    from radiolm.analysis.run import add_run_arguments, batches, load_run, output_dir

    parser = argparse.ArgumentParser(prog=f"radiolm analyze {NAME}", description=__doc__.split("\n\n")[0])
    add_run_arguments(parser)
    parser.add_argument("--uncertain", default="negative", choices=["negative", "positive"], help="-1 labels count as")
    args = parser.parse_args(argv)
    run = load_run(args.run, args.ckpt, {"num_workers": 0})
    prompts, labels = [], []
    with torch.no_grad():
        for batch in batches(run, args.split, args.limit):
            prompts.append(run.model.encode(batch).float().cpu())
            labels.append(batch.labels.cpu())
    if not prompts:
        raise SystemExit(f"radiolm analyze {NAME}: the {args.split} split is empty")
    raw = torch.cat(labels)[: args.limit]
    if (raw == -1).all():
        raise SystemExit(f"radiolm analyze {NAME}: the {args.split} split has no labels (labels.csv); Δ needs them")
    flat, binary = torch.cat(prompts)[: args.limit], binarize_labels(raw, args.uncertain)
    similarity = cosine_matrix(flat)
    stats = delta_ratio(similarity, binary)
    order = label_order(binary)
    sorted_similarity = similarity[order][:, order]
    summary = {"run": str(args.run), "checkpoint": str(run.checkpoint), "split": args.split, "n_studies": len(flat)}
    summary |= {"uncertain": args.uncertain, **stats, "mean_similarity": float(similarity.mean())}
    out = output_dir(args)
    (out / f"{NAME}.json").write_text(json.dumps(summary, indent=2))
    plot(sorted_similarity, stats, f"{run.run_dir.parent.name}/{run.run_dir.name}", out / f"{NAME}.png")
    log_analysis(NAME, args.run, out / f"{NAME}.png", out / f"{NAME}.json")
    print(f"{NAME}: Δ = {stats['delta']:.4f} over {len(flat)} studies; wrote {out / NAME}.png and .json")
