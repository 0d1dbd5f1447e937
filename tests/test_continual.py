"""The continual sequence (``radiolm.continual``): the score matrix by hand (layout, ``v_t``, BWT and forgetting), and
the driver on tiny models and phantoms: every seen task tested after each stage, task 1's outputs unchanged by later
CMRG-LLM stages, checkpoints with every non-LLM parameter, and resume at the stage where a run stopped. The
experiments themselves run through the CLI in tests/test_experiments.py (slow tier)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from radiolm.continual.matrix import ScoreMatrix
from radiolm.continual.sequence import STATE_FILE, run_sequence
from radiolm.data.datamodules.continual import ContinualDataModule, ContinualTask
from radiolm.data.datamodules.phantom import PhantomCTDataModule, PhantomCXRDataModule
from radiolm.errors import RadioLMError
from radiolm.methods.cmrg_llm import CMRGLLM

from .test_cmrg_llm import make_model


def test_score_matrix_by_hand(tmp_path: Path) -> None:
    m = ScoreMatrix(["A", "B", "C"])
    m.set(0, 0, {"bleu4": 0.5})
    m.set(0, 1, {"bleu4": 0.3})
    m.set(1, 1, {"bleu4": 0.7})
    assert m.stages_done == 2
    assert m.average("bleu4") == [0.5, 0.5, None]
    assert m.backward_transfer("bleu4") == pytest.approx(-0.2)  # v[A, 2] - v[A, 1]
    assert m.forgetting("bleu4") == pytest.approx(0.2)
    m.set(0, 2, {"bleu4": 0.4})
    m.set(1, 2, {"bleu4": 0.6})
    m.set(2, 2, {"bleu4": 0.9})
    assert m.average("bleu4")[2] == pytest.approx((0.4 + 0.6 + 0.9) / 3)
    assert m.backward_transfer("bleu4") == pytest.approx(((0.4 - 0.5) + (0.6 - 0.7)) / 2)
    assert m.forgetting("bleu4") == pytest.approx(((0.5 - 0.4) + (0.7 - 0.6)) / 2)
    with pytest.raises(ValueError, match="not been seen"):
        m.set(2, 1, {"bleu4": 0.0})
    json_path, md_path, png_path = m.write(tmp_path)
    data = json.loads(json_path.read_text())
    assert data["scores"]["bleu4"] == [[0.5, 0.3, 0.4], [None, 0.7, 0.6], [None, None, 0.9]]  # [s][t]
    assert data["stages_done"] == 3 and "not in the paper" in data
    assert data["not in the paper"]["backward_transfer"]["bleu4"] == pytest.approx(-0.1)
    md = md_path.read_text()
    assert "| task \\ after stage | 1: A | 2: B | 3: C |" in md
    assert "| 2: B |  | 0.7000 | 0.6000 |" in md and "| **v_t** | 0.5000 | 0.5000 | 0.6333 |" in md
    assert "(not in the paper)" in md
    assert png_path.read_bytes()[:4] == b"\x89PNG"
    assert ScoreMatrix.from_json(data).scores == m.scores


# -- the driver on tiny models and phantoms ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cmrg-phantoms")
    for data in tasks_of(root):
        data.data.prepare_data()
    return root


def tasks_of(root: Path) -> list[ContinualTask]:
    common = {"report_key": "impression", "batch_size": 2, "eval_batch_size": 2, "num_workers": 0}
    return [
        ContinualTask("XE1", PhantomCXRDataModule(str(root / "xe1"), n=10, seed=1, views=1, image_size=64, **common)),
        ContinualTask("XE2", PhantomCXRDataModule(str(root / "xe2"), n=10, seed=2, views=2, image_size=64, **common)),
        ContinualTask(
            "CTC",
            PhantomCTDataModule(
                str(root / "ctc"),
                n=10,
                seed=4,
                size=[8, 64, 64],
                volume_size=[4, 64, 64],
                language="zh",
                split="cmrg",
                **common,
            ),
            lr=1e-3,
        ),
    ]


def make_trainer(max_epochs: int, stage_dir: Path) -> pl.Trainer:
    checkpoint = ModelCheckpoint(dirpath=stage_dir / "checkpoints", save_last=True, save_top_k=0)
    return pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=max_epochs, limit_train_batches=2, limit_val_batches=0,
        num_sanity_val_steps=0, logger=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[checkpoint], default_root_dir=stage_dir,
    )  # fmt: skip


def make_tester(folder: Path) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu", devices=1, limit_test_batches=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, default_root_dir=folder,
    )  # fmt: skip


def run(model: CMRGLLM, phantoms: Path, run_dir: Path) -> ScoreMatrix:
    data = ContinualDataModule(tasks_of(phantoms), image_transform=model.image_transform)
    return run_sequence(model, data, run_dir, make_trainer, make_tester)


def predictions(path: Path) -> list[str]:
    return [json.loads(line)["prediction"] for line in path.read_text().splitlines()]


def test_sequence_tests_every_seen_task_and_keeps_task_1(
    tiny_llm: Path, tiny_swin: Path, phantoms: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_model(tiny_llm, tiny_swin, metrics=["ce"])  # CE only: no METEOR JVM per test
    matrix = run(model, phantoms, tmp_path)
    assert matrix.stages_done == 3
    rows = matrix.scores["ce_f1_micro_14"]
    assert [[v is not None for v in row] for row in rows] == [
        [True, True, True],
        [False, True, True],
        [False] * 2 + [True],
    ]
    tests = sorted(p.relative_to(tmp_path).parent.as_posix() for p in tmp_path.rglob("predictions-test-*.jsonl"))
    assert tests == [
        "stage-1-XE1/test-1-XE1", "stage-2-XE2/test-1-XE1", "stage-2-XE2/test-2-XE2",
        "stage-3-CTC/test-1-XE1", "stage-3-CTC/test-2-XE2", "stage-3-CTC/test-3-CTC",
    ]  # fmt: skip
    # task 1 with its own domain's parameters: the same reports after stage 1, 2 and 3 (CMRG-LLM freezes them)
    task1 = [predictions(next((tmp_path / f"stage-{t}" / "test-1-XE1").glob("predictions-test-*.jsonl")))
             for t in ("1-XE1", "2-XE2", "3-CTC")]  # fmt: skip
    assert task1[0] == task1[1] == task1[2]
    assert rows[0][0] == rows[0][1] == rows[0][2]
    # each stage's checkpoint holds every parameter outside the LLM, earlier domains' frozen ones included
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["tasks"] == ["XE1", "XE2", "CTC"] and len(state["checkpoints"]) == 3
    saved = torch.load(state["checkpoints"][1], map_location="cpu", weights_only=True)
    outside = {n for n, _ in model.named_parameters() if not n.startswith("language_model.")}
    assert outside <= set(saved["state_dict"]) and saved["cmrg_stage"] == 1
    assert not any(k.startswith("language_model.") for k in saved["state_dict"])
    assert (tmp_path / "continual-matrix.md").is_file() and (tmp_path / "continual-matrix.png").is_file()

    # resume: the run stopped after stage 1, in the middle of stage 2 (its last.ckpt written, not recorded as done)
    first = json.loads((tmp_path / "continual-matrix.json").read_text())["scores"]["ce_f1_micro_14"]
    (tmp_path / STATE_FILE).write_text(json.dumps({"tasks": state["tasks"], "checkpoints": state["checkpoints"][:1]}))
    shutil.rmtree(tmp_path / "stage-3-CTC")
    stage1_files = {p: p.stat().st_mtime_ns for p in (tmp_path / "stage-1-XE1").rglob("*")}
    fresh = make_model(tiny_llm, tiny_swin, metrics=["ce"])
    with torch.no_grad():  # different weights: the run's must come back from its checkpoints
        for name, param in fresh.named_parameters():
            if not name.startswith("language_model."):
                param.add_(0.5)
    calls: list[tuple[int, bool]] = []
    original = CMRGLLM.set_stage
    monkeypatch.setattr(CMRGLLM, "set_stage", lambda self, t, begins=True: (
        calls.append((t, begins)), original(self, t, begins))[1])  # fmt: skip
    resumed = run(fresh, phantoms, tmp_path)
    assert calls == [(1, False), (2, True)]  # stage 2 resumed from its last.ckpt (centres from it), then stage 3
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "stage-1-XE1").rglob("*")} == stage1_files
    assert resumed.stages_done == 3 and resumed.scores["ce_f1_micro_14"][0][0] == first[0][0]
    stage1 = torch.load(state["checkpoints"][0], map_location="cpu", weights_only=True)["state_dict"]
    torch.testing.assert_close(fresh.prompts["XE1"].queries.detach(), stage1["prompts.prompts.XE1.queries"])


def test_model_domains_must_match_the_tasks(tiny_llm: Path, tiny_swin: Path, tmp_path: Path) -> None:
    model = make_model(tiny_llm, tiny_swin)
    tasks = tasks_of(tmp_path)
    data = ContinualDataModule([tasks[0], tasks[2]])
    with pytest.raises(RadioLMError, match="must list the same names"):
        run_sequence(model, data, tmp_path, make_trainer, make_tester)
    with pytest.raises(RadioLMError, match="repeat"):
        ContinualDataModule([tasks[0], tasks[0]])
