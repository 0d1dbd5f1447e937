"""Per-part learning rates (``schedule.lr_scale``): each named part trains at its multiple of the optimizer's rate,
through warm-up and decay, in the real Trainer; a key that names nothing trainable is an error naming the key."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from radiolm.continual.sequence import stage_lr
from radiolm.methods.optim import LRSchedule

from .test_encoder_unfreeze import loader, tiny_model


def lrs_by_part(model: pl.LightningModule, optimizer: torch.optim.Optimizer) -> dict[str, float]:
    part = {id(p): n.split(".", 1)[0] for n, p in model.named_parameters()}
    out: dict[str, float] = {}
    for group in optimizer.param_groups:
        for name in {part[id(p)] for p in group["params"]}:
            out[name] = group["lr"]
    return out


class RecordLR(pl.Callback):
    def __init__(self) -> None:
        self.seen: list[dict[str, float]] = []

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:  # type: ignore[no-untyped-def]
        self.seen.append(lrs_by_part(pl_module, optimizer))


def test_each_part_trains_at_its_multiple_of_the_rate(tmp_path: Path, tiny_llm: Path) -> None:
    model = tiny_model(tiny_llm)  # AdamW lr 1e-2
    model.schedule = LRSchedule(name="cosine", warmup_steps=2, lr_scale={"language_model": 0.01, "vision_encoder": 0.5})
    record = RecordLR()
    trainer = pl.Trainer(
        max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[record], default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, train_dataloaders=loader())
    assert len(record.seen) == 6
    for seen in record.seen:
        assert seen["language_model"] == pytest.approx(0.01 * seen["visual_mapper"])
        assert seen["vision_encoder"] == pytest.approx(0.5 * seen["visual_mapper"])
    # the schedule moves every group alike: warm-up 1/2 of 1e-2 at the first step
    assert record.seen[0]["visual_mapper"] == pytest.approx(0.5e-2)
    assert record.seen[0]["language_model"] == pytest.approx(0.5e-4)


def test_a_continual_stage_lr_keeps_the_ratios(tiny_llm: Path) -> None:
    model = tiny_model(tiny_llm)
    model.schedule = LRSchedule(lr_scale={"language_model": 0.1})
    model.trainer = pl.Trainer(max_steps=10, logger=False, enable_progress_bar=False)
    with stage_lr(model, 3e-4):
        optimizer = model.configure_optimizers()["optimizer"]
    lrs = lrs_by_part(model, optimizer)
    assert lrs["visual_mapper"] == pytest.approx(3e-4)
    assert lrs["language_model"] == pytest.approx(3e-5)


@pytest.mark.parametrize(
    ("scale", "message"),
    [
        ({"vison_encoder": 0.1}, r"schedule\.lr_scale\.vison_encoder: no trainable parameter.*vision_encoder"),
        ({"language_model": 0.0}, r"schedule\.lr_scale\.language_model: 0\.0 must be > 0"),
    ],
)
def test_a_bad_key_or_value_is_named(tiny_llm: Path, scale: dict[str, float], message: str) -> None:
    model = tiny_model(tiny_llm)
    model.schedule = LRSchedule(lr_scale=scale)
    model.trainer = pl.Trainer(max_steps=10, logger=False, enable_progress_bar=False)
    with pytest.raises(ValueError, match=message):
        model.configure_optimizers()
