"""``radiolm bench encoder-probe -c EXP.yaml``: can the experiment's image encoder learn the findings from its data?

    radiolm bench encoder-probe -c experiments/dia_llama_phantom.yaml --epochs 3 --lr 1e-3
    radiolm bench encoder-probe -c experiments/bidirectional_phantom.yaml --epochs 6 --lr 3e-4

A quick check, before spending a training run on a method, that the vision part of an experiment can read its
studies at all: the experiment's encoder (``vision_encoder`` of an X-ray method on the first view, ``volume_encoder``
of a CT one), as its config builds it, with a linear head on its mean token, trained alone with binary
cross-entropy on the CheXpert-14 positives of the experiment's training split (``labels == 1``; no LLM, no report).
After each epoch it prints the training loss and the micro F1 (threshold 0.5) of the validation split, or of the
test split when the experiment has no validation split. A training loss near zero with a low held-out F1 is an
encoder that memorises its studies; a loss that stays at the prior is one that does not learn (too high a learning
rate for a ViT trained from scratch, too few studies, too coarse an input). Not a paper metric; it ignores the
method's own heads (e.g. Dia-LLaMA's disease attention and prototypes).
"""

from __future__ import annotations

import json
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from radiolm.batch import ReportBatch
from radiolm.benchmarks.experiment import build, machine, parser
from radiolm.errors import RadioLMError
from radiolm.parts.vision import VisionEncoder
from radiolm.parts.volume_encoder import VolumeEncoder

__all__ = ["EncoderProbe", "main", "probe"]


class EncoderProbe(nn.Module):
    """An encoder and a linear head on its mean token: ``batch -> [B, 14]`` logits.

    Args:
        encoder: A ``VisionEncoder`` (reads ``batch.images[:, 0]``) or a ``VolumeEncoder`` (``batch.volumes``).
        volume: Which of the two.
    """

    def __init__(self, encoder: VisionEncoder | VolumeEncoder, volume: bool, num_labels: int = 14) -> None:
        super().__init__()
        self.encoder, self.volume = encoder, volume
        self.head = nn.Linear(int(encoder.out_dim), num_labels)

    def forward(self, batch: ReportBatch) -> Tensor:
        images = batch.images[:, 0] if batch.images is not None else None  # the first (frontal) view
        inputs = batch.volumes if self.volume else images
        if inputs is None:
            kind = "volumes" if self.volume else "images"
            raise RadioLMError(f"encoder-probe: the experiment's batches have no {kind} for its encoder")
        return self.head(self.encoder(inputs).float().mean(dim=1))


def _micro_f1(model: EncoderProbe, loader: Any) -> float:
    tp = fp = fn = 0
    model.eval()
    with torch.no_grad():
        for batch in loader:
            predicted, truth = model(batch) > 0, batch.labels == 1
            tp += int((predicted & truth).sum())
            fp += int((predicted & ~truth).sum())
            fn += int((~predicted & truth).sum())
    return 2 * tp / max(1, 2 * tp + fp + fn)


def probe(model: EncoderProbe, train: Any, held_out: Any, epochs: int, lr: float) -> list[dict[str, float]]:
    """Train ``model`` on ``train`` for ``epochs`` (AdamW, ``lr``); one row per epoch: loss, held-out micro F1."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    rows, start, steps = [], time.perf_counter(), 0
    for epoch in range(1, epochs + 1):
        model.train()
        total = count = 0.0
        for batch in train:
            loss = F.binary_cross_entropy_with_logits(model(batch), (batch.labels == 1).float())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, count, steps = total + loss.item(), count + 1, steps + 1
        row = {"epoch": epoch, "steps": steps, "train_loss": total / max(count, 1)}
        row |= {"held_out_micro_f1": _micro_f1(model, held_out), "seconds": time.perf_counter() - start}
        print(
            f"epoch {epoch}: {steps} steps, train loss {row['train_loss']:.3f}, held-out micro F1 "
            f"{row['held_out_micro_f1']:.3f} ({row['seconds']:.0f} s)",
            flush=True,
        )
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    p = parser("radiolm bench encoder-probe", __doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    args, rest = p.parse_known_args(argv)
    torch.manual_seed(args.seed)
    bench = build(rest, random_weights=args.random_weights, trainer_kwargs={})
    model, data = bench.model, bench.datamodule
    volume_encoder = getattr(model, "volume_encoder", None)
    encoder = volume_encoder if volume_encoder is not None else getattr(model, "vision_encoder", None)
    if encoder is None:
        raise RadioLMError(f"encoder-probe: {type(model).__name__} has no vision_encoder or volume_encoder")
    for parameter in encoder.parameters():
        parameter.requires_grad_(True)  # the probe trains the encoder whatever the method's stage would freeze
    data.prepare_data()
    data.setup("fit")
    held_name = "val" if len(data.datasets.get("val") or []) else "test"
    held_out = data.val_dataloader() if held_name == "val" else data.test_dataloader()
    where = machine(bench.trainer)
    print(f"encoder-probe: {type(encoder).__name__} of {bench.configs} in fp32, held-out split {held_name}; {where}")
    model_probe = EncoderProbe(encoder, volume=volume_encoder is not None)
    rows = probe(model_probe, data.train_dataloader(), held_out, args.epochs, args.lr)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        figures = {"configs": bench.configs, "held_out": held_name, "lr": args.lr, "epochs": rows, "machine": where}
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
