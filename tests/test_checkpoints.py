"""Checkpoints hold trainable weights only, load into a fresh module, and resume training."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from radiolm.data.datamodules.r2gen import R2GenDataModule
from radiolm.methods.r2gengpt import R2GenGPT
from radiolm.parts.generation import DecodingConfig
from radiolm.parts.language_model import LanguageModel
from radiolm.parts.vision import VisionEncoder


def build(tiny_llm: Path, seed: int) -> R2GenGPT:
    torch.manual_seed(seed)
    encoder = VisionEncoder("test_vit", backend="timm", pretrained=False, trainable="full", image_size=64)
    return R2GenGPT(
        vision_encoder=encoder,
        language_model=LanguageModel(str(tiny_llm)),
        decoding=DecodingConfig(num_beams=1, min_new_tokens=1, max_new_tokens=4),
        metrics=["nlg"],
    )


def trainer(root: Path, max_steps: int) -> pl.Trainer:
    return pl.Trainer(
        max_steps=max_steps,
        limit_val_batches=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        callbacks=[ModelCheckpoint(dirpath=root, save_last=True, every_n_train_steps=1)],
    )


@pytest.fixture()
def data(phantom_root: Path) -> R2GenDataModule:
    from radiolm.data.transforms import ImageTransformConfig

    return R2GenDataModule(
        str(phantom_root / "annotation.json"), batch_size=4, num_workers=0, image_transform=ImageTransformConfig(64)
    )


def test_checkpoint_holds_only_trainable_weights(tmp_path: Path, tiny_llm: Path, data: R2GenDataModule) -> None:
    model = build(tiny_llm, seed=0)
    trainer(tmp_path, max_steps=2).fit(model, datamodule=data)
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=True, map_location="cpu")
    keys = set(checkpoint["state_dict"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable <= keys
    assert not any(k.startswith("language_model.") for k in keys)  # the frozen LLM is never written
    assert checkpoint["radiolm_trainable_only"] and checkpoint["optimizer_states"]

    fresh = build(tiny_llm, seed=1)  # other random init of the trainable parts, same frozen LLM source
    fresh.on_load_checkpoint(checkpoint)
    fresh.load_state_dict(checkpoint["state_dict"], strict=True)
    for (name, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_fit_resumes_from_checkpoint(tmp_path: Path, tiny_llm: Path, data: R2GenDataModule) -> None:
    first = trainer(tmp_path, max_steps=2)
    first.fit(build(tiny_llm, seed=0), datamodule=data)
    resumed_model = build(tiny_llm, seed=5)
    second = trainer(tmp_path / "resumed", max_steps=4)
    second.fit(resumed_model, datamodule=data, ckpt_path=str(tmp_path / "last.ckpt"))
    assert second.global_step == 4
    scheduler = second.lr_scheduler_configs[0].scheduler
    assert scheduler.last_epoch == 4  # schedule state continued from step 2, not restarted


def test_cli_test_and_predict_load_a_trainable_only_checkpoint(tiny_workdir: Path) -> None:
    """`lightning test/predict --ckpt_path` rebuild the module from the YAML and load the trainable weights."""
    from radiolm.cli import main

    from .conftest import CONF, REPO

    experiment = REPO / "experiments" / "demo.yaml"
    overrides = ["-c", str(CONF / "demo.yaml"), "--trainer.fast_dev_run=false", "--trainer.max_steps=2"]
    overrides += ["--trainer.logger=false", "--trainer.default_root_dir=run"]
    workdir = tiny_workdir
    main(["fit", "-c", str(experiment), *overrides, "--test_after_fit=false"])
    checkpoint = next((workdir / "run").rglob("last.ckpt"))
    state = torch.load(checkpoint, weights_only=True, map_location="cpu")["state_dict"]
    assert state and not any(k.startswith("language_model.") for k in state)
    for command in ("test", "predict"):
        main([command, "-c", str(experiment), *overrides, f"--ckpt_path={checkpoint}"])
    assert list((workdir / "run").glob("predictions-test-*.jsonl"))
    predicted = (next((workdir / "run").glob("predictions-predict-*.jsonl"))).read_text().splitlines()
    annotation = json.loads((workdir / "data" / "phantom-cxr" / "annotation.json").read_text())
    assert len(predicted) == len(annotation["test"])
