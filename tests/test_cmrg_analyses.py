"""CMRG-LLM's analyses (``../shared/papers/cmrg_llm_continual.md`` Fig. 2, Fig. 3): ``radiolm analyze hidden-tsne``
and ``radiolm analyze continual-cases`` through the real CLI on hand-made run folders, the exact t-SNE, and ``h^p``
as the loss sees it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from radiolm.analysis.hidden_tsne import SEVERAL, UNLABELLED, class_separation, disease_groups
from radiolm.analysis.tsne import exact_tsne, tsne
from radiolm.cli import main as cli
from radiolm.continual.sequence import STATE_FILE
from radiolm.methods.cmrg_llm import CMRGLLM

from .test_cmrg_llm import make_batch, make_model


# -- t-SNE -------------------------------------------------------------------------------------------------------
def test_exact_tsne_keeps_clusters_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    centres = torch.zeros(3, 16)
    centres[0, 0], centres[1, 1], centres[2, 2] = 10.0, 10.0, 10.0
    points = torch.cat([c + torch.randn(15, 16) for c in centres])
    groups = torch.arange(3).repeat_interleave(15)
    xy = exact_tsne(points, perplexity=5, iterations=200)
    assert xy.shape == (45, 2) and torch.isfinite(xy).all()
    distances = torch.cdist(xy, xy).fill_diagonal_(float("inf"))
    assert (groups[distances.argmin(1)] == groups).all()  # every point's nearest neighbour is of its cluster
    torch.testing.assert_close(exact_tsne(points, 5, 200), xy)  # seeded
    monkeypatch.setitem(sys.modules, "sklearn", None)  # not installed: the suite's exact t-SNE
    assert tsne(points[:10], perplexity=30, iterations=20)[1] == "torch-exact"


# -- colour groups and separation, by hand ---------------------------------------------------------------------------
def test_disease_groups_and_class_separation_by_hand() -> None:
    labels = torch.full((4, 14), 0)
    labels[0, 1] = 1  # Cardiomegaly
    labels[1, 1] = labels[1, 12] = 1  # Cardiomegaly + Support Devices (ignored): still Cardiomegaly
    labels[2, 1] = labels[2, 5] = 1  # Cardiomegaly + Edema
    labels[3] = -1
    model_single = torch.tensor([1, 1, -1, -1])
    assert disease_groups(labels, model_single) == ["Cardiomegaly", "Cardiomegaly", SEVERAL, UNLABELLED]
    features = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [5.0, 5.0]])
    groups = ["Cardiomegaly", "Cardiomegaly", "Edema", SEVERAL]
    # within: cos(f0, f1) = 1/sqrt2; between: cos(f0, f2) = 0, cos(f1, f2) = 1/sqrt2 -> mean 1/(2 sqrt2)
    assert class_separation(features, groups) == pytest.approx(1 / 2**0.5 - 1 / (2 * 2**0.5))
    assert class_separation(features[:2], groups[:2]) != class_separation(features[:2], groups[:2])  # NaN


def test_prompt_features_are_the_features_of_the_loss(
    tiny_llm: Path, tiny_swin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``prompt_features`` (Fig. 2's h^p) is what L^SC is computed on in training."""
    model = make_model(tiny_llm, tiny_swin)
    batch = make_batch()
    seen: list[torch.Tensor] = []
    original = CMRGLLM.supcon
    monkeypatch.setattr(CMRGLLM, "supcon", lambda self, f, p, d: (seen.append(f.detach()), original(self, f, p, d))[1])
    model.eval()  # no dropout: the same pass twice
    model.compute_losses(batch)
    features = model.prompt_features(batch)
    assert features.shape == (4, model.hidden_projection.out_features)
    torch.testing.assert_close(features, seen[0])
    model.use_domain("XE2")  # another domain's parameters: another h^p
    assert not torch.allclose(model.prompt_features(batch), features)


# -- hidden-tsne -------------------------------------------------------------------------------------------------
def continual_config(contrastive: bool) -> dict[str, Any]:
    """A CMRG-LLM continual run's config.yaml (the keys that ``fit`` writes and the analysis reads), tiny models."""
    phantom = {"n": 10, "views": 1, "image_size": 64, "report_key": "impression", "batch_size": 2, "num_workers": 0}
    return {
        "model": {
            "class_path": "radiolm.methods.CMRGLLM",
            "init_args": {
                "vision_encoder": {
                    "class_path": "radiolm.parts.VisionEncoder",
                    "init_args": {"name": "models/tiny-swin", "backend": "hf", "pretrained": False},
                },
                "language_model": {
                    "class_path": "radiolm.parts.LanguageModel",
                    "init_args": {"name_or_path": "models/tiny-llm", "dtype": "float32"},
                },
                "domains": [{"name": "XE1"}, {"name": "XC"}],
                "num_queries": 4,
                "attention_heads": 2,
                "hidden_dim": 16,
                "contrastive": contrastive,
            },
        },
        "data": {
            "class_path": "radiolm.data.ContinualDataModule",
            "init_args": {
                "tasks": [
                    {"name": "XE1", "data": {"class_path": "radiolm.data.R2GenDataModule",
                                             "init_args": {"annotation_path": "data/iu_xray/annotation.json",
                                                           "max_views": 1, "batch_size": 2, "num_workers": 0}}},
                    {"name": "XC", "data": {"class_path": "radiolm.data.PhantomCXRDataModule",
                                            "init_args": {"root": "data/phantom-xc", "seed": 3, "language": "zh",
                                                          **phantom}}},
                ]
            },
        },
    }  # fmt: skip


def write_run(folder: Path, contrastive: bool, shift: float) -> Path:
    """A continual run folder after stage 1: config.yaml, the stage's checkpoint, continual-state.json."""
    from jsonargparse import ArgumentParser

    from radiolm.methods.base import ReportGenerationModule

    folder.mkdir(parents=True)
    config = continual_config(contrastive)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(ReportGenerationModule, "model", required=True)
    torch.manual_seed(0)
    model = parser.instantiate_classes(parser.parse_object({"model": config["model"]})).model
    with torch.no_grad():
        model.prompts["XE1"].queries.add_(shift)
    checkpoint: dict[str, Any] = {"state_dict": model.state_dict()}
    model.on_save_checkpoint(checkpoint)
    path = folder / "stage-1-XE1" / "checkpoints" / "best.ckpt"
    path.parent.mkdir(parents=True)
    torch.save(checkpoint, path)
    (folder / STATE_FILE).write_text(json.dumps({"tasks": ["XE1", "XC"], "checkpoints": [str(path)]}))
    return folder


def test_hidden_tsne_command(tiny_workdir: Path, capsys: pytest.CaptureFixture) -> None:
    with_sc = write_run(tiny_workdir / "runs" / "sc", True, 0.0)
    without = write_run(tiny_workdir / "runs" / "nosc", False, 0.5)
    cli(["analyze", "hidden-tsne", "--run", str(with_sc), "--run", str(without)])
    assert "hidden-tsne: task XE1" in capsys.readouterr().out
    summary = json.loads((with_sc / "hidden-tsne.json").read_text())
    assert summary["task"] == "XE1" and summary["tsne"] == ["torch-exact"]  # scikit-learn is not installed here
    assert list(summary["runs"]) == ["with L^SC", "without L^SC"]  # named from each run's config
    a, b = summary["runs"]["with L^SC"], summary["runs"]["without L^SC"]
    assert a["stage"] == 1 and a["contrastive"] is True and b["contrastive"] is False
    assert a["n_studies"] == b["n_studies"] == len(a["points"]) > 3
    assert sum(a["groups"].values()) == a["n_studies"] and UNLABELLED not in a["groups"]  # the phantom has labels
    assert [p["id"] for p in a["points"]] == [p["id"] for p in b["points"]]
    assert [p["x"] for p in a["points"]] != [p["x"] for p in b["points"]]  # each run's own weights
    assert (with_sc / "hidden-tsne.png").stat().st_size > 0
    # a task the run has not trained yet is refused, naming what it has seen
    with pytest.raises(SystemExit) as stop:
        cli(["analyze", "hidden-tsne", "--run", str(with_sc), "--task", "XC"])
    assert stop.value.code == 2 and "has seen only ['XE1']" in capsys.readouterr().err


# -- continual-cases ---------------------------------------------------------------------------------------------
def write_predictions(run: Path, stage: int, task: int, name: str, records: list[dict[str, Any]]) -> None:
    tasks = ["XE1", "XC"]
    folder = run / f"stage-{stage}-{tasks[stage - 1]}" / f"test-{task}-{tasks[task - 1]}"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({**r, "prediction": f"{name}: {r['prediction']}"}, ensure_ascii=False) for r in records]
    (folder / "predictions-test-0.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def cases_run(folder: Path, name: str, stages: int = 2) -> Path:
    xe1 = [{"id": i, "reference": f"impression : ref {i} .", "prediction": f"gen {i}", "language": "en"}
           for i in ("s2", "s1", "s3")]  # fmt: skip
    xc = [{"id": i, "reference": f"影像学印象：心影增大{i}。", "prediction": f"双肺纹理清晰{i}", "language": "zh"}
          for i in ("c1", "c2")]  # fmt: skip
    for stage in range(1, stages + 1):
        write_predictions(folder, stage, 1, name, xe1)
        if stage == 2:
            write_predictions(folder, stage, 2, name, xc)
    checkpoints = [f"{folder}/stage-{t}/checkpoints/best.ckpt" for t in range(1, stages + 1)]
    (folder / STATE_FILE).write_text(json.dumps({"tasks": ["XE1", "XC"], "checkpoints": checkpoints}))
    return folder


def test_continual_cases_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ours, seqft = cases_run(tmp_path / "cmrg", "ours"), cases_run(tmp_path / "seqft", "seqft")
    cli(["analyze", "continual-cases", "--run", f"CMRG-LLM={ours}", "--run", f"SeqFT={seqft}"])
    summary = json.loads((ours / "continual-cases.json").read_text(encoding="utf-8"))
    assert summary["stage"] == 2 and [c["task"] for c in summary["cases"]] == ["XE1", "XC"]
    xe1, xc = summary["cases"]
    assert (xe1["id"], xc["id"]) == ("s1", "c1")  # the first id in sorted order, not chosen by score
    assert xe1["predictions"] == {"CMRG-LLM": "ours: gen s1", "SeqFT": "seqft: gen s1"}
    assert xc["reference"] == "影像学印象：心影增大c1。" and xc["language"] == "zh"
    markdown = (ours / "continual-cases.md").read_text(encoding="utf-8")
    assert "| Reference | CMRG-LLM | SeqFT |" in markdown
    assert "| 影像学印象：心影增大c1。 | ours: 双肺纹理清晰c1 | seqft: 双肺纹理清晰c1 |" in markdown
    assert (ours / "continual-cases.png").stat().st_size > 0
    # --case picks the study; --stage 1 shows the first task only
    cli(["analyze", "continual-cases", "--run", f"A={ours}", "--run", f"B={seqft}", "--case", "XE1=s3",
         "--stage", "1", "--out", str(tmp_path / "out")])  # fmt: skip
    cases = json.loads((tmp_path / "out" / "continual-cases.json").read_text())["cases"]
    assert [(c["task"], c["id"]) for c in cases] == [("XE1", "s3")]
    capsys.readouterr()
    # a stage one run has not finished, and a folder that is not a continual run: one line each
    short = cases_run(tmp_path / "short", "short", stages=1)
    for argv, message in [
        (["--run", str(ours), "--run", str(short), "--stage", "2"], "stage 2 is not finished"),
        (["--run", str(tmp_path)], f"{tmp_path / STATE_FILE}: missing"),
    ]:
        with pytest.raises(SystemExit) as stop:
            cli(["analyze", "continual-cases", *argv])
        assert stop.value.code == 2 and message in capsys.readouterr().err
