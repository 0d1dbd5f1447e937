"""``radiolm analyze`` outputs go to W&B: the active run, else the analysed run folder's offline run (resumed with its
id, after its last step); nothing without a W&B run or with ``WANDB_MODE=disabled``. Read back from the run's files."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
import wandb

from radiolm.analysis import embedding_distance
from radiolm.wandb_run import RUN_FILE, find_wandb_run, log_analysis, record_wandb_run

from .conftest import REPO
from .wandb_records import finished, history_values, records


@pytest.fixture()
def trained_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run folder ``runs/demo/version_0`` whose offline W&B run (in ``runs/wandb``) logged 3 steps."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "runs" / "demo" / "version_0"
    # absolute: the wandb service process, started by an earlier test, has its own working directory
    run = wandb.init(project="radiolm", dir=str(tmp_path / "runs"), mode="offline")
    for step in range(3):
        run.log({"train/loss": 3.0 - step})
    record_wandb_run(run_dir, run, tmp_path / "runs")
    run.finish()
    return run_dir


def fake_distances(monkeypatch: pytest.MonkeyPatch) -> None:
    def run_distances(run_dir: Path, ckpt: str, split: str, limit: int | None):  # type: ignore[no-untyped-def]
        return torch.tensor([1.0, 2.0, 2.5]), {"run": str(run_dir), "studies": 3, "vocab": 10}

    monkeypatch.setattr(embedding_distance, "run_distances", run_distances)


def test_the_record_names_the_offline_run(trained_run: Path) -> None:
    record = find_wandb_run(trained_run)
    assert record is not None
    assert record["mode"] == "offline" and record["project"] == "radiolm" and record["step"] == 3
    assert Path(record["save_dir"]) == (trained_run.parents[2] / "runs").resolve()
    assert Path(record["run_dir"]).name.endswith(record["id"]) and Path(record["run_dir"]).is_dir()


def test_analysis_resumes_the_run_folder_s_offline_run(trained_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_distances(monkeypatch)
    before = set((trained_run.parents[1] / "wandb").glob("offline-run-*"))
    embedding_distance.main(["--run", str(trained_run), "--bins", "4"])
    record = find_wandb_run(trained_run)
    assert record is not None and wandb.run is None  # the resumed run was finished
    (resumed,) = set((trained_run.parents[1] / "wandb").glob("offline-run-*")) - before
    assert f"-{record['id']}" in resumed.name  # same id (a "-1" suffix within the same second): one run on sync
    (row,) = history_values(resumed)
    assert row["analysis/embedding-distance/_type"] == "image-file" and row["_step"] == 4  # after the run's steps
    image = resumed / "files" / row["analysis/embedding-distance/path"]
    assert image.read_bytes() == (trained_run / "embedding-distance.png").read_bytes()
    saved = json.loads((resumed / "files" / "embedding-distance.json").read_text())
    assert saved == json.loads((trained_run / "embedding-distance.json").read_text())
    log = finished(resumed)
    summaries = [r.summary for r in records(log) if r.WhichOneof("record_type") == "summary"]
    keys = {item.key or "/".join(item.nested_key) for s in summaries for item in s.update}
    assert any(k.startswith("analysis/embedding-distance") for k in keys)
    assert record["step"] == 4  # the next analysis logs after this one


def test_analysis_logs_to_the_active_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    fake_distances(monkeypatch)
    run = wandb.init(project="radiolm", dir=str(tmp_path), mode="offline")
    try:
        embedding_distance.main(["--run", str(tmp_path / "no-wandb-here"), "--bins", "4"])
        assert wandb.run is run  # not finished: it is the caller's
        assert "analysis/embedding-distance" in dict(run.summary)
    finally:
        run.finish()
    assert not (tmp_path / "no-wandb-here" / RUN_FILE).exists()


def test_nothing_is_logged_without_a_wandb_run_or_when_disabled(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    png, summary = tmp_path / "x.png", tmp_path / "x.json"
    summary.write_text("{}")
    assert log_analysis("x", tmp_path / "plain-run", png, summary) is None  # no wandb-run.json
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert log_analysis("x", trained_run, png, summary) is None


def test_every_analysis_logs_its_outputs() -> None:
    """Each ``radiolm analyze`` command's ``main`` calls :func:`log_analysis` (the one helper)."""
    for path in sorted((REPO / "radiolm" / "analysis").glob("*.py")):
        tree = ast.parse(path.read_text())
        mains = [f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "main"]
        if not mains:
            continue
        calls = {n.func.id for n in ast.walk(mains[0]) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        assert "log_analysis" in calls, f"{path.name}: main() must log its PNG and JSON with log_analysis"
