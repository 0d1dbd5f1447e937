"""No checkpoint is selected on test studies: a validation split that shares test studies is refused, and a split
without validation studies (Dia-LLaMA's 80/20, §3.1) skips validation; ``validate_on_test`` accepts either knowingly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radiolm.data.datamodules.phantom import PhantomCTDataModule, PhantomCXRDataModule
from radiolm.data.datamodules.r2gen import R2GenDataModule
from radiolm.errors import DataError


def test_a_split_without_validation_studies_is_not_validated_on_test(tmp_path: Path) -> None:
    dm = PhantomCTDataModule(root=str(tmp_path / "ct"), n=12, size=[8, 16, 16], num_workers=0, batch_size=3)
    dm.prepare_data()
    dm.setup("fit")
    assert {s: len(d) for s, d in dm.datasets.items()} == {"train": 10, "val": 0, "test": 2}
    assert len(dm.val_dataloader()) == 0  # Lightning skips validation; fit tests the last weights
    asked = PhantomCTDataModule(root=str(tmp_path / "ct"), n=12, size=[8, 16, 16], num_workers=0, validate_on_test=True)
    asked.setup("fit")
    assert [e["id"] for e in asked.datasets["val"].entries] == [e["id"] for e in asked.datasets["test"].entries]


def test_validation_studies_that_are_test_studies_are_refused(tmp_path: Path) -> None:
    PhantomCXRDataModule(root=str(tmp_path), n=12, num_workers=0).prepare_data()
    annotation = tmp_path / "annotation.json"
    splits = json.loads(annotation.read_text())
    splits["val"].append(splits["test"][0])
    annotation.write_text(json.dumps(splits))
    with pytest.raises(DataError, match=r"annotation\.json: 1 of the 2 validation studies are test studies") as error:
        R2GenDataModule(annotation_path=str(annotation), num_workers=0).setup("fit")
    assert "data.init_args.validate_on_test: true" in str(error.value)
    accepted = R2GenDataModule(annotation_path=str(annotation), num_workers=0, validate_on_test=True)
    accepted.setup("fit")
    assert len(accepted.datasets["val"]) == 2
