"""``radiolm pretrain mae -c EXP.yaml --save DIR``: MAE pre-training of an experiment's image encoder on its training
images (an X-ray experiment's ViT-MAE) or volumes (a CT experiment's 3D ViT).

    radiolm pretrain mae -c experiments/bidirectional_phantom.yaml \
        -c experiments/_base/phantom_mae_from_scratch.yaml --save data/phantom-vit-mae      # make phantom-mae
    radiolm pretrain mae -c experiments/dia_llama_phantom.yaml \
        -c experiments/_base/phantom_mae3d_from_scratch.yaml --epochs 60 \
        --save data/phantom-vit3d-mae                                                     # make phantom-mae3d

The bidirectional paper starts from an MAE-pretrained ViT and its decoder (§4.1: ``facebook/vit-mae-large``). Offline
there are no such weights, and a ViT trained from scratch on the phantom's 420 studies learns its findings slowly:
the encoder probe (``radiolm bench encoder-probe``) stays at the label prior for 630 steps. This command gives the
phantom ViT the paper's starting point the way MAE made it (He et al. 2022, §3): random 75% of the patches masked,
the encoder sees the rest, the decoder reconstructs the masked patches, mean squared error on those only.

Encoder and decoder are built from the experiment (its ``vision_encoder`` must be an ``hf`` ViT-MAE, its
``image_decoder``, if any, a ``MAEImageDecoder``, whose sizes the decoder takes), the images come from the experiment's
training loader (its augmentation included), and ``DIR`` receives a ``ViTMAEForPreTraining`` checkpoint
(``config.json`` + ``model.safetensors`` + ``pretraining.json`` with the loss per epoch) that both parts load:
``vision_encoder: {name: DIR, pretrained: true}``, ``image_decoder: {name: DIR}``. The target is the pixels as the
encoder reads them (no per-patch normalisation), the space the method's reconstruction loss compares in.

A CT experiment's ``volume_encoder`` (RadFM's ViT3D layout, ``backend: radfm``) is pre-trained the same way in 3D
(:class:`~radiolm.pretrain.volume_mae.VolumeMAE`): ``DIR/model.safetensors`` keeps the encoder under ``encoder.``,
which ``volume_encoder: {checkpoint_path: DIR/model.safetensors, checkpoint_prefix: encoder.}`` loads. Dia-LLaMA
starts from RadFM's pre-trained ViT3D (§3.2); from scratch, the phantom's RadFM-style baseline did not learn to read
the volume (issue 15).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from radiolm.batch import ReportBatch, require_images, require_volumes
from radiolm.benchmarks.experiment import build, machine
from radiolm.errors import RadioLMError
from radiolm.pretrain.volume_mae import VolumeMAE

__all__ = ["mae_for_pretraining", "main", "pretrain"]


def mae_for_pretraining(model: Any, mask_ratio: float) -> Any:
    """A ``ViTMAEForPreTraining`` with the experiment's encoder (same config and initial weights) and its
    ``image_decoder``'s decoder (same sizes and initial weights; MAE's default decoder when it has none).

    Raises:
        RadioLMError: the experiment's encoder is not an ``hf`` ViT-MAE.
    """
    from transformers import ViTMAEForPreTraining

    encoder = getattr(model, "vision_encoder", None)
    if encoder is None or getattr(encoder, "backend", None) != "hf" or not getattr(encoder, "is_mae", False):
        raise RadioLMError(
            "pretrain mae: the experiment's model.init_args.vision_encoder must be a ViT-MAE "
            "(backend: hf, name: vit_mae or an MAE checkpoint)"
        )
    config = copy.deepcopy(encoder.model.config)
    config.mask_ratio, config.norm_pix_loss = mask_ratio, False
    image_decoder = getattr(model, "image_decoder", None)
    decoder = getattr(image_decoder, "decoder", None)
    if decoder is not None:
        sizes = decoder.config  # ViTMAEDecoder keeps its own layers' config: hidden_size = decoder_hidden_size, ...
        config.decoder_hidden_size, config.decoder_num_hidden_layers = sizes.hidden_size, sizes.num_hidden_layers
        config.decoder_num_attention_heads = sizes.num_attention_heads
        config.decoder_intermediate_size = sizes.intermediate_size
    mae = ViTMAEForPreTraining(config)
    mae.vit.load_state_dict(encoder.model.state_dict())
    if decoder is not None:
        mae.decoder.load_state_dict(decoder.state_dict())
    return mae


def _mae_and_loss(
    model: Any, mask_ratio: float
) -> tuple[nn.Module, Callable[[ReportBatch], Tensor], Callable[[Path], Any]]:
    """The experiment's encoder inside an MAE, the reconstruction loss of one batch and how to save the result: a CT
    experiment's 3D ViT (:class:`VolumeMAE`, on the volumes) or an X-ray experiment's ViT-MAE (on the first view of
    each study; a ``ViTMAEForPreTraining`` folder)."""
    volume_encoder = getattr(model, "volume_encoder", None)
    if volume_encoder is not None:
        volume_mae = VolumeMAE(volume_encoder, mask_ratio)

        def volume_loss(batch: ReportBatch) -> Tensor:
            return volume_mae(require_volumes(batch, "pretrain mae"))

        return volume_mae, volume_loss, volume_mae.save
    hf_mae = mae_for_pretraining(model, mask_ratio)

    def image_loss(batch: ReportBatch) -> Tensor:
        return hf_mae(pixel_values=require_images(batch, "pretrain mae")[0][:, 0]).loss

    return hf_mae, image_loss, hf_mae.save_pretrained


def pretrain(
    mae: nn.Module,
    loss_of: Callable[[ReportBatch], Tensor],
    loader: Any,
    epochs: int,
    lr: float,
    warmup_epochs: int = 5,
) -> list[dict[str, float]]:
    """MAE's recipe (§A.1, scaled down): AdamW (betas 0.9, 0.95; weight decay 0.05) over ``mae``'s parameters, linear
    warm-up then cosine decay per step, ``loss_of(batch)`` the reconstruction loss. One row per epoch: mean loss,
    seconds so far."""
    optimizer = torch.optim.AdamW(mae.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.05)
    total, warmup = epochs * len(loader), max(1, warmup_epochs * len(loader))

    def factor(step: int) -> float:
        return (step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * (step - warmup) / total))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    rows, start = [], time.perf_counter()
    mae.train()
    for epoch in range(1, epochs + 1):
        losses = []
        for batch in loader:
            loss = loss_of(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        row = {"epoch": epoch, "loss": sum(losses) / len(losses), "seconds": time.perf_counter() - start}
        print(f"epoch {epoch}: loss {row['loss']:.4f} ({row['seconds']:.0f} s)", flush=True)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="radiolm pretrain mae",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        allow_abbrev=False,
        epilog="Other options go to the experiment's parser: -c EXP.yaml [--data.init_args.n=600] ...",
    )
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--batch-size", type=int, default=32, help="studies per step (the experiment's loader otherwise)")
    p.add_argument("--mask-ratio", type=float, default=0.75)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", type=Path, required=True, help="the checkpoint folder to write")
    args, rest = p.parse_known_args(argv)
    torch.manual_seed(args.seed)
    bench = build([*rest, f"--data.init_args.batch_size={args.batch_size}"], random_weights=False, trainer_kwargs={})
    mae, loss_of, save = _mae_and_loss(bench.model, args.mask_ratio)
    data = bench.datamodule
    data.prepare_data()
    data.setup("fit")
    where = machine(bench.trainer) | {"precision": "32-true"}  # this loop runs fp32, whatever the trainer's setting
    print(f"pretrain mae: {bench.configs}, {len(data.datasets['train'])} training studies; {where}")
    rows = pretrain(mae, loss_of, data.train_dataloader(), args.epochs, args.lr)
    args.save.mkdir(parents=True, exist_ok=True)
    save(args.save)
    figures = {"configs": bench.configs, "lr": args.lr, "batch_size": args.batch_size, "mask_ratio": args.mask_ratio}
    figures |= {"epochs": rows, "machine": where}
    (args.save / "pretraining.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"pretrain mae: wrote {args.save}")
