"""``radiolm analyze embedding-distance`` (bidirectional paper Fig. 4): known answers and the PNG + JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from radiolm.analysis import embedding_distance
from radiolm.analysis.embedding_distance import distance_summary, min_token_distances


def test_min_token_distances_known_answer() -> None:
    table = torch.tensor([[0.0, 0.0], [3.0, 4.0]])  # two "tokens"
    visual = torch.tensor([[[0.0, 1.0], [3.0, 5.0], [6.0, 8.0]]])  # [B=1, L=3, D=2]
    # nearest tokens: (0,0) at 1; (3,4) at 1; (3,4) at 5
    assert min_token_distances(visual, table, chunk=1).tolist() == pytest.approx([1.0, 1.0, 5.0])
    with pytest.raises(ValueError, match="width"):
        min_token_distances(torch.zeros(1, 1, 3), table)


def test_distance_summary_histogram() -> None:
    summary = distance_summary(torch.tensor([1.0, 1.0, 5.0, 3.0]), torch.linspace(0, 6, 4))  # bins of width 2
    assert summary["n"] == 4 and summary["mean"] == pytest.approx(2.5)
    assert summary["histogram"]["counts"] == [2, 1, 1]
    assert summary["quantiles"]["p50"] == pytest.approx(2.0)


def test_main_writes_png_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = {"a": torch.tensor([1.0, 2.0, 2.5]), "b": torch.tensor([4.0, 5.0])}

    def run_distances(run_dir: Path, ckpt: str, split: str, limit: int | None):  # type: ignore[no-untyped-def]
        return fake[run_dir.name], {"run": str(run_dir), "studies": len(fake[run_dir.name]), "vocab": 10}

    monkeypatch.setattr(embedding_distance, "run_distances", run_distances)
    argv = ["--run", str(tmp_path / "a"), "--compare", str(tmp_path / "b"), "--labels", "V2T+T2V", "V2T",
            "--out", str(tmp_path / "out"), "--bins", "4"]  # fmt: skip
    embedding_distance.main(argv)
    report = json.loads((tmp_path / "out" / "embedding-distance.json").read_text())
    assert list(report["configurations"]) == ["V2T+T2V", "V2T"]
    assert report["configurations"]["V2T"]["mean"] == pytest.approx(4.5)
    assert sum(report["configurations"]["V2T+T2V"]["histogram"]["counts"]) == 3
    assert (tmp_path / "out" / "embedding-distance.png").stat().st_size > 1000
