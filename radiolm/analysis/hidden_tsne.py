"""t-SNE of CMRG-LLM's LLM hidden features ``h^p`` by disease, runs side by side (CMRG-LLM Fig. 2, §3.2).

    radiolm analyze hidden-tsne --run "with L^SC=runs/cmrg_llm_phantom/version_0" \
        --run "without L^SC=runs/cmrg_llm_phantom_nosc/version_0" [--task XE1 --stage N --split test --limit 500]

``h^p = P_h(mean of the LLM's last hidden states over the prompt [f^t, f_i^v, f^p])`` (§2.3) is the feature that
L^SC shapes; :meth:`radiolm.methods.CMRGLLM.prompt_features` computes it as training does. Fig. 2 shows it without
and with L^SC (Table 2's ablation ``contrastive: false``): each ``--run`` is a continual run folder, loaded with the
weights its stage ``--stage`` ended with (default: its last finished stage) and its task ``--task``'s own domain
parameters (default: the first task, MIMIC-CXR in the paper). A run's name defaults to ``with L^SC`` /
``without L^SC`` from its config.

Each study is coloured by its disease: its one label as the class centres count labels (§2.3: the model's
``ignored_observations`` are not a second label), ``No Finding``, ``several findings``, or ``unlabelled`` (-1 only).
Every run's ``h^p`` is embedded on its own (the spaces of two models are not comparable), by scikit-learn's t-SNE
when installed, else the suite's exact t-SNE (:mod:`radiolm.analysis.tsne`); the JSON says which. As a number next
to the picture (not in the paper): ``class_separation``, the mean cosine similarity of ``h^p`` between studies of
the same single label minus that between studies of different single labels, computed on ``h^p`` itself, not on
the 2-D map.

Writes ``hidden-tsne.png`` and ``hidden-tsne.json`` into ``--out`` (default: the first run folder).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from radiolm.analysis.continual_run import ContinualRun, parse_named_run, read_continual_run
from radiolm.analysis.tsne import tsne
from radiolm.data.labels import CHEXPERT_14
from radiolm.errors import RadioLMError
from radiolm.wandb_run import log_analysis

__all__ = ["NAME", "SEVERAL", "UNLABELLED", "class_separation", "disease_groups", "main"]

NAME = "hidden-tsne"
SEVERAL = "several findings"
UNLABELLED = "unlabelled"


def disease_groups(labels: Tensor, single: Tensor) -> list[str]:
    """The colour group of each study.

    Args:
        labels: ``[N, 14]`` CheXpert values (1 / 0 / -1).
        single: ``[N]`` the one counted class of each study, ``-1`` when it has none or several
            (:meth:`radiolm.parts.class_centres.ClassCentres.single_label`).

    Returns:
        ``[N]`` names: an observation of :data:`CHEXPERT_14`, :data:`SEVERAL` or :data:`UNLABELLED`.
    """
    groups = []
    for row, k in zip(labels.tolist(), single.tolist(), strict=True):
        if k >= 0:
            groups.append(CHEXPERT_14[k])
        elif all(v == -1 for v in row):
            groups.append(UNLABELLED)
        else:
            groups.append(SEVERAL)
    return groups


def class_separation(features: Tensor, groups: list[str]) -> float:
    """Mean cosine similarity of same-class pairs minus that of different-class pairs, over the studies of one
    single label (not :data:`SEVERAL` / :data:`UNLABELLED`); NaN without both kinds of pairs.

    Args:
        features: ``[N, D]`` ``h^p``.
        groups: ``[N]`` from :func:`disease_groups`.
    """
    keep = [i for i, g in enumerate(groups) if g not in (SEVERAL, UNLABELLED)]
    if len(keep) < 2:
        return float("nan")
    unit = torch.nn.functional.normalize(features[keep].double(), dim=-1)
    similarity = unit @ unit.T
    names = [groups[i] for i in keep]
    same = torch.tensor([[a == b for b in names] for a in names])
    upper = torch.triu(torch.ones_like(same), diagonal=1)
    within, between = similarity[upper & same], similarity[upper & ~same]
    if not len(within) or not len(between):
        return float("nan")
    return float(within.mean() - between.mean())


def hidden_features(run: ContinualRun, stage: int, task: str, split: str, limit: int | None) -> dict[str, Any]:
    """``h^p``, labels, ids and colour groups of ``task``'s ``split`` with the weights of ``stage`` (1-based)."""
    from radiolm.analysis.run import batches, load_run

    if task not in run.tasks[:stage]:
        raise RadioLMError(
            f"--task {task}: after stage {stage} the run {run.run_dir} has seen only {run.tasks[:stage]}; its "
            "parameters for an unseen domain are untrained"
        )
    from radiolm.data.datamodules.continual import ContinualDataModule
    from radiolm.methods.cmrg_llm import CMRGLLM

    loaded = load_run(run.run_dir, str(run.checkpoint(stage)))
    model, data = loaded.model, loaded.datamodule
    if not isinstance(model, CMRGLLM) or not isinstance(data, ContinualDataModule):
        raise RadioLMError(
            f"{run.run_dir / 'config.yaml'}: a {type(model).__name__} on a {type(data).__name__}; hidden-tsne reads "
            "the h^p of CMRG-LLM continual runs (radiolm.methods.CMRGLLM with radiolm.data.ContinualDataModule)"
        )
    loaded.datamodule = data.use(run.tasks.index(task))
    loaded.datamodule.num_workers = 0
    loaded.datamodule.setup("test")
    model.use_domain(task)
    features, labels, ids = [], [], []
    with torch.no_grad():
        for batch in batches(loaded, split, limit):
            features.append(model.prompt_features(batch).float().cpu())
            labels.append(batch.labels.cpu())
            ids += batch.ids
    if not features:
        raise RadioLMError(f"{run.run_dir}: task {task} has no {split} studies")
    h, y = torch.cat(features)[:limit], torch.cat(labels)[:limit]
    if (y == -1).all():
        raise RadioLMError(
            f"{run.run_dir}: task {task}'s {split} studies have no labels (labels.csv); Fig. 2 colours by disease"
        )
    single = model.centres.single_label(y == 1)
    return {
        "features": h,
        "ids": ids[: len(h)],
        "groups": disease_groups(y, single),
        "checkpoint": str(loaded.checkpoint),
        "contrastive": model.contrastive,
    }


def plot(panels: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    """One scatter per run, the same colour per disease in every panel, one legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(
        {g for panel in panels.values() for g in panel["groups"]}, key=lambda g: (g in (SEVERAL, UNLABELLED), g)
    )
    cmap = plt.get_cmap("tab20")
    colours = {g: ("0.6" if g == SEVERAL else "0.85" if g == UNLABELLED else cmap(i % 20)) for i, g in enumerate(names)}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 2.2, 4.2), squeeze=False)
    for ax, (name, panel) in zip(axes[0], panels.items(), strict=True):
        xy = panel["xy"]
        for g in names:
            idx = [i for i, group in enumerate(panel["groups"]) if group == g]
            if idx:
                ax.scatter(xy[idx, 0], xy[idx, 1], s=9, color=colours[g], label=g, alpha=0.85, linewidths=0)
        ax.set_title(f"{name}\nseparation {panel['class_separation']:.3f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=colours[g], label=g) for g in names]
    fig.legend(handles=handles, loc="center right", fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1 - 2.0 / (4.2 * len(panels) + 2.2), 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"radiolm analyze {NAME}", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, metavar="[NAME=]DIR", help="a continual run folder")
    parser.add_argument("--task", default=None, help="the task whose studies are shown (default: the first)")
    parser.add_argument(
        "--stage", type=int, default=None, help="1-based stage whose weights (default: each run's last)"
    )
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--limit", type=int, default=None, help="at most this many studies (default: all)")
    parser.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity (lowered for few studies)")
    parser.add_argument("--seed", type=int, default=0, help="t-SNE seed")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the first run folder)")
    args = parser.parse_args(argv)
    runs = []
    for value in args.run:
        name, folder = parse_named_run(value)
        runs.append((name, read_continual_run(folder)))
    task = args.task or runs[0][1].tasks[0]
    panels: dict[str, dict[str, Any]] = {}
    backends = set()
    for name, run in runs:
        stage = run.stage(args.stage)
        found = hidden_features(run, stage, task, args.split, args.limit)
        if len(found["features"]) < 3:
            raise RadioLMError(f"{run.run_dir}: {len(found['features'])} {args.split} studies of {task}; t-SNE needs 3")
        name = name or ("with L^SC" if found["contrastive"] else "without L^SC")
        if name in panels:
            raise RadioLMError(
                f"--run names repeat ({name!r}); name them: --run 'with L^SC=DIR' --run 'without L^SC=DIR'"
            )
        xy, backend = tsne(found["features"], args.perplexity, args.seed)
        backends.add(backend)
        panels[name] = {
            "run": str(run.run_dir),
            "stage": stage,
            "checkpoint": found["checkpoint"],
            "contrastive": found["contrastive"],
            "n_studies": len(xy),
            "class_separation": class_separation(found["features"], found["groups"]),
            "groups": found["groups"],
            "ids": found["ids"],
            "xy": xy,
        }
    out: Path = args.out or runs[0][1].run_dir
    out.mkdir(parents=True, exist_ok=True)
    title = f"h^p of task {task} ({args.split}) by disease; t-SNE ({', '.join(sorted(backends))})"
    plot(panels, out / f"{NAME}.png", title)
    summary: dict[str, Any] = {
        "task": task,
        "split": args.split,
        "tsne": sorted(backends),
        "perplexity": args.perplexity,
        "class_separation_note": "not in the paper: mean cosine of h^p within a single label minus between labels",
        "runs": {},
    }
    for name, panel in panels.items():
        counts: dict[str, int] = {}
        for g in panel["groups"]:
            counts[g] = counts.get(g, 0) + 1
        points = [
            {"id": i, "group": g, "x": round(float(x), 4), "y": round(float(y), 4)}
            for i, g, (x, y) in zip(panel["ids"], panel["groups"], panel["xy"].tolist(), strict=True)
        ]
        summary["runs"][name] = {k: panel[k] for k in ("run", "stage", "checkpoint", "contrastive", "n_studies")}
        summary["runs"][name] |= {"class_separation": panel["class_separation"], "groups": counts, "points": points}
    (out / f"{NAME}.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    log_analysis(NAME, runs[0][1].run_dir, out / f"{NAME}.png", out / f"{NAME}.json")
    separations = ", ".join(f"{n}: {p['class_separation']:.3f}" for n, p in panels.items())
    print(
        f"{NAME}: task {task}, {sorted(backends)} t-SNE; class separation {separations}; wrote {out / NAME}.png, .json"
    )
