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


# -- view labels from a views file (``radiolm data views --out views.json``) -----------------------------------------
def write_views(path: Path, views: dict[str, list[str]], wrapped: bool = True) -> Path:
    """A views file as the view classifier writes it (``{"settings", ..., "views": {...}}``), or a plain object."""
    path.write_text(json.dumps({"settings": {"size": 64}, "accuracy": {}, "views": views} if wrapped else views))
    return path


def all_ids(root: Path) -> list[str]:
    return [e["id"] for split in json.loads((root / "annotation.json").read_text()).values() for e in split]


def test_views_path_names_reach_the_batch(phantom_root: Path, tmp_path: Path) -> None:
    views = write_views(tmp_path / "views.json", {i: ["lateral", "frontal"] for i in all_ids(phantom_root)})
    batch = next(iter(datamodule(phantom_root, batch_size=3, views_path=str(views)).train_dataloader()))
    assert batch.views == [["lateral", "frontal"]] * 3  # the file's names, not the annotation's frontal, lateral
    plain = write_views(tmp_path / "plain.json", {i: ["lateral", "frontal"] for i in all_ids(phantom_root)}, False)
    dm = datamodule(phantom_root, eval_batch_size=2, max_views=1, views_path=str(plain))
    batch = next(iter(dm.test_dataloader()))
    assert batch.views == [["lateral"], ["lateral"]]


def test_views_path_must_cover_every_split(phantom_root: Path, tmp_path: Path) -> None:
    annotation = json.loads((phantom_root / "annotation.json").read_text())
    missing = [annotation["val"][0]["id"], annotation["test"][1]["id"]]
    views = {i: ["frontal", "lateral"] for i in all_ids(phantom_root) if i not in missing}
    path = write_views(tmp_path / "views.json", views)
    with pytest.raises(DataError, match=f"{path}: no view names for 2 studies") as info:
        datamodule(phantom_root, views_path=str(path))
    assert f"val: ['{missing[0]}']" in str(info.value) and f"test: ['{missing[1]}']" in str(info.value)
    short = write_views(tmp_path / "short.json", {i: ["frontal"] for i in all_ids(phantom_root)})
    with pytest.raises(DataError, match=f"{short}: fewer view names than images for 24 studies"):
        datamodule(phantom_root, views_path=str(short))
    assert datamodule(phantom_root, max_views=1, views_path=str(short)).datasets["train"][0]["views"] == ["frontal"]
    with pytest.raises(DataError, match=f"{tmp_path / 'none.json'}: views file not found"):
        datamodule(phantom_root, views_path=str(tmp_path / "none.json"))


def test_views_path_is_an_option_of_the_xray_modules(phantom_root: Path, tmp_path: Path) -> None:
    from jsonargparse import ArgumentParser

    from radiolm.data import PhantomCXRDataModule, ReportDataModule

    views = write_views(tmp_path / "views.json", {i: ["lateral", "frontal"] for i in all_ids(phantom_root)})
    parser = ArgumentParser()
    parser.add_subclass_arguments(ReportDataModule, "data")
    init = {"root": str(phantom_root), "n": 24, "image_size": 64, "views_path": str(views), "num_workers": 0}
    config = parser.parse_object({"data": {"class_path": "radiolm.data.PhantomCXRDataModule", "init_args": init}})
    dm = parser.instantiate_classes(config).data
    assert isinstance(dm, PhantomCXRDataModule) and dm.views_path == views
    dm.image_transform = ImageTransformConfig(32)
    dm.setup("fit")
    assert dm.datasets["val"][0]["views"] == ["lateral", "frontal"]
