"""Validation before the first step: every bad input stops setup with a message naming the file and entry, or is
dropped (counted, logged, listed) with ``skip_invalid``. Plus image decoding of 8/16-bit, gray, RGB(A) files."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger
from PIL import Image

from radiolm.data.datamodules.r2gen import R2GenDataModule
from radiolm.data.formats.annotation import read_annotation
from radiolm.data.formats.images import check_image_file, load_image
from radiolm.data.formats.validation import FIX_HINT, Problem, check_entries, write_problems
from radiolm.data.transforms import ImageTransformConfig, build_image_transform
from radiolm.errors import DataError

EXPERIMENTS: list[Path] = []  # no experiment YAMLs here


@pytest.fixture()
def root(phantom_root: Path, tmp_path: Path) -> Path:
    """A private copy of the 24-study phantom set (17 / 2 / 5 after its split) to break."""
    return Path(shutil.copytree(phantom_root, tmp_path / "set"))


def annotation_of(root: Path) -> dict[str, Any]:
    return json.loads((root / "annotation.json").read_text())


def rewrite(root: Path, edit: Any) -> dict[str, Any]:
    data = annotation_of(root)
    edit(data)
    (root / "annotation.json").write_text(json.dumps(data))
    return data


def make(root: Path, **kwargs: Any) -> R2GenDataModule:
    return R2GenDataModule(
        str(root / "annotation.json"), num_workers=0, image_transform=ImageTransformConfig(16), **kwargs
    )


def first_image(root: Path, split: str = "train", index: int = 0) -> tuple[str, Path]:
    entry = annotation_of(root)[split][index]
    return entry["id"], root / "images" / entry["image_path"][0]


# -- per-entry file problems --------------------------------------------------------------------------------------
def break_missing(path: Path) -> None:
    path.unlink()


def break_truncated_png(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def break_garbage(path: Path) -> None:
    path.write_bytes(b"this is not an image" * 10)


@pytest.mark.parametrize(
    ("breaker", "message"),
    [(break_missing, "image file not found"), (break_truncated_png, "cannot decode image"),
     (break_garbage, "cannot decode image")],
    ids=["missing", "truncated-png", "not-an-image"],
)  # fmt: skip
def test_bad_image_stops_setup(root: Path, breaker: Any, message: str) -> None:
    entry_id, path = first_image(root)
    breaker(path)
    with pytest.raises(DataError) as info:
        make(root).setup("fit")
    text = str(info.value)
    assert text.startswith(f"{root / 'annotation.json'}: 1 invalid entry:")
    assert f"train entry '{entry_id}': {path}: {message}" in text and FIX_HINT in text


def test_truncated_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "x.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (256, 256), dtype=np.uint8)).save(path, quality=95)
    assert check_image_file(path) is None
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    message = check_image_file(path)
    assert message is not None and message.startswith(f"{path}: cannot decode image (OSError: image file is truncated")
    assert check_image_file(path, draft=False) is not None


def test_skip_invalid_drops_counts_and_writes_the_list(
    root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing_id, missing = first_image(root, "train", 0)
    corrupt_id, corrupt = first_image(root, "test", 1)
    missing.unlink()
    break_truncated_png(corrupt)
    dm = make(root, skip_invalid=True)
    dm.trainer = Trainer(logger=CSVLogger(tmp_path / "runs", name="x"), accelerator="cpu", devices=1)
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    assert {s: len(d) for s, d in dm.datasets.items()} == {"train": 16, "val": 2, "test": 4}
    assert f"dropped 2 invalid entries of {root / 'annotation.json'}: train/{missing_id}, test/{corrupt_id}" in (
        caplog.text
    )
    written = json.loads((tmp_path / "runs" / "x" / "version_0" / "invalid-entries.json").read_text())
    assert [(p["split"], p["id"]) for p in written] == [("train", missing_id), ("test", corrupt_id)]
    assert written[0]["message"].startswith(f"{missing}: image file not found")
    assert written[0]["source"] == str(root / "annotation.json")


def test_skip_invalid_without_a_trainer_writes_next_to_the_annotation(root: Path) -> None:
    first_image(root)[1].unlink()
    make(root, skip_invalid=True).setup("fit")
    listed = json.loads((root / "annotation.invalid-entries.json").read_text())
    assert len(listed) == 1 and "image file not found" in listed[0]["message"]


def test_validate_images_false_skips_the_decode(root: Path) -> None:
    break_truncated_png(first_image(root)[1])
    dm = make(root, validate_images=False)
    dm.setup("fit")  # no check here: the bad file fails when loaded
    assert len(dm.datasets["train"]) == 17


# -- annotation problems ------------------------------------------------------------------------------------------
def drop_report(d: dict[str, Any]) -> None:
    del d["train"][2]["report"]


def drop_image_path(d: dict[str, Any]) -> None:
    del d["val"][0]["image_path"]


def empty_report(d: dict[str, Any]) -> None:
    d["test"][3]["report"] = "   "


def duplicate_id(d: dict[str, Any]) -> None:
    d["train"][5]["id"] = d["train"][4]["id"]


@pytest.mark.parametrize(
    ("edit", "split", "index", "message"),
    [(drop_report, "train", 2, "train[2] has no 'report'"), (drop_image_path, "val", 0, "val[0] has no 'image_path'"),
     (empty_report, "test", 3, "empty 'report'"), (duplicate_id, "train", 5, "train[5]: duplicate id")],
    ids=["no-report", "no-image_path", "empty-report", "duplicate-id"],
)  # fmt: skip
def test_bad_entries(root: Path, edit: Any, split: str, index: int, message: str) -> None:
    data = rewrite(root, edit)
    entry_id = data[split][index].get("id")
    with pytest.raises(DataError) as info:
        make(root).setup("fit")
    assert f"{root / 'annotation.json'}: 1 invalid entry:\n  - {split} entry '{entry_id}': " in str(info.value)
    assert message in str(info.value)
    dm = make(root, skip_invalid=True)
    dm.setup("fit")
    sizes = {"train": 17, "val": 2, "test": 5}
    sizes[split] -= 1
    assert {s: len(d) for s, d in dm.datasets.items()} == sizes
    assert [(p.split, p.id) for p in dm.problems] == [(split, entry_id)]


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not valid JSON"), ({"train": [], "val": []}, "split(s) ['test'] missing"),
     ({"train": {}, "val": [], "test": []}, "split 'train' must be a list")],
    ids=["not-json", "no-split", "split-not-a-list"],
)  # fmt: skip
def test_whole_file_problems_are_never_skipped(root: Path, content: Any, message: str) -> None:
    path = root / "annotation.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(DataError, match=str(path)) as info:
        make(root, skip_invalid=True).setup("fit")
    assert message in str(info.value)


def test_empty_report_after_cleaning_is_an_entry_problem(tmp_path: Path) -> None:
    path = tmp_path / "annotation.json"
    entry = {"id": "a", "report": "ok", "image_path": "a.png"}
    path.write_text(json.dumps({"train": [entry, {**entry, "id": "b", "report": ""}, 3], "val": [], "test": []}))
    annotation, problems = read_annotation(path)
    assert annotation["train"] == [{"id": "a", "report": "ok", "image_path": ["a.png"]}]
    assert [(p.split, p.id, p.message) for p in problems] == [
        ("train", "b", "train[1] (id 'b'): empty 'report'; give it a report or remove the entry."),
        ("train", "#2", "train[2] is a int, not an object with id, report and image_path."),
    ]


# -- the API the CT DataModule shares -----------------------------------------------------------------------------
def test_check_entries_api(tmp_path: Path) -> None:
    entries = {"train": [{"id": str(i), "n": i} for i in range(9)], "val": [{"id": "v", "n": 3}]}

    def check(entry: dict[str, Any]) -> str | None:
        return f"/data/{entry['id']}.nii.gz: odd" if entry["n"] % 2 else None

    with pytest.raises(DataError) as info:
        check_entries(entries, check, source=tmp_path / "a.json", skip_invalid=False, workers=2)
    assert str(info.value) == (
        f"{tmp_path / 'a.json'}: 5 invalid entries:\n  - train entry '1': /data/1.nii.gz: odd\n"
        "  - train entry '3': /data/3.nii.gz: odd\n  - train entry '5': /data/5.nii.gz: odd\n"
        "  - train entry '7': /data/7.nii.gz: odd\n  - val entry 'v': /data/v.nii.gz: odd\n"
        f"{FIX_HINT}."
    )
    known = [Problem("test", "t", "a.json", "test[0] has no 'report'")]
    kept, problems = check_entries(entries, check, source=tmp_path / "a.json", skip_invalid=True, known=known)
    assert [e["id"] for e in kept["train"]] == ["0", "2", "4", "6", "8"] and kept["val"] == []
    assert [p.id for p in problems] == ["t", "1", "3", "5", "7", "v"]
    out = write_problems(tmp_path / "run" / "invalid-entries.json", problems)
    assert json.loads(out.read_text())[1] == {
        "split": "train", "id": "1", "source": str(tmp_path / "a.json"), "message": "/data/1.nii.gz: odd"
    }  # fmt: skip


# -- image decoding: 8/16-bit, gray, RGB, RGBA, palette -----------------------------------------------------------
@pytest.mark.parametrize(
    ("make_image", "expected"),
    [(lambda: Image.fromarray(np.full((4, 4), 128, np.uint8)), 128 / 255),
     (lambda: Image.fromarray(np.full((4, 4), 32768, np.uint16)), 127 / 255),  # 16-bit: scaled by 65535
     (lambda: Image.fromarray(np.full((4, 4, 2), 64, np.uint8), mode="LA"), 64 / 255),
     (lambda: Image.fromarray(np.full((4, 4, 3), 200, np.uint8)), 200 / 255),
     (lambda: Image.fromarray(np.full((4, 4, 4), 10, np.uint8)), 10 / 255),  # RGBA: alpha dropped
     (lambda: Image.fromarray(np.full((4, 4), 50, np.uint8)).convert("P"), 50 / 255)],
    ids=["L8", "I16", "LA", "RGB", "RGBA", "P"],
)  # fmt: skip
def test_decoding_modes(tmp_path: Path, make_image: Any, expected: float) -> None:
    path = tmp_path / "x.png"
    make_image().save(path)
    out = build_image_transform(ImageTransformConfig(4, mean=(0, 0, 0), std=(1, 1, 1)), train=False)(load_image(path))
    assert out.shape == (3, 4, 4)
    assert torch.allclose(out, torch.full_like(out, expected), atol=1e-6)


def test_grayscale_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "x.jpg"
    Image.fromarray(np.full((16, 16), 100, np.uint8)).save(path, quality=100)
    out = build_image_transform(ImageTransformConfig(8, mean=(0,), std=(1,), channels=1), train=False)(load_image(path))
    assert out.shape == (1, 8, 8) and torch.allclose(out, torch.full_like(out, 100 / 255), atol=1 / 255)


def test_images_that_passed_are_not_decoded_again(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import radiolm.data.formats.images as images

    calls: list[Path] = []
    real = images.check_image_file
    monkeypatch.setattr(images, "check_image_file", lambda path: calls.append(path) or real(path))
    make(root, max_views=1).setup("fit")
    assert len(calls) == 24 and (root / ".radiolm-checked-images.json").is_file()
    calls.clear()
    make(root, max_views=1).setup("fit")
    assert calls == []  # same size and mtime: recorded as good
    entry_id, path = first_image(root, "val", 1)
    break_truncated_png(path)  # a changed file is decoded again, and fails
    with pytest.raises(DataError, match=f"val entry '{entry_id}': {path}: cannot decode image"):
        make(root, max_views=1).setup("fit")
    assert calls == [path]
