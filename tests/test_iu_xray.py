"""IU-Xray: the builder from Open-i XML (7 real report files, fake PNGs), the DataModule, the real-XML check (slow).

The slow test downloads the ``torchxrayvision`` wheel once (PyPI; cached under ``$RADIOLM_CACHE/wheels``), builds
the R2Gen split from its ``NLMCXR_reports.tgz`` and checks it against R2Gen's own ``annotation.json``: the pinned
digest is of ``{"train": [{id, report, image_path, split}, ...], ...}`` serialised as R2Gen's file is
(``json.dumps`` defaults), 1,008,692 characters, the exact size of R2Gen's published file, whose text at offsets
0, 16,000 and 992,692 was compared with it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from radiolm.cli import main
from radiolm.data.builders.iu_xray import (
    build_iu_xray,
    load_r2gen_split,
    parse_report_xml,
    random_split,
    read_iu_reports,
)
from radiolm.data.datamodules.iu_xray import IUXrayDataModule
from radiolm.data.transforms import ImageTransformConfig
from radiolm.errors import DataError, RadioLMError

from .conftest import CONF, REPO

REPORTS = REPO / "tests/data/iu_xray_reports"
SPLIT = REPO / "tests/data/iu_xray_split_sample.json"
EXPERIMENT = REPO / "experiments/r2gengpt_shallow_iu_xray.yaml"
DATA_YAML = REPO / "experiments/data/iu_xray.yaml"
R2GEN_DIGEST = "56cdca10b3a0be7500da93dd7df5f99e6d6d4ef4d68ba318a75f22e59e422b13"
FINDINGS_2 = (  # 2.xml, unmodified
    "Borderline cardiomegaly. Midline sternotomy XXXX. Enlarged pulmonary arteries. Clear lungs. "
    "Inferior XXXX XXXX XXXX."
)


def fake_png_folder(root: Path, names: list[str]) -> Path:
    """An ``NLMCXR_png`` stand-in: one small grey PNG per image name, each a different shade."""
    root.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        Image.new("L", (40, 48), color=10 + 20 * k).save(root / f"{name}.png")
    return root


def image_names() -> list[str]:
    return [name for study in read_iu_reports(REPORTS, progress=False) for name in study.images]


def test_parse_report_xml() -> None:
    study = parse_report_xml((REPORTS / "ecgen-radiology/3912.xml").read_bytes(), "ecgen-radiology/3912.xml")
    assert study.number == 3912
    assert study.id == "CXR3912_IM-1988"  # from the first image only: the other two have another prefix
    assert study.images == ["CXR3912_IM-1988-1001", "CXR3912_IM-1988-2001-0001", "CXR3912_IM-1988-2001-0002"]
    assert study.sections["impression"].startswith("1. Exam somewhat limited")
    assert study.mesh == {
        "major": [
            "Technical Quality of Image Unsatisfactory",
            "Costophrenic Angle/obscured",
            "Costophrenic Angle/sulcus/posterior/obscured",
            "Cardiomegaly/mild",
        ],
        "automatic": ["Cardiomegaly"],
    }
    with pytest.raises(DataError, match=r"broken/7\.xml: not valid XML"):
        parse_report_xml(b"<eCitation>", "broken/7.xml")


def test_build_r2gen_split_annotation_only(tmp_path: Path) -> None:
    summary = build_iu_xray(REPORTS, tmp_path, split_file=SPLIT, progress=False)
    annotation = json.loads((tmp_path / "annotation.json").read_text())
    assert {s: [e["id"] for e in annotation[s]] for s in annotation} == json.loads(SPLIT.read_text())
    entry = annotation["test"][0]
    assert entry["report"] == FINDINGS_2 == entry["findings"]  # the FINDINGS text as written (R2Gen)
    assert entry["image_path"] == ["CXR2_IM-0652/0.png", "CXR2_IM-0652/1.png"]
    assert entry["split"] == "test" and entry["report_file"] == "2.xml"
    assert entry["mesh"]["automatic"] == ["sternotomy"]
    assert annotation["train"][1]["source_images"] == ["CXR3912_IM-1988-1001.png", "CXR3912_IM-1988-2001-0001.png"]
    assert summary["studies"] == {"train": 2, "val": 1, "test": 1}
    assert summary["report_files"] == 7
    # 44.xml has one image, 156.xml none; 3.xml has two but an empty FINDINGS.
    assert summary["dropped"] == {"too_few_images": 2, "empty_findings": 1, "missing_images": 0}
    assert summary["dropped_ids"]["empty_findings"] == ["CXR3_IM-1384"]
    assert not (tmp_path / "images").exists()


def test_tgz_equals_folder_and_sections(tmp_path: Path) -> None:
    tgz = tmp_path / "NLMCXR_reports.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(REPORTS / "ecgen-radiology", arcname="ecgen-radiology")
    build_iu_xray(REPORTS, tmp_path / "a", split_file=SPLIT, progress=False)
    build_iu_xray(tgz, tmp_path / "b", split_file=SPLIT, progress=False)
    assert (tmp_path / "a/annotation.json").read_text() == (tmp_path / "b/annotation.json").read_text()
    build_iu_xray(tgz, tmp_path / "c", split_file=SPLIT, section="both", progress=False)
    both = json.loads((tmp_path / "c/annotation.json").read_text())["test"][0]["report"]
    assert both == FINDINGS_2 + " No acute pulmonary findings."


def test_build_links_or_copies_images(tmp_path: Path) -> None:
    png = fake_png_folder(tmp_path / "NLMCXR_png", image_names())
    build_iu_xray(REPORTS, tmp_path / "linked", images=png, split_file=SPLIT, progress=False)
    first, second = tmp_path / "linked/images/CXR3912_IM-1988/0.png", tmp_path / "linked/images/CXR3912_IM-1988/1.png"
    assert first.is_symlink() and first.resolve() == (png / "CXR3912_IM-1988-1001.png").resolve()
    assert second.resolve() == (png / "CXR3912_IM-1988-2001-0001.png").resolve()
    assert len(list((tmp_path / "linked/images").glob("*/*.png"))) == 8
    build_iu_xray(REPORTS, tmp_path / "copied", images=png, split_file=SPLIT, copy=True, progress=False)
    copied = tmp_path / "copied/images/CXR2_IM-0652/1.png"
    assert not copied.is_symlink() and copied.read_bytes() == (png / "CXR2_IM-0652-2001.png").read_bytes()


def test_missing_images_stop_or_are_dropped(tmp_path: Path) -> None:
    png = fake_png_folder(tmp_path / "NLMCXR_png", image_names())
    (png / "CXR2056_IM-0694-1001-0002.png").unlink()
    with pytest.raises(DataError, match=r"1 image\(s\) of 1 studies missing, e.g. \['CXR2056_IM-0694-1001-0002.png'\]"):
        build_iu_xray(REPORTS, tmp_path / "out", images=png, split_file=SPLIT, progress=False)
    summary = build_iu_xray(
        REPORTS, tmp_path / "out", images=png, split_file=SPLIT, skip_missing_images=True, progress=False
    )
    assert summary["studies"] == {"train": 2, "val": 0, "test": 1}
    assert summary["dropped_ids"]["missing_images"] == ["CXR2056_IM-0694-1001"]
    assert summary["dropped_in_split"] == ["CXR2056_IM-0694-1001"]


def test_bad_inputs_name_what_to_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"2951 split id\(s\) match no report .* use the complete NLMCXR_reports"):
        build_iu_xray(REPORTS, tmp_path, progress=False)  # the shipped R2Gen split on 7 files
    with pytest.raises(DataError, match="no such file or folder"):
        build_iu_xray(tmp_path / "nothing.tgz", tmp_path, progress=False)
    with pytest.raises(DataError, match="no report XML files found"):
        build_iu_xray(tmp_path, tmp_path / "out", progress=False)
    with pytest.raises(DataError, match="use it with --split r2gen"):
        build_iu_xray(REPORTS, tmp_path, split="random", split_file=SPLIT, progress=False)
    with pytest.raises(DataError, match="--section 'indication'"):
        build_iu_xray(REPORTS, tmp_path, section="indication", progress=False)


def test_random_split_is_seeded_7_1_2(tmp_path: Path) -> None:
    ids = [f"CXR{k}_IM-{k:04d}" for k in range(2955)]
    split = random_split(ids, seed=3)
    assert [len(split[s]) for s in ("train", "val", "test")] == [2069, 296, 590]
    assert random_split(list(reversed(ids)), seed=3) == split
    assert random_split(ids, seed=4)["test"] != split["test"]
    assert sorted(split["train"] + split["val"] + split["test"]) == sorted(ids)
    summary = build_iu_xray(REPORTS, tmp_path, split="random", seed=0, min_images=1, progress=False)
    # 1, 2, 44 (one image), 2056, 3912 have a FINDINGS text: 5 studies -> 4 / 1 / 0 (round half up).
    assert summary["studies"] == {"train": 4, "val": 1, "test": 0}
    entries = json.loads((tmp_path / "annotation.json").read_text())
    single = [e for s in entries.values() for e in s if e["id"] == "CXR44_IM-2078"]
    assert single[0]["image_path"] == ["CXR44_IM-2078/0.png"]


def test_shipped_r2gen_split() -> None:
    split = load_r2gen_split()
    assert {s: len(v) for s, v in split.items()} == {"train": 2069, "val": 296, "test": 590}
    assert split["train"][0] == "CXR2384_IM-0942" and split["val"][1] == "CXR2056_IM-0694-1001"
    assert split == json.loads((REPO / "radiolm/data/splits/iu_xray_r2gen_split.json").read_text())
    assert not set(split["val"]) & set(split["test"])  # checkpoint selection never sees a test study


def test_prepare_command_through_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = fake_png_folder(tmp_path / "NLMCXR_png", image_names())
    out = tmp_path / "iu"
    argv = ["--reports", str(REPORTS), "--images", str(png), "--split-file", str(SPLIT), "--out", str(out)]
    main(["data", "prepare", "iu-xray", *argv, "--no-progress"])
    printed = capsys.readouterr().out
    assert "studies: train 2, val 1, test 1 (4)" in printed
    assert "left out: 2 too few images, 1 empty findings, 0 missing images" in printed
    assert json.loads((out / "prepare_summary.json").read_text())["studies"]["train"] == 2


def built_iu(tmp_path: Path) -> Path:
    png = fake_png_folder(tmp_path / "NLMCXR_png", image_names())
    build_iu_xray(REPORTS, tmp_path / "iu", images=png, split_file=SPLIT, progress=False)
    return tmp_path / "iu/annotation.json"


def test_datamodule_cleans_reports_and_takes_1_or_2_views(tmp_path: Path) -> None:
    annotation = built_iu(tmp_path)
    small = ImageTransformConfig(size=32)
    dm = IUXrayDataModule(str(annotation), batch_size=2, num_workers=0, image_transform=small)
    dm.setup("fit")
    dm.setup("test")  # a second setup does not clean twice
    batch = next(iter(dm.test_dataloader()))
    assert batch.ids == ["CXR2_IM-0652"]
    assert batch.reports == [
        "borderline cardiomegaly . midline sternotomy xxxx . enlarged pulmonary arteries . clear lungs . "
        "inferior xxxx xxxx xxxx ."
    ]
    assert batch.images is not None and batch.images.shape == (1, 2, 3, 32, 32)
    assert batch.view_mask.tolist() == [[True, True]]
    # the two views are the two (differently shaded) source images, in XML order
    assert not torch.equal(batch.images[0, 0], batch.images[0, 1])
    one = IUXrayDataModule(str(annotation), cleaning="none", max_views=1, num_workers=0, image_transform=small)
    one.setup("test")
    batch = next(iter(one.test_dataloader()))
    assert batch.reports == [FINDINGS_2] and batch.images is not None and batch.images.shape[1] == 1
    with pytest.raises(RadioLMError, match="max_views 3"):
        IUXrayDataModule(str(annotation), max_views=3)
    with pytest.raises(RadioLMError, match="cleaning 'r2gen'"):
        IUXrayDataModule(str(annotation), cleaning="r2gen")


def test_data_yaml_builds_the_datamodule(tmp_path: Path) -> None:
    """experiments/data/iu_xray.yaml names IUXrayDataModule with R2Gen's cleaning and both views."""
    fragment = yaml.safe_load(DATA_YAML.read_text())
    module_name, class_name = fragment["class_path"].rsplit(".", 1)
    assert getattr(importlib.import_module(module_name), class_name) is IUXrayDataModule
    assert fragment["init_args"]["cleaning"] == "r2gen_iu" and fragment["init_args"]["max_views"] == 2
    args = {**fragment["init_args"], "annotation_path": str(built_iu(tmp_path)), "num_workers": 0}
    args["image_root"] = str(tmp_path / "iu/images")
    dm = IUXrayDataModule(**args, image_transform=ImageTransformConfig(size=32))
    dm.setup("fit")
    assert [e["report"][-2:] for e in dm.datasets["val"].entries] == [" ."]


@pytest.mark.slow
def test_data_yaml_runs_r2gengpt_with_cleaned_references(tiny_workdir: Path) -> None:
    """experiments/data/iu_xray.yaml under R2GenGPT through the CLI (phantom studies in data/iu_xray), ~40 s."""
    main(["fit", "-c", str(EXPERIMENT), "--data", str(DATA_YAML), "-c", str(CONF / EXPERIMENT.name)])
    workdir = tiny_workdir
    lines = sorted(workdir.glob("predictions-test-*.jsonl"))[-1].read_text().splitlines()
    references = [json.loads(line)["reference"] for line in lines if line]
    # the phantom's reports are written in sentence case; r2gen_iu lower-cases them and ends them in " ."
    assert references and all(r.endswith(" .") and r == r.lower() for r in references)


def torchxrayvision_reports() -> Path:
    """``NLMCXR_reports.tgz`` from the torchxrayvision wheel, downloaded once into the cache (skip if offline)."""
    cache = Path(os.environ.get("RADIOLM_CACHE", Path.home() / ".cache" / "radiolm"))
    target = cache / "iu_xray" / "NLMCXR_reports.tgz"
    if target.is_file():
        return target
    wheels = cache / "wheels"
    found = sorted(wheels.glob("torchxrayvision-*.whl"))
    if not found:
        command = [sys.executable, "-m", "pip", "download", "torchxrayvision", "--no-deps", "-d", str(wheels), "-q"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        found = sorted(wheels.glob("torchxrayvision-*.whl"))
        if done.returncode != 0 or not found:
            pytest.skip(f"cannot download the torchxrayvision wheel from PyPI: {done.stderr.strip()[-300:]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        zipfile.ZipFile(found[-1]) as wheel,
        wheel.open("torchxrayvision/data/NLMCXR_reports.tgz") as src,
        target.open("wb") as dst,
    ):
        shutil.copyfileobj(src, dst)
    return target


@pytest.mark.slow
def test_real_reports_give_r2gen_annotation(tmp_path: Path) -> None:
    """R2Gen's 2,069 / 296 / 590 studies with R2Gen's report text, from the real Open-i XML (fake PNGs)."""
    tgz = torchxrayvision_reports()
    studies = read_iu_reports(tgz, progress=False)
    assert len(studies) == 3955
    png = tmp_path / "NLMCXR_png"
    png.mkdir()
    Image.new("L", (8, 8), color=128).save(tmp_path / "grey.png")
    for name in {name for study in studies for name in study.images[:2]}:
        os.symlink(tmp_path / "grey.png", png / f"{name}.png")
    summary = build_iu_xray(tgz, tmp_path / "iu", images=png, progress=False)
    assert summary["studies"] == {"train": 2069, "val": 296, "test": 590}
    assert summary["dropped"] == {"too_few_images": 550, "empty_findings": 450, "missing_images": 0}
    annotation = json.loads((tmp_path / "iu/annotation.json").read_text())
    split = load_r2gen_split()
    assert {s: [e["id"] for e in annotation[s]] for s in split} == split
    r2gen = {s: [{k: e[k] for k in ("id", "report", "image_path", "split")} for e in annotation[s]] for s in split}
    text = json.dumps(r2gen)
    assert len(text) == 1_008_692
    assert hashlib.sha256(text.encode()).hexdigest() == R2GEN_DIGEST
    assert len(list((tmp_path / "iu/images").glob("*/*.png"))) == 2 * 2955
    reports = {e["id"]: e["report"] for s in split for e in annotation[s]}
    assert reports["CXR2384_IM-0942"] == (
        "The heart size and pulmonary vascularity appear within normal limits. A large hiatal hernia is noted. The "
        "lungs are free of focal airspace disease. No pneumothorax or pleural effusion is seen. Degenerative changes "
        "are present in the spine."
    )
    assert reports["CXR2259_IM-0850"].startswith("Bilateral glenohumeral degenerative joint disease.")
    dm = IUXrayDataModule(str(tmp_path / "iu/annotation.json"), num_workers=0)
    dm.setup("test")
    cleaned = {e["id"]: e["report"] for e in dm.datasets["test"].entries}
    assert cleaned["CXR2529_IM-1044"].startswith(
        "the lungs are clear bilaterally . specifically no evidence of focal consolidation pneumothorax or pleural "
        "effusion . cardio mediastinal silhouette"
    )
