"""The demo end to end, as README runs it (slow tier: `make test-slow`, about 5 minutes on 2 cores)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from radiolm.cli import main

from .conftest import REPO


@pytest.mark.slow
def test_demo_trains_and_tests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    main(["fit", "-c", str(REPO / "experiments/demo.yaml")])
    run = sorted((tmp_path / "runs" / "demo").glob("version_*"))[-1]
    with (run / "metrics.csv").open() as f:
        losses = [float(row["train/loss"]) for row in csv.DictReader(f) if row.get("train/loss")]
    assert len(losses) >= 10
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.7 * first, f"loss did not fall: {first:.3f} -> {last:.3f}"
    predictions = [json.loads(line) for line in next(run.glob("predictions-test-*.jsonl")).read_text().splitlines()]
    assert len(predictions) == 120 and all(p["prediction"] for p in predictions)
    metrics = json.loads(next(run.glob("metrics-test-*.json")).read_text())
    assert metrics["n"] == 120 and metrics["bleu1"] > 0.1
