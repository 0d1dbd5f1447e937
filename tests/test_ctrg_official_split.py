"""Dia-LLaMA's official CTRG-Chest split (``CTRG_{train,val,test}.csv``) as the split of the CTRG data path.

The CSVs are written here in the format of Dia-LLaMA's repository (``src/Dataset/my_data_csv/``: header ``id,
image_path, impression, finding``, ``image_path = ./Chest_new_1_volume/<id>.nii.gz``, quoted report text) for a few
phantom CT studies; no file of the repository is used.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from radiolm.cli import main
from radiolm.data.datamodules.ctrg_chest import CTRGChestDataModule
from radiolm.data.formats.ctrg import OFFICIAL_SPLIT_FILES, load_split, read_reports_csv, read_split_csvs
from radiolm.data.phantom.ct import generate_ct
from radiolm.errors import DataError

from .test_ctrg_chest import make_download

EXPERIMENTS: list[Path] = []  # data only; experiments/data/ctrg_chest.yaml is instantiated in test_ctrg_chest.py
SIZE = [8, 16, 16]
IDS = [f"phantom_ct_{i:05d}" for i in range(8)]
OFFICIAL = {"train": IDS[:5], "val": IDS[5:6], "test": IDS[6:]}


@pytest.fixture(scope="module")
def phantom_ct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("phantom-ct-official")
    generate_ct(root, n=len(IDS), seed=0, size=SIZE, progress=False)
    return root


def write_split_csvs(folder: Path, splits: dict[str, list[str]], reports: dict[str, dict[str, str]]) -> Path:
    """``CTRG_{train,val,test}.csv`` as Dia-LLaMA's repository ships them, for the studies in ``splits``."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, name in OFFICIAL_SPLIT_FILES.items():
        with (folder / name).open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["id", "image_path", "impression", "finding"])
            for study in splits[split]:
                report = reports.get(study, {"finding": "Thorax is symmetrical, no mass.", "impression": "Normal."})
                writer.writerow([study, f"./Chest_new_1_volume/{study}.nii.gz", report["impression"],
                                 report["finding"]])  # fmt: skip
    return folder


def datamodule(root: Path, split_path: Path) -> CTRGChestDataModule:
    dm = CTRGChestDataModule(str(root), split_path=str(split_path), num_workers=0, volume_size=SIZE, batch_size=2)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_datamodule_reads_the_official_csvs(phantom_ct: Path, tmp_path: Path) -> None:
    reports = read_reports_csv(phantom_ct / "reports.csv", "en")
    folder = write_split_csvs(tmp_path / "my_data_csv", OFFICIAL, reports)
    before = sorted(p.name for p in folder.iterdir())
    dm = datamodule(phantom_ct, folder)
    assert {s: [e["id"] for e in d.entries] for s, d in dm.datasets.items()} == OFFICIAL
    # the official split has a real validation part (no test study): validation runs on it, never on test
    batch = next(iter(dm.val_dataloader()))
    assert batch.ids == OFFICIAL["val"] and batch.reports == [reports[IDS[5]]["finding"]]
    assert sorted(p.name for p in folder.iterdir()) == before  # read, never written


def test_split_csvs_in_file_order_with_where(tmp_path: Path) -> None:
    folder = write_split_csvs(tmp_path, {"train": ["7", "3"], "val": ["11"], "test": ["5"]}, {})
    splits, where = read_split_csvs(folder)
    assert splits == {"train": ["7", "3"], "val": ["11"], "test": ["5"]}
    assert where["3"] == f"{folder / 'CTRG_train.csv'}:3" and where["5"] == f"{folder / 'CTRG_test.csv'}:2"


def test_unknown_id_names_the_file_and_line(phantom_ct: Path, tmp_path: Path) -> None:
    folder = write_split_csvs(tmp_path, {**OFFICIAL, "test": [IDS[6], "1805", IDS[7]]}, {})
    with pytest.raises(DataError, match=rf"{folder / 'CTRG_test.csv'}:3: id '1805' is not a study of reports.csv "
                                        r"\(1 such ids, e.g. \['1805'\]\)"):  # fmt: skip
        datamodule(phantom_ct, folder)


@pytest.mark.parametrize(
    ("splits", "message"),
    [({**OFFICIAL, "test": IDS[6:7]}, r"1 studies of reports.csv are in none of \['CTRG_train.csv', 'CTRG_val.csv', "
                                      r"'CTRG_test.csv'\] \(e.g. \['phantom_ct_00007'\]\)"),
     ({**OFFICIAL, "val": [IDS[5], IDS[0]]}, r"CTRG_val.csv:3: id 'phantom_ct_00000' is listed again \(first at "
                                             r".*CTRG_train.csv:2\)"),
     ({**OFFICIAL, "train": [*IDS[:5], ""]}, r"CTRG_train.csv:7: empty id")],
    ids=["unlisted", "in-two-files", "empty-id"],
)  # fmt: skip
def test_bad_split_csvs(phantom_ct: Path, tmp_path: Path, splits: dict[str, list[str]], message: str) -> None:
    folder = write_split_csvs(tmp_path, splits, {})
    with pytest.raises(DataError, match=message):
        load_split(folder, set(IDS))


def test_missing_file_or_id_column(tmp_path: Path) -> None:
    folder = write_split_csvs(tmp_path, OFFICIAL, {})
    (folder / "CTRG_val.csv").unlink()
    with pytest.raises(DataError, match=rf"{folder / 'CTRG_val.csv'}: split file not found; .*CTRG_train.csv, "
                                        r"CTRG_val.csv, CTRG_test.csv"):  # fmt: skip
        load_split(folder, set(IDS))
    (folder / "CTRG_val.csv").write_text("study,finding\n1,Normal.\n")
    with pytest.raises(DataError, match=rf"{folder / 'CTRG_val.csv'}: no 'id' column"):
        load_split(folder, set(IDS))


def test_prepare_with_the_official_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``radiolm data prepare ctrg-chest --split-csv-dir``: the CSVs' ids become splits/dia_llama_official.json,
    which the DataModule reads; an id not in the reports stops the build naming the CSV and line."""
    download, out = make_download(tmp_path / "download"), tmp_path / "ctrg"
    splits = {"train": ["case0", "case2", "case4"], "val": ["case1"], "test": ["case3"]}
    folder = write_split_csvs(tmp_path / "my_data_csv", splits, {})
    args = ["data", "prepare", "ctrg-chest", "--volumes", str(download / "volumes"), "--reports",
            str(download / "reports.csv"), "--out", str(out)]  # fmt: skip
    main([*args, "--split-csv-dir", str(folder)])
    summary = json.loads(capsys.readouterr().out)
    assert summary["split"] == {"train": 3, "val": 1, "test": 1}
    assert summary["split_file"] == str(out / "splits" / "dia_llama_official.json")
    written = json.loads((out / "splits" / "dia_llama_official.json").read_text())
    assert written == {"scheme": "dia_llama_official", "seed": None, **splits}
    dm = CTRGChestDataModule(str(out), split_path=summary["split_file"], num_workers=0, volume_size=SIZE)
    dm.setup("fit")
    assert [e["id"] for e in dm.datasets["val"].entries] == ["case1"]

    shutil.rmtree(out)
    write_split_csvs(folder, {**splits, "test": ["case3", "case9"]}, {})
    with pytest.raises(SystemExit):
        main([*args, "--split-csv-dir", str(folder)])
    err = capsys.readouterr().err
    assert f"{folder / 'CTRG_test.csv'}:3: id 'case9' is not a study of reports.csv" in err
    assert not (out / "volumes").exists()  # checked before any volume is converted
