"""The bidirectional method's frontal / lateral view classifier (radiolm/data/builders/views.py, paper §3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from radiolm.data.builders.views import ViewClassifier, _labels_of, main
from radiolm.errors import DataError


def test_classifier_shape() -> None:
    assert ViewClassifier()(torch.rand(3, 1, 64, 64)).shape == (3, 2)


def test_labels_from_views_or_image_order() -> None:
    assert _labels_of({"id": "a", "image_path": ["0.png", "1.png"], "views": ["lateral", "frontal"]}) == [1, 0]
    assert _labels_of({"id": "b", "image_path": ["0.png", "1.png"]}) == [0, 1]  # R2Gen IU-Xray order
    with pytest.raises(DataError, match="study 'c'"):
        _labels_of({"id": "c", "image_path": ["0.png"], "views": ["oblique"]})


def test_main_trains_on_train_and_caches(phantom_root: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "views.json"
    main(["--annotation", str(phantom_root / "annotation.json"), "--out", str(out), "--epochs", "8"])
    result = json.loads(out.read_text())
    annotation = json.loads((phantom_root / "annotation.json").read_text())
    assert result["n_images"] == {split: 2 * len(annotation[split]) for split in ("train", "val", "test")}
    assert set(result["views"]) == {e["id"] for split in annotation.values() for e in split}
    assert all(len(v) == 2 and set(v) <= {"frontal", "lateral"} for v in result["views"].values())
    # frontal and lateral phantoms differ plainly: 8 epochs on 32 training images separate them
    assert result["accuracy"]["train"] >= 0.9 and result["accuracy"]["test"] >= 0.9
    main(["--annotation", str(phantom_root / "annotation.json"), "--out", str(out), "--epochs", "8"])
    assert "up to date (cached)" in capsys.readouterr().out
