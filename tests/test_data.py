"""The R2Gen reader: batches, transforms set by the encoder, image decoding, and clear errors on bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from radiolm.data.datamodules.r2gen import R2GenDataModule
from radiolm.data.formats.annotation import load_annotation
from radiolm.data.formats.images import load_image
from radiolm.data.formats.labels_csv import load_labels_csv
from radiolm.data.labels import CHEXPERT_14
from radiolm.data.transforms import ImageTransformConfig, build_image_transform
from radiolm.errors import DataError


def datamodule(root: Path, **kwargs: object) -> R2GenDataModule:
    dm = R2GenDataModule(
        str(root / "annotation.json"),
        num_workers=0,
        image_transform=ImageTransformConfig(32),
        **kwargs,  # type: ignore[arg-type]
    )
    dm.setup("fit")
    return dm


def test_batch_contract(phantom_root: Path) -> None:
    dm = datamodule(phantom_root, batch_size=3)
    batch = next(iter(dm.train_dataloader()))
    assert batch.images is not None and batch.images.shape == (3, 2, 3, 32, 32)
    assert batch.view_mask is not None and batch.view_mask.all()
    assert batch.labels.shape == (3, 14) and batch.labels.dtype == torch.long
    assert len(batch.ids) == len(batch.reports) == len(batch.views) == 3
    assert batch.domain == ["cxr"] * 3 and batch.language == ["en"] * 3
    labels = load_labels_csv(phantom_root / "labels.csv")
    assert batch.labels[0].tolist() == labels[batch.ids[0]]


def test_views_are_padded_and_masked(phantom_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    shutil.copytree(phantom_root, root)
    annotation = json.loads((root / "annotation.json").read_text())
    annotation["test"][0]["image_path"] = annotation["test"][0]["image_path"][:1]  # a study with one view
    (root / "annotation.json").write_text(json.dumps(annotation))
    batch = next(iter(datamodule(root, eval_batch_size=2).test_dataloader()))
    assert batch.view_mask is not None and batch.images is not None
    assert batch.view_mask.tolist() == [[True, False], [True, True]]
    assert batch.images[0, 1].abs().sum() == 0


def test_max_views_and_report_key(phantom_root: Path) -> None:
    dm = datamodule(phantom_root, max_views=1, report_key="impression")
    item = dm.datasets["train"][0]
    entry = json.loads((phantom_root / "annotation.json").read_text())["train"][0]
    assert item["images"].shape[0] == 1 and item["report"] == entry["impression"]


def test_transform_uses_encoder_statistics() -> None:
    cfg = ImageTransformConfig(size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    out = build_image_transform(cfg, train=False)(Image.new("L", (40, 30), color=255))
    assert out.shape == (3, 16, 16)
    assert torch.allclose(out, torch.full_like(out, (1.0 - 0.5) / 0.25))


@pytest.mark.parametrize(
    ("mode", "array"),
    [
        ("I;16", np.full((8, 8), 65535, dtype=np.uint16)),
        ("RGBA", np.full((8, 8, 4), 255, dtype=np.uint8)),
        ("RGB", np.full((8, 8, 3), 255, dtype=np.uint8)),
    ],
)
def test_image_decoding_modes(tmp_path: Path, mode: str, array: np.ndarray) -> None:
    path = tmp_path / "x.png"
    Image.fromarray(array).save(path)
    out = build_image_transform(ImageTransformConfig(8, mean=(0, 0, 0), std=(1, 1, 1)), train=False)(load_image(path))
    assert torch.allclose(out, torch.ones(3, 8, 8))  # white stays white whatever the bit depth or mode


# -- bad input: every error names the file (and the entry) ----------------------------------------------------------
def write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "annotation.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


ENTRY = {"id": "a", "report": "r", "image_path": ["a/0.png"]}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ({"train": [], "val": []}, "split(s) ['test'] missing"),
        ({"train": [{"id": "a", "image_path": ["x"]}], "val": [], "test": []}, "train[0] has no 'report'"),
        ({"train": [{"id": "a", "report": "r"}], "val": [], "test": []}, "train[0] has no 'image_path'"),
        ({"train": [ENTRY, ENTRY], "val": [], "test": []}, "train[1]: duplicate id 'a'"),
    ],
)
def test_bad_annotation(tmp_path: Path, content: object, message: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(DataError, match=str(path)) as info:
        load_annotation(path)
    assert message in str(info.value)


def test_missing_annotation_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="annotation file not found"):
        load_annotation(tmp_path / "nope.json")


def test_missing_and_corrupt_images(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="image file not found"):
        load_image(tmp_path / "missing.png")
    good = tmp_path / "good.png"
    Image.new("L", (64, 64)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:40])
    with pytest.raises(DataError, match=f"{truncated}: cannot decode image"):
        load_image(truncated)


def test_labels_csv_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("id,Cardiomegaly\na,1\n")
    with pytest.raises(DataError, match=r"columns .* missing"):
        load_labels_csv(path)


def test_labels_blank_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("id," + ",".join(CHEXPERT_14) + "\na," + ",".join(["1"] + [""] * 13) + "\n")
    assert load_labels_csv(path)["a"] == [1] + [-1] * 13
