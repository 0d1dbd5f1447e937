"""Dia-LLaMA Fig. 2: per-disease F1 over configurations (radiolm/analysis/per_disease_f1.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from radiolm.analysis.per_disease_f1 import abnormal_ratio, main, per_disease_f1, select_diseases
from radiolm.data.labels import CHEXPERT_14
from radiolm.errors import RadioLMError


def test_abnormal_ratio_and_selection() -> None:
    labels = torch.tensor([[1, 0, 1], [1, -1, 0], [0, 0, 1], [1, 0, 0]])  # ratios 0.75, 0, 0.5
    assert abnormal_ratio(labels).tolist() == [0.75, 0.0, 0.5]
    assert select_diseases(abnormal_ratio(labels), 0.04) == [2, 0]  # ascending by abnormal count
    assert select_diseases(torch.tensor([0.04, 0.05]), 0.04) == [1]  # strictly above 4%


def test_per_disease_f1_hand_made() -> None:
    predicted = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 0]])
    reference = torch.tensor([[1, 1, 0], [0, 1, 0], [0, -1, 0]])
    # disease 0: tp 1, fp 1, fn 0 -> 2/3; disease 1: tp 1, fn 1 -> 2/3; disease 2: nothing -> 0
    torch.testing.assert_close(per_disease_f1(predicted, reference), torch.tensor([2 / 3, 2 / 3, 0.0]))


def _write_run(folder: Path, predictions: list[str]) -> None:
    folder.mkdir(parents=True)
    refs = [[0] * 14 for _ in predictions]
    refs[0][CHEXPERT_14.index("Cardiomegaly")] = 1
    refs[1][CHEXPERT_14.index("Pleural Effusion")] = 1
    with (folder / "predictions-test-0.jsonl").open("w") as f:
        for i, (text, labels) in enumerate(zip(predictions, refs, strict=True)):
            f.write(json.dumps({"id": f"s{i}", "prediction": text, "reference": "", "labels": labels}) + "\n")


def test_main_writes_png_and_json(tmp_path: Path) -> None:
    train = tmp_path / "labels.csv"
    with train.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", *CHEXPERT_14])
        for i in range(10):  # cardiomegaly 3/10, effusion 1/10, edema 0/10
            row = [0] * 14
            row[CHEXPERT_14.index("Cardiomegaly")] = int(i < 3)
            row[CHEXPERT_14.index("Pleural Effusion")] = int(i == 0)
            writer.writerow([f"t{i}", *row])
    _write_run(tmp_path / "full", ["Moderate cardiomegaly.", "Small left pleural effusion.", "The lungs are clear."])
    _write_run(tmp_path / "base", ["The lungs are clear.", "Moderate cardiomegaly.", "The lungs are clear."])
    out = tmp_path / "fig"
    main(
        [
            "--run",
            f"full={tmp_path / 'full'}",
            "--run",
            f"base={tmp_path / 'base'}",
            "--train-labels",
            str(train),
            "--out",
            str(out),
        ]
    )
    result = json.loads((out / "per-disease-f1.json").read_text())
    assert result["diseases"] == ["Pleural Effusion", "Cardiomegaly"]
    assert result["f1"]["full"] == {"Pleural Effusion": 1.0, "Cardiomegaly": 1.0, "Average": 1.0}
    assert result["f1"]["base"] == {"Pleural Effusion": 0.0, "Cardiomegaly": 0.0, "Average": 0.0}
    assert (out / "per-disease-f1.png").stat().st_size > 0
    assert result["abnormal_ratio_train"]["Cardiomegaly"] == 0.3
    with pytest.raises(RadioLMError, match="predictions-test"):
        main(["--run", str(tmp_path / "fig"), "--train-labels", str(train)])
