"""EncoderUnfreeze (two-stage fine-tuning, Lu et al. §3) on a tiny TwoStageFinetune trained by a real Trainer.

Pinned: which parameters get gradients in stage 1 and stage 2; the encoder is in the optimizer from the start and
no parameter group is added; stage 1 changes neither its weights (no Adam / weight-decay step) nor its BatchNorm
statistics; a checkpoint saved mid stage 1 holds the encoder and, resumed, continues into stage 2 at epoch 1.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from radiolm.batch import ReportBatch
from radiolm.callbacks import EncoderUnfreeze
from radiolm.methods.two_stage import TwoStageFinetune
from radiolm.parts.language_model import LanguageModel
from radiolm.parts.mappers import QueryMapper
from radiolm.parts.vision import VisionEncoder

from .conftest import CORPUS

BATCHES = 3  # training batches per epoch


def tiny_model(tiny_llm: Path, weight_decay: float = 0.1) -> TwoStageFinetune:
    torch.manual_seed(0)
    encoder = VisionEncoder("test_resnet", backend="timm", pretrained=False, trainable="full", image_size=64)
    llm = LanguageModel(str(tiny_llm), trainable="lora", lora_rank=4, lora_target_modules=["q_proj", "v_proj"])
    return TwoStageFinetune(
        vision_encoder=encoder,
        language_model=llm,
        visual_mapper=partial(QueryMapper, num_queries=3, heads=4),
        optimizer=partial(torch.optim.AdamW, lr=1e-2, weight_decay=weight_decay),
    )


def loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    batches = [
        ReportBatch(
            ids=[f"s{i}a", f"s{i}b"],
            reports=[CORPUS[i], CORPUS[i + 1]],
            labels=torch.zeros(2, 14, dtype=torch.long),
            images=torch.randn(2, 1, 3, 64, 64, generator=g),
            view_mask=torch.ones(2, 1, dtype=torch.bool),
        )
        for i in range(BATCHES)
    ]
    return DataLoader(batches, batch_size=None, collate_fn=lambda b: b)  # type: ignore[arg-type]


class Probe(pl.Callback):
    """Records, at every optimizer step, which parameter groups have gradients and the encoder's mode."""

    def __init__(self, save_at: tuple[int, int] | None = None, path: Path | None = None) -> None:
        self.steps: list[dict[str, Any]] = []
        self.save_at, self.path = save_at, path

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: Any, optimizer: Any) -> None:
        def has_grad(prefix: str) -> bool:
            return any(p.grad is not None for n, p in pl_module.named_parameters() if n.startswith(prefix))

        lora = [p for n, p in pl_module.named_parameters() if "lora_" in n]
        frozen_llm = [p for n, p in pl_module.named_parameters() if n.startswith("language_model") and "lora_" not in n]
        optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
        self.steps.append(
            {
                "epoch": trainer.current_epoch,
                "encoder_grad": has_grad("vision_encoder."),
                "mapper_grad": has_grad("visual_mapper."),
                "lora_grad": all(p.grad is not None for p in lora),
                "llm_grad": any(p.grad is not None for p in frozen_llm),
                "encoder_training": pl_module.vision_encoder.training,
                "encoder_in_optimizer": all(id(p) in optimized for p in pl_module.vision_encoder.parameters()),
                "groups": len(optimizer.param_groups),
            }
        )

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, idx: int) -> None:
        if self.save_at == (trainer.current_epoch, idx) and self.path is not None:
            trainer.save_checkpoint(self.path)


def trainer(tmp_path: Path, callbacks: list[pl.Callback], max_epochs: int) -> pl.Trainer:
    return pl.Trainer(
        default_root_dir=tmp_path,
        accelerator="cpu",
        max_epochs=max_epochs,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )


def encoder_state(model: TwoStageFinetune) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.vision_encoder.state_dict().items()}


def test_stage_one_then_two(tmp_path: Path, tiny_llm: Path) -> None:
    model = tiny_model(tiny_llm)
    probe, unfreeze = Probe(), EncoderUnfreeze(freeze_epochs=1)
    before: dict[str, torch.Tensor] = {}

    class AfterStageOne(pl.Callback):
        def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
            if trainer.current_epoch == 0:
                before.update(encoder_state(model))
                state = trainer.optimizers[0].state
                before["adam_states_encoder"] = torch.tensor(
                    sum(1 for p in model.vision_encoder.parameters() if p in state)
                )

    initial = encoder_state(model)
    trainer(tmp_path, [unfreeze, probe, AfterStageOne()], max_epochs=2).fit(model, loader())

    stage1 = [s for s in probe.steps if s["epoch"] == 0]
    stage2 = [s for s in probe.steps if s["epoch"] == 1]
    assert len(stage1) == len(stage2) == BATCHES
    for s in stage1:  # encoder: no gradients, eval mode; mapper and LoRA train (§3: LoRA tuned in both stages)
        assert (s["encoder_grad"], s["mapper_grad"], s["lora_grad"], s["llm_grad"]) == (False, True, True, False)
        assert s["encoder_training"] is False
    for s in stage2:
        assert (s["encoder_grad"], s["mapper_grad"], s["lora_grad"], s["llm_grad"]) == (True, True, True, False)
        assert s["encoder_training"] is True
    assert all(s["encoder_in_optimizer"] and s["groups"] == 1 for s in probe.steps)
    # stage 1 left the encoder untouched: weights (AdamW skips grad-None params: no weight decay either),
    # BatchNorm running statistics, and no Adam state
    assert int(before.pop("adam_states_encoder")) == 0
    assert all(torch.equal(initial[k], before[k]) for k in initial)
    after = encoder_state(model)
    first_conv = next(k for k in initial if k.endswith("conv1.weight"))
    assert not torch.equal(initial[first_conv], after[first_conv])  # stage 2 trains it
    assert unfreeze.unfrozen_at_epoch == 1
    assert all(p.requires_grad for p in model.vision_encoder.parameters())  # restored at fit end


def test_one_stage_trains_encoder_from_the_start(tmp_path: Path, tiny_llm: Path) -> None:
    model = tiny_model(tiny_llm)
    probe = Probe()
    trainer(tmp_path, [EncoderUnfreeze(freeze_epochs=0), probe], max_epochs=1).fit(model, loader())
    assert [s["encoder_grad"] for s in probe.steps] == [True] * BATCHES
    assert all(s["encoder_training"] for s in probe.steps)


def test_resume_mid_stage_one_continues_into_stage_two(tmp_path: Path, tiny_llm: Path) -> None:
    ckpt = tmp_path / "mid-stage1.ckpt"
    first = Probe(save_at=(0, 0), path=tmp_path / "mid-stage1.ckpt")
    trainer(tmp_path, [EncoderUnfreeze(freeze_epochs=1), first], max_epochs=1).fit(tiny_model(tiny_llm), loader())
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert saved["callbacks"]["EncoderUnfreeze"] == {"freeze_epochs": 1, "unfrozen_at_epoch": None}
    # trainable-only checkpoints still hold the encoder while its gradients are off
    assert any(k.startswith("vision_encoder.") for k in saved["state_dict"])
    assert saved["epoch"] == 0 and saved["global_step"] == 1

    # resumed with another freeze_epochs in the config: the checkpoint's schedule (1 epoch) wins
    unfreeze, second = EncoderUnfreeze(freeze_epochs=3), Probe()
    resumed = trainer(tmp_path, [unfreeze, second], max_epochs=2)
    resumed.fit(tiny_model(tiny_llm), loader(), ckpt_path=ckpt)
    epochs = [(s["epoch"], s["encoder_grad"], s["encoder_training"]) for s in second.steps]
    assert epochs[-BATCHES:] == [(1, True, True)] * BATCHES  # stage 2 from epoch 1
    assert all(e == (0, False, False) for e in epochs[:-BATCHES])  # the rest of epoch 0 stays in stage 1
    assert len(epochs) == 2 * BATCHES - 1  # epoch 0 resumes after its first step
    assert unfreeze.freeze_epochs == 1 and unfreeze.unfrozen_at_epoch == 1


def test_bad_settings(tiny_llm: Path) -> None:
    with pytest.raises(ValueError, match="freeze_epochs must be >= 0"):
        EncoderUnfreeze(freeze_epochs=-1)
    model = tiny_model(tiny_llm)
    with pytest.raises(ValueError, match="no submodule 'encoder'"):
        EncoderUnfreeze(module="encoder").setup(None, model, "fit")  # type: ignore[arg-type]
    model.vision_encoder.requires_grad_(False)
    with pytest.raises(ValueError, match="has no trainable parameters"):
        EncoderUnfreeze().setup(None, model, "fit")  # type: ignore[arg-type]


def test_a_frozen_encoder_stays_in_eval_mode_while_the_trainer_fits(tmp_path: Path, tiny_llm: Path) -> None:
    """Lightning does not call train() when fitting starts; the module does (on_train_start), so a frozen
    ResNet's BatchNorm statistics stay fixed (they drifted before, and with them a frozen domain's outputs)."""
    model = tiny_model(tiny_llm)
    model.vision_encoder = VisionEncoder(
        "test_resnet", backend="timm", pretrained=False, trainable="frozen", image_size=64
    )
    before = encoder_state(model)
    trainer(tmp_path, [], max_epochs=1).fit(model, train_dataloaders=loader())
    assert not model.vision_encoder.model.training and model.language_model.training
    for name, value in model.vision_encoder.state_dict().items():
        torch.testing.assert_close(value, before[name], msg=name)  # running_mean / var / num_batches_tracked too
