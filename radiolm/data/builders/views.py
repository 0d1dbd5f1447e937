"""The frontal / lateral view classifier of the bidirectional method, a preprocessing step (paper §3).

"We train a classifier using only CXR images to identify the view (frontal or lateral) and append this information
to the report ... The classifier is trained strictly on the training set images and serves as a preprocessing step."
Here it is a small CNN on 64-pixel grayscale images, trained with a plain loop (no Lightning) on the training split;
its prediction for every image of every split is cached to a JSON file (``{"views": {study id: [name, ...]}}``)
that the DataModule reads into ``ReportBatch.views`` (its ``views_path``), where
:class:`~radiolm.methods.bidirectional.Bidirectional` finds each image's view::

    radiolm data views --annotation data/iu_xray/annotation.json --out data/iu_xray/views.json

Training labels: an entry's ``views`` list when the annotation has one (the phantom, MIMIC-CXR builders that keep
``ViewPosition``), else the R2Gen IU-Xray convention that image 0 is frontal and image 1 lateral. The file also
reports the accuracy on every split against those labels.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from radiolm.data.formats.annotation import SPLITS, load_annotation
from radiolm.data.formats.images import load_image
from radiolm.errors import DataError

__all__ = [
    "VIEWS",
    "ViewClassifier",
    "ensure_view_predictions",
    "load_view_images",
    "main",
    "predict_views",
    "train_view_classifier",
]

VIEWS = ("frontal", "lateral")


class ViewClassifier(nn.Module):
    """Four stride-2 conv blocks, global average pooling, a linear layer: ``[N, 1, S, S]`` -> logits ``[N, 2]``.

    Args:
        width: Channels of the first block (doubled in each of the next ones, up to ``8 * width``).
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for i in range(4):
            out = width * 2 ** min(i, 3)
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.GroupNorm(4, out), nn.ReLU(inplace=True)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, len(VIEWS))

    def forward(self, images: Tensor) -> Tensor:
        """``[N, 1, S, S]`` in [0, 1] -> ``[N, 2]`` logits over :data:`VIEWS`."""
        return self.head(self.features(images - 0.5).mean((2, 3)))


def _labels_of(entry: dict[str, Any]) -> list[int]:
    names = entry.get("views") or list(VIEWS)[: len(entry["image_path"])]
    if len(names) < len(entry["image_path"]) or any(n not in VIEWS for n in names[: len(entry["image_path"])]):
        raise DataError(
            f"study {entry['id']!r}: views {names!r} do not name each image as one of {list(VIEWS)}; fix the "
            "annotation's 'views' or remove it to use the image order (0 frontal, 1 lateral)"
        )
    return [VIEWS.index(n) for n in names[: len(entry["image_path"])]]


def load_view_images(
    entries: list[dict[str, Any]], image_root: Path, size: int
) -> tuple[Tensor, Tensor, list[tuple[str, int]]]:
    """Every image of ``entries`` as ``[N, 1, size, size]`` in [0, 1], its label ``[N]``, and ``(id, index)``."""
    images, labels, keys = [], [], []
    for entry in entries:
        for index, (path, label) in enumerate(zip(entry["image_path"], _labels_of(entry), strict=False)):
            image = load_image(image_root / path).convert("L").resize((size, size))
            images.append(torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(1, size, size))
            labels.append(label)
            keys.append((entry["id"], index))
    if not images:
        return torch.zeros(0, 1, size, size), torch.zeros(0, dtype=torch.long), keys
    return torch.stack(images).float() / 255, torch.tensor(labels), keys


def train_view_classifier(
    images: Tensor,
    labels: Tensor,
    epochs: int = 5,
    batch_size: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    min_steps: int = 100,
) -> ViewClassifier:
    """Train on the training split's images (``[N, 1, S, S]``, labels ``[N]``) with Adam and cross-entropy.

    Random horizontal flips augment, since a lateral view may face either way. Training runs ``epochs`` passes,
    or more until ``min_steps`` optimizer steps, so that a small training split still gets enough updates.
    """
    if len(images) == 0:
        raise DataError("the training split has no images to train the view classifier on")
    torch.manual_seed(seed)
    model = ViewClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    steps_per_epoch = -(-len(images) // batch_size)
    for _ in range(max(epochs, -(-min_steps // steps_per_epoch))):
        order = torch.randperm(len(images))
        for start in range(0, len(images), batch_size):
            index = order[start : start + batch_size]
            batch = images[index]
            flip = torch.rand(len(batch)) < 0.5
            batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
            loss = F.cross_entropy(model(batch), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def predict_views(model: ViewClassifier, images: Tensor, batch_size: int = 128) -> Tensor:
    """Predicted view index ``[N]`` (0 frontal, 1 lateral) of ``[N, 1, S, S]`` images."""
    model.eval()
    out = [model(images[i : i + batch_size]).argmax(-1) for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def main(argv: list[str] | None = None) -> None:
    """``radiolm data views``: train on the training split, cache every split's predicted views to ``--out``."""
    parser = argparse.ArgumentParser(
        prog="radiolm data views",
        description="Train the frontal/lateral view classifier of the bidirectional method (paper §3) on the "
        "training images only and cache its prediction for every image of every split to a JSON file.",
    )
    parser.add_argument("--annotation", required=True, type=Path, help="R2Gen annotation.json")
    parser.add_argument("--image-root", type=Path, help="image folder (default: <annotation dir>/images)")
    parser.add_argument("--out", type=Path, help="predictions JSON (default: <annotation dir>/views.json)")
    parser.add_argument("--size", type=int, default=64, help="image side fed to the classifier")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="retrain even when --out holds these settings")
    args = parser.parse_args(argv)
    out = args.out or args.annotation.parent / "views.json"
    image_root = args.image_root or args.annotation.parent / "images"
    if not args.annotation.is_file():
        raise DataError(f"{args.annotation}: annotation file not found; build the data set first")
    digest = hashlib.sha1(args.annotation.read_bytes()).hexdigest()  # a rebuilt data set invalidates the cache
    settings = {"annotation": digest, "size": args.size, "epochs": args.epochs, "seed": args.seed}
    if out.is_file() and not args.force and json.loads(out.read_text()).get("settings") == settings:
        print(f"radiolm data views: {out} is up to date (cached); --force retrains")
        return
    start = time.monotonic()
    annotation = load_annotation(args.annotation)
    data = {split: load_view_images(annotation[split], image_root, args.size) for split in SPLITS}
    model = train_view_classifier(*data["train"][:2], epochs=args.epochs, seed=args.seed)
    views: dict[str, list[str]] = {}
    accuracy: dict[str, float] = {}
    for split, (images, labels, keys) in data.items():
        predicted = predict_views(model, images)
        if len(labels):
            accuracy[split] = float((predicted == labels).float().mean())
        for (study, _), view in zip(keys, predicted.tolist(), strict=True):
            views.setdefault(study, []).append(VIEWS[view])
    result = {
        "settings": settings,
        "accuracy": accuracy,
        "n_images": {split: len(d[0]) for split, d in data.items()},
        "views": views,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    shown = ", ".join(f"{s} {a:.3f}" for s, a in accuracy.items())
    print(f"radiolm data views: {len(views)} studies -> {out} in {time.monotonic() - start:.0f} s; accuracy {shown}")


def ensure_view_predictions(annotation: str | Path, out: str | Path, image_root: str | Path | None = None) -> None:
    """Run :func:`main` unless ``out`` already holds predictions for this exact annotation file."""
    argv = ["--annotation", str(annotation), "--out", str(out)]
    main(argv + (["--image-root", str(image_root)] if image_root else []))
