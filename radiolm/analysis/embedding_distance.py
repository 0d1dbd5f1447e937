"""``radiolm analyze embedding-distance``: how far the visual embeddings lie from the LLM's word embeddings.

The bidirectional paper's Fig. 4 (§4.2): "for each CXR image, the visual embeddings extracted by the vision encoder
and projected by the visual mapper are compared with all token embeddings within the LLM's built-in embedding
space. The Euclidean distance of each visual embedding to the closest token is recorded", over the whole test set,
and shown as a histogram per configuration. Here the visual embeddings are what the method feeds the LLM
(:meth:`~radiolm.methods.base.ReportGenerationModule.encode`, ``[B, L, D]``), so any method's run can be compared.

    radiolm analyze embedding-distance --run runs/bidirectional_phantom/v2t-t2v-rec/version_0 \\
        --compare runs/bidirectional_phantom/v2t/version_0 --labels "V2T+T2V+Rec" V2T --out runs/bidirectional_phantom

writes ``embedding-distance.png`` (the histograms) and ``embedding-distance.json`` (per configuration: counts,
mean / median / quantiles, the histogram) into ``--out`` (default: the ``--run`` folder).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from radiolm.analysis.run import add_run_arguments, batches, load_run, output_dir
from radiolm.wandb_run import log_analysis

__all__ = ["distance_summary", "main", "min_token_distances", "run_distances"]

NAME = "embedding-distance"


@torch.no_grad()
def min_token_distances(visual: Tensor, table: Tensor, chunk: int = 4096) -> Tensor:
    """Euclidean distance of every visual embedding to its nearest row of the token-embedding table.

    Args:
        visual: ``[..., D]`` visual embeddings (e.g. ``[B, L, D]``).
        table: ``[V, D]`` the LLM's input embedding matrix.
        chunk: Rows of ``table`` compared at a time (bounds memory at ``N * chunk`` distances).

    Returns:
        ``[N]`` minimum distances, ``N`` the number of visual embeddings (``visual`` flattened, row-major).
    """
    if visual.shape[-1] != table.shape[-1]:
        raise ValueError(f"visual width {visual.shape[-1]} != token-embedding width {table.shape[-1]}")
    points = visual.reshape(-1, visual.shape[-1]).double()
    best = torch.full((len(points),), float("inf"), dtype=torch.float64, device=points.device)
    for start in range(0, len(table), chunk):
        rows = table[start : start + chunk].to(points.device, torch.float64)
        best = torch.minimum(best, torch.cdist(points, rows).min(dim=1).values)
    return best.float()


def distance_summary(distances: Tensor, edges: Tensor) -> dict[str, Any]:
    """Count, mean, quantiles and the histogram over ``edges`` (``[K + 1]``) of ``[N]`` distances."""
    d = distances.double()
    q = torch.quantile(d, torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=torch.float64)).tolist()
    counts = torch.histogram(d.clamp(edges[0].item(), edges[-1].item()), bins=edges.double()).hist
    return {
        "n": len(d),
        "mean": float(d.mean()),
        "std": float(d.std()) if len(d) > 1 else 0.0,
        "min": float(d.min()),
        "max": float(d.max()),
        "quantiles": dict(zip(["p05", "p25", "p50", "p75", "p95"], q, strict=True)),
        "histogram": {"edges": edges.tolist(), "counts": [int(c) for c in counts.tolist()]},
    }


def run_distances(run_dir: Path, ckpt: str, split: str, limit: int | None) -> tuple[Tensor, dict[str, Any]]:
    """Minimum distances ``[N]`` of every visual embedding of a run's split, and facts about the run."""
    run = load_run(run_dir, ckpt, data_overrides={"num_workers": 0})
    table = run.model.language_model.base.get_input_embeddings().weight.detach()  # [V, D]
    out, studies = [], 0
    with torch.no_grad():
        for batch in batches(run, split, limit):
            visual = run.model.encode(batch)  # [B, L, D]
            out.append(min_token_distances(visual, table))
            studies += len(batch)
    if not out:
        raise ValueError(f"{run_dir}: the {split} split is empty")
    info = {"run": str(run_dir), "checkpoint": str(run.checkpoint), "studies": studies, "vocab": len(table)}
    return torch.cat(out), info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=f"radiolm analyze {NAME}",
        description="Histogram of the minimum Euclidean distance of each visual embedding to the LLM's token "
        "embeddings (bidirectional paper, Fig. 4), per run; PNG + JSON.",
    )
    add_run_arguments(parser)
    parser.add_argument("--compare", nargs="*", type=Path, default=[], help="more runs drawn in the same figure")
    parser.add_argument("--labels", nargs="*", default=None, help="one label per run (--run first)")
    parser.add_argument("--bins", type=int, default=40, help="histogram bins over the common range")
    args = parser.parse_args(argv)
    runs = [args.run, *args.compare]
    labels = args.labels or [f"{Path(r).parent.name}/{Path(r).name}" for r in runs]
    if len(labels) != len(runs):
        raise SystemExit(f"radiolm analyze {NAME}: {len(labels)} labels for {len(runs)} runs")
    results = [run_distances(Path(r), args.ckpt, args.split, args.limit) for r in runs]
    low = min(float(d.min()) for d, _ in results)
    high = max(float(d.max()) for d, _ in results)
    edges = torch.linspace(low, high if high > low else low + 1.0, args.bins + 1)
    report = {
        "analysis": NAME,
        "split": args.split,
        "configurations": {
            label: {**info, **distance_summary(d, edges)} for label, (d, info) in zip(labels, results, strict=True)
        },
    }
    out = output_dir(args)
    (out / f"{NAME}.json").write_text(json.dumps(report, indent=2) + "\n")
    _plot(out / f"{NAME}.png", labels, [d for d, _ in results], edges, args.split)
    log_analysis(NAME, args.run, out / f"{NAME}.png", out / f"{NAME}.json")
    for label, summary in report["configurations"].items():
        print(
            f"{label}: {summary['n']} embeddings of {summary['studies']} studies, min distance to a token: mean "
            f"{summary['mean']:.3f}, median {summary['quantiles']['p50']:.3f}"
        )
    print(f"wrote {out / f'{NAME}.png'} and {NAME}.json")


def _plot(path: Path, labels: list[str], distances: list[Tensor], edges: Tensor, split: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, d in zip(labels, distances, strict=True):
        ax.hist(d.numpy(), bins=edges.tolist(), alpha=0.5, label=f"{label} (median {d.median():.2f})")
    ax.set_xlabel("minimum Euclidean distance to an LLM token embedding")
    ax.set_ylabel("visual embeddings")
    ax.set_title(f"Visual embeddings vs the LLM's word embeddings ({split} split)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
