"""Two CPU processes (gloo, ``ddp_spawn``): validation and test score each study id exactly once although the
DistributedSampler pads the last batch (3 validation and 5 test studies over 2 ranks: one study is seen twice)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback

from radiolm.batch import ReportBatch
from radiolm.data.datamodules.r2gen import R2GenDataModule
from radiolm.data.transforms import ImageTransformConfig

from .test_checkpoints import build

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")


class RecordSeenIds(Callback):
    """Writes ``seen-<stage>-rank<r>.json``: the ids each rank generated for, padding included."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.seen = folder, {"val": [], "test": []}

    def _add(self, stage: str, batch: ReportBatch, trainer: pl.Trainer) -> None:
        self.seen[stage] += batch.ids
        (self.folder / f"seen-{stage}-rank{trainer.global_rank}.json").write_text(json.dumps(self.seen[stage]))

    def on_validation_batch_end(self, trainer: pl.Trainer, module: Any, outputs: Any, batch: Any, *args: Any) -> None:
        self._add("val", batch, trainer)

    def on_test_batch_end(self, trainer: pl.Trainer, module: Any, outputs: Any, batch: Any, *args: Any) -> None:
        self._add("test", batch, trainer)


def test_each_id_is_scored_once_over_two_processes(tmp_path: Path, tiny_llm: Path, phantom_root: Path) -> None:
    annotation = json.loads((phantom_root / "annotation.json").read_text())
    annotation["val"] = annotation["val"] + annotation["train"][:1]  # 3 validation studies, 5 test studies
    assert (len(annotation["val"]), len(annotation["test"])) == (3, 5)
    (tmp_path / "annotation.json").write_text(json.dumps(annotation))
    data = R2GenDataModule(
        str(tmp_path / "annotation.json"),
        image_root=str(phantom_root / "images"),
        labels_path=str(phantom_root / "labels.csv"),
        batch_size=2,
        num_workers=0,
        image_transform=ImageTransformConfig(64),
    )
    model = build(tiny_llm, seed=0)
    model.metric_families = ["ce"]  # no METEOR JVM: this test is about which ids are scored
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        callbacks=[RecordSeenIds(tmp_path)],
    )
    trainer.validate(model, datamodule=data)
    trainer.test(model, datamodule=data)

    for stage, split in (("val", "val"), ("test", "test")):
        expected = {entry["id"] for entry in annotation[split]}
        seen = [i for rank in (0, 1) for i in json.loads((tmp_path / f"seen-{stage}-rank{rank}.json").read_text())]
        assert len(seen) == len(expected) + 1 and set(seen) == expected  # the sampler padded: one id twice
        (predictions,) = tmp_path.rglob(f"predictions-{stage}-*.jsonl")
        ids = [json.loads(line)["id"] for line in predictions.read_text().splitlines()]
        assert sorted(ids) == sorted(expected)  # each id once
        (metrics,) = tmp_path.rglob(f"metrics-{stage}-*.json")
        assert json.loads(metrics.read_text())["n"] == len(expected)
