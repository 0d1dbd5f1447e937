"""CTRG-Chest: the DataModule on the phantom CT, seeded split files, the builder from a download-like folder, and a
clear error (or a counted drop with ``skip_invalid``) for every bad volume."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from radiolm.cli import main
from radiolm.data.datamodules.ctrg_chest import CTRGChestDataModule
from radiolm.data.datamodules.phantom import PhantomCTDataModule
from radiolm.data.formats.ctrg import load_split, make_split, read_reports_csv
from radiolm.data.formats.volumes import read_volume, write_nifti
from radiolm.data.labels import CHEXPERT_14
from radiolm.data.phantom.ct import generate_ct
from radiolm.errors import DataError

from .conftest import REPO

EXPERIMENTS: list[Path] = []  # the data fragments below are checked by instantiation, not through fit
SIZE = [16, 32, 32]


@pytest.fixture(scope="module")
def phantom_ct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("phantom-ct")
    generate_ct(root, n=12, seed=0, size=SIZE, progress=False)
    return root


def datamodule(root: Path, **kwargs: object) -> CTRGChestDataModule:
    options: dict[str, object] = {"num_workers": 0, "volume_size": SIZE, "batch_size": 3}
    dm = CTRGChestDataModule(str(root), **(options | kwargs))  # type: ignore[arg-type]
    dm.prepare_data()
    dm.setup("fit")
    return dm


def copy_of(root: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(root, target)
    return target


def test_batch_contract(phantom_ct: Path) -> None:
    dm = datamodule(phantom_ct)
    batch = next(iter(dm.train_dataloader()))
    assert batch.images is None and batch.view_mask is None
    assert batch.volumes is not None and batch.volumes.shape == (3, 1, 16, 32, 32)
    assert batch.volumes.dtype == torch.float32 and 0.0 <= float(batch.volumes.min()) < float(batch.volumes.max()) <= 1
    assert batch.labels.shape == (3, 14) and batch.labels.dtype == torch.long
    assert batch.domain == ["ct"] * 3 and batch.language == ["en"] * 3
    labels = {
        row["id"]: [int(row[c]) for c in CHEXPERT_14] for row in csv.DictReader((phantom_ct / "labels.csv").open())
    }
    assert batch.labels[0].tolist() == labels[batch.ids[0]]
    reports = read_reports_csv(phantom_ct / "reports.csv", "en")
    assert batch.reports[0] == reports[batch.ids[0]]["finding"]
    # dia_llama has no validation split: no validation (fit tests the last weights), never the test studies
    assert {s: len(d) for s, d in dm.datasets.items()} == {"train": 10, "val": 0, "test": 2}
    assert len(dm.val_dataloader()) == 0


def test_report_keys_and_cmrg_split(phantom_ct: Path, tmp_path: Path) -> None:
    root = copy_of(phantom_ct, tmp_path)
    dm = datamodule(root, split="cmrg", split_seed=3, report_key="report", preset="cmrg", volume_size=None)
    assert {s: len(d) for s, d in dm.datasets.items()} == {"train": 9, "val": 1, "test": 2}
    item = dm.datasets["train"][0]
    report = read_reports_csv(root / "reports.csv", "en")[item["id"]]
    assert item["report"] == f"{report['finding']} {report['impression']}"
    assert tuple(item["volume"].shape) == (1, 64, 224, 224)  # 10 x 11.25 mm phantom resampled to 5 x 1.5 x 1.5
    assert (root / "splits" / "cmrg-seed3.json").is_file()


def test_split_is_seeded_written_once_and_reused(phantom_ct: Path, tmp_path: Path) -> None:
    ids = [f"s{i:02d}" for i in range(50)]
    a, b, c = make_split(ids, "cmrg", 0), make_split(ids, "cmrg", 0), make_split(ids, "cmrg", 1)
    assert a == b and a != c and [len(a[s]) for s in ("train", "val", "test")] == [35, 5, 10]
    assert sorted(a["train"] + a["val"] + a["test"]) == ids
    assert [len(make_split(ids, "dia_llama", 0)[s]) for s in ("train", "val", "test")] == [40, 0, 10]
    root = copy_of(phantom_ct, tmp_path)
    split_path = root / "splits" / "dia_llama-seed0.json"
    split = json.loads(split_path.read_text())
    split["test"], split["train"] = split["train"][:2], split["train"][2:] + split["test"]  # a hand-made split
    split_path.write_text(json.dumps(split))
    dm = datamodule(root)
    assert sorted(e["id"] for e in dm.datasets["test"].entries) == sorted(split["test"])


def test_split_file_of_other_data_is_an_error(phantom_ct: Path, tmp_path: Path) -> None:
    root = copy_of(phantom_ct, tmp_path)
    path = root / "splits" / "dia_llama-seed0.json"
    split = json.loads(path.read_text())
    split["train"].append("not_a_study")
    path.write_text(json.dumps(split))
    with pytest.raises(
        DataError, match=r"dia_llama-seed0\.json: 1 studies not in reports\.csv \(e\.g\. \['not_a_study'\]\)"
    ):
        load_split(path, set(read_reports_csv(root / "reports.csv", "en")))


def test_missing_column_and_language_errors(phantom_ct: Path) -> None:
    with pytest.raises(DataError, match=r"reports\.csv: column\(s\) \['finding_zh', 'impression_zh'\] missing"):
        read_reports_csv(phantom_ct / "reports.csv", "zh")
    with pytest.raises(ValueError, match="report language 'fr'"):
        CTRGChestDataModule(str(phantom_ct), language="fr")  # type: ignore[arg-type]


def corrupt(root: Path, study: str, how: str) -> Path:
    """Break ``study``'s volume in one of the ways the validation must catch."""
    path = root / "volumes" / f"{study}.nii.gz"
    data = path.read_bytes()
    if how == "missing":
        path.unlink()
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "corrupt":
        path.write_bytes(b"\x1f\x8b" + bytes(200))
    elif how == "rank":
        path.unlink()
        path = root / "volumes" / f"{study}.npy"
        np.save(path, np.zeros((2, 8, 8, 8), np.float32))
    elif how == "nan":
        array = read_volume(path).array
        array[0, 0, 0] = np.nan
        write_nifti(path, array, (10.0, 11.25, 11.25))
    return path


@pytest.mark.parametrize("how", ["missing", "truncated", "corrupt", "rank", "nan"])
def test_bad_volume_names_file_and_study(phantom_ct: Path, tmp_path: Path, how: str) -> None:
    root = copy_of(phantom_ct, tmp_path)
    path = corrupt(root, "phantom_ct_00003", how)
    expected = {
        "missing": "volume not found",
        "truncated": "cannot read volume",
        "corrupt": "cannot read volume",
        "rank": "expected 3 axes",
        "nan": "1 NaN or infinite voxel",
    }[how]
    with pytest.raises(DataError) as error:
        datamodule(root)
    message = str(error.value)
    assert "entry 'phantom_ct_00003'" in message and str(path) in message and expected in message, message
    assert "skip_invalid: true" in message


def test_skip_invalid_drops_counts_and_lists(phantom_ct: Path, tmp_path: Path) -> None:
    root = copy_of(phantom_ct, tmp_path)
    corrupt(root, "phantom_ct_00003", "truncated")
    corrupt(root, "phantom_ct_00007", "missing")
    dm = datamodule(root, skip_invalid=True)
    assert sum(len(dm.datasets[s]) for s in ("train", "test")) == 10
    assert sorted(p.id for p in dm.problems) == ["phantom_ct_00003", "phantom_ct_00007"]
    listed = json.loads((root / "reports.invalid-entries.json").read_text())
    assert sorted(p["id"] for p in listed) == ["phantom_ct_00003", "phantom_ct_00007"]


def test_phantom_datamodule_builds_on_first_use_in_chinese(tmp_path: Path) -> None:
    dm = PhantomCTDataModule(str(tmp_path / "zh"), n=10, size=SIZE, language="zh", num_workers=0, batch_size=2)
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.test_dataloader()))
    assert batch.language == ["zh", "zh"] and batch.volumes is not None and batch.volumes.shape == (2, 1, 16, 32, 32)
    assert all("。" in text and " " not in text for text in batch.reports)
    made = (tmp_path / "zh" / "volumes" / "phantom_ct_00000.nii.gz").stat().st_mtime_ns
    PhantomCTDataModule(str(tmp_path / "zh"), n=10, size=SIZE, language="zh").prepare_data()  # same settings: kept
    assert (tmp_path / "zh" / "volumes" / "phantom_ct_00000.nii.gz").stat().st_mtime_ns == made


def make_download(root: Path) -> Path:
    """A CTRG-Chest-like download: slice-image folders (the release), plus one NIfTI and one .npz volume."""
    volumes = root / "volumes"
    for i in range(3):
        (volumes / f"case{i}").mkdir(parents=True)
        for k in range(6):
            slice_ = np.full((24, 20), 40 * k + i, dtype=np.uint8)
            Image.fromarray(slice_).save(volumes / f"case{i}" / f"case{i}_05_{k + 1:04d}_{k + 1:04d}.png")
    write_nifti(volumes / "case3.nii.gz", np.full((5, 24, 20), -500, np.int16), (5.0, 0.7, 0.7))
    np.savez(volumes / "case4.npz", volume=np.ones((5, 24, 20), np.float32), spacing=np.array([5.0, 0.7, 0.7]))
    with (root / "reports.csv").open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "finding", "impression"])
        for i in range(5):
            writer.writerow([f"case{i}", f"Finding {i}.", f"Impression {i}."])
    with (root / "labels.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["id", *CHEXPERT_14])
        for i in range(5):
            writer.writerow([f"case{i}", *([0] * 13), 1])
    return root


def test_prepare_ctrg_chest_from_download(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    download, out = make_download(tmp_path / "download"), tmp_path / "ctrg"
    main(["data", "prepare", "ctrg-chest", "--volumes", str(download / "volumes"), "--reports",
          str(download / "reports.csv"), "--labels", str(download / "labels.csv"), "--spacing", "5", "0.7", "0.7",
          "--split", "cmrg", "--seed", "0", "--out", str(out)])  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert summary["studies"] == 5 and summary["split"] == {"train": 3, "val": 1, "test": 1} and summary["labels"] == 5
    volume = read_volume(out / "volumes" / "case1.nii.gz")
    assert volume.array.shape == (6, 24, 20) and volume.spacing == pytest.approx((5.0, 0.7, 0.7))
    assert volume.array[:, 0, 0].tolist() == [1.0, 41.0, 81.0, 121.0, 161.0, 201.0]  # slices in numeric order
    assert read_volume(out / "volumes" / "case3.nii.gz").array.max() == -500
    dm = datamodule(out, split="cmrg")
    batch = next(iter(dm.test_dataloader()))
    assert batch.volumes is not None and batch.volumes.shape == (1, 1, 16, 32, 32)
    assert batch.labels[0, -1] == 1


def test_prepare_chinese_and_missing_volume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    download = make_download(tmp_path / "download")
    shutil.rmtree(download / "volumes" / "case2")
    args = ["data", "prepare", "ctrg-chest", "--volumes", str(download / "volumes"), "--reports",
            str(download / "reports.csv"), "--language", "zh", "--out", str(tmp_path / "zh")]  # fmt: skip
    with pytest.raises(SystemExit):
        main(args)
    assert "case2" in capsys.readouterr().err
    main([*args, "--skip-invalid"])
    assert json.loads(capsys.readouterr().out)["left_out"] == 1
    reports = read_reports_csv(tmp_path / "zh" / "reports.csv", "zh")
    assert sorted(reports) == ["case0", "case1", "case3", "case4"] and reports["case0"]["finding"] == "Finding 0."


@pytest.mark.parametrize("name", ["ctrg_chest", "phantom_ct"])
def test_data_yaml_instantiates(name: str, tmp_path: Path) -> None:
    from jsonargparse import ArgumentParser

    from radiolm.data.datamodules.base import ReportDataModule

    parser = ArgumentParser()
    parser.add_subclass_arguments(ReportDataModule, "data")
    config = yaml.safe_load((REPO / "experiments" / "data" / f"{name}.yaml").read_text())
    config["init_args"]["root"] = str(tmp_path / name)
    cfg = parser.parse_object({"data": config})
    dm = parser.instantiate_classes(cfg).data
    assert isinstance(dm, CTRGChestDataModule) and dm.root == tmp_path / name
    expected = (64, 256, 256) if name == "ctrg_chest" else (32, 64, 64)
    assert dm.volume_config.size == expected and dm.volume_config.intensity == "minmax"
