"""MIMIC-CXR: section parsing, the builder on small files in the official formats, and the DataModule.

No real MIMIC-CXR data is used: ``write_mimic`` writes a few made-up studies in the layout and formats of the
PhysioNet releases (MIMIC-CXR-JPG 2.0.0 ``files/p10/p10000032/s5.../<dicom_id>.jpg``, the gzipped split and
metadata CSVs with their real columns, MIMIC-CXR 2.0.0 free-text reports in a zip or a folder).
"""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from jsonargparse import ArgumentParser
from PIL import Image

from radiolm.cli import main
from radiolm.data.builders.mimic_cxr import (
    R2GEN_ENTRIES,
    build_annotation,
    extract_report,
    normalise_section_name,
    refers_to_prior,
    split_sections,
)
from radiolm.data.cleaning import clean_r2gengpt_mimic
from radiolm.data.datamodules.base import ReportDataModule
from radiolm.data.datamodules.mimic_cxr import MIMICCXRDataModule
from radiolm.data.transforms import ImageTransformConfig
from radiolm.errors import DataError

from .conftest import REPO

EXPERIMENTS: list[Path] = []  # no top-level experiment of its own; the data YAMLs are tested below

REPORT = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___F with new onset ascites  // eval for infection

 TECHNIQUE:  Chest PA and lateral

 COMPARISON:  None.

 FINDINGS:

 There is no focal consolidation, pleural effusion or pneumothorax.  Bilateral
 nodular opacities that most likely represent nipple shadows. The
 cardiomediastinal silhouette is normal.

 IMPRESSION:

 No acute cardiopulmonary process.
"""
PRIOR = """                                 FINAL REPORT
 INDICATION:  Shortness of breath.

 COMPARISON:  Chest radiograph ___.

 FINDINGS:
 Moderate right pleural effusion is unchanged.  Heart size is normal.

 IMPRESSION:
 Stable right effusion.
"""
IMPRESSION_ONLY = """                                 FINAL REPORT
 HISTORY:  Cough.

 COMPARISONS:  None available.

 IMPRESSON:  No acute cardiopulmonary process.
"""
NO_HEADERS = """                                 FINAL REPORT
 PORTABLE CHEST OF ___

 The lungs are clear.  There is no pleural effusion.
"""
TYPO = """                                 FINAL REPORT
 COMPARISONS:  No prior.

 FINDNGS:  Small left pleural effusion.  Mild cardiomegaly.

 IMPRESSION:
 Small left effusion.
"""
TYPO_FINDINGS = "Small left pleural effusion. Mild cardiomegaly."

METADATA_COLUMNS = [
    "dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition", "Rows", "Columns",
    "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning", "ViewCodeSequence_CodeMeaning",
    "PatientOrientationCodeSequence_CodeMeaning",
]  # fmt: skip
# (subject, study, split, [(dicom_id, ViewPosition)], report text or None for a missing file)
STUDIES = [
    ("10000032", "50414267", "train", [("d-lat-1", "LATERAL"), ("d-pa-1", "PA")], REPORT),
    ("10000032", "53189527", "train", [("d-ap-2", "AP")], PRIOR),
    ("10000764", "57375967", "train", [("d-lat-3", "LATERAL")], REPORT),
    ("10000764", "56699142", "train", [("d-pa-4", "PA")], None),
    ("11000011", "51000002", "validate", [("d-pa-5", "PA")], IMPRESSION_ONLY),
    ("11000011", "51000009", "validate", [("d-pa-8", "PA")], REPORT),
    ("12000020", "52000003", "test", [("d-ap-6", "AP"), ("d-ll-6", "LL")], TYPO),
    ("12000020", "52000004", "test", [("d-pa-7", "PA")], NO_HEADERS),
]


def write_mimic(root: Path, zip_reports: bool = True, studies: list = STUDIES) -> dict[str, Path]:  # type: ignore[type-arg]
    """The four inputs of ``radiolm data prepare mimic-cxr`` in their official formats, under ``root``."""
    jpg_root = root / "mimic-cxr-jpg" / "files"
    split_csv, metadata = root / "mimic-cxr-2.0.0-split.csv.gz", root / "mimic-cxr-2.0.0-metadata.csv.gz"
    reports_dir = root / "mimic-cxr-reports" / "files"
    root.mkdir(parents=True, exist_ok=True)
    with gzip.open(split_csv, "wt", newline="") as fs, gzip.open(metadata, "wt", newline="") as fm:
        split_writer, meta_writer = csv.writer(fs), csv.writer(fm)
        split_writer.writerow(["dicom_id", "study_id", "subject_id", "split"])
        meta_writer.writerow(METADATA_COLUMNS)
        for subject, study, split, dicoms, text in studies:
            folder = f"p{subject[:2]}/p{subject}/s{study}"
            for i, (dicom, view) in enumerate(dicoms):
                split_writer.writerow([dicom, study, subject, split])
                meaning = "postero-anterior" if view == "PA" else "antero-posterior" if view == "AP" else "lateral"
                meta_writer.writerow([dicom, subject, study, "CHEST (PA AND LAT)", view, 40, 32, "21800506",
                                      f"21371{i}.0", "CHEST (PA AND LAT)", meaning, "Erect"])  # fmt: skip
                (jpg_root / folder).mkdir(parents=True, exist_ok=True)
                Image.new("L", (32, 40), color=40 + 20 * i).save(jpg_root / folder / f"{dicom}.jpg", quality=90)
            if text is not None:
                (reports_dir / folder).parent.mkdir(parents=True, exist_ok=True)
                (reports_dir / f"{folder}.txt").write_text(text)
    reports: Path = reports_dir
    if zip_reports:
        reports = root / "mimic-cxr-reports.zip"
        with zipfile.ZipFile(reports, "w") as z:
            for path in sorted(reports_dir.rglob("*.txt")):
                z.write(path, f"files/{path.relative_to(reports_dir)}")
    return {"jpg_root": jpg_root, "reports": reports, "split_csv": split_csv, "metadata": metadata}


@pytest.fixture()
def mimic(tmp_path: Path) -> dict[str, Path]:
    return write_mimic(tmp_path / "raw")


# -- report sections --------------------------------------------------------------------------------------------------
def test_sections_of_a_report() -> None:
    sections = split_sections(REPORT)
    assert [name for name, _ in sections] == [
        "preamble", "examination", "indication", "technique", "comparison", "findings", "impression"
    ]  # fmt: skip
    assert dict(sections)["findings"] == (
        "There is no focal consolidation, pleural effusion or pneumothorax. Bilateral nodular opacities that most "
        "likely represent nipple shadows. The cardiomediastinal silhouette is normal."
    )
    assert extract_report(sections, "impression") == "No acute cardiopulmonary process."
    assert extract_report(sections, "both").endswith("silhouette is normal. No acute cardiopulmonary process.")


@pytest.mark.parametrize(
    ("written", "name"),
    [("COMPARISONS", "comparison"), ("IMPRESSON", "impression"), ("FINDNGS", "findings"), ("CONCLUSION", "impression"),
     ("PA AND LATERAL VIEWS OF THE CHEST", "findings"), ("REASON FOR EXAM", "indication"),
     ("FINAL ADDENDUM", "addendum"), ("TECHNIQUE", "technique"), ("EXAMINATION", "examination")],
)  # fmt: skip
def test_section_names(written: str, name: str) -> None:
    assert normalise_section_name(written) == name


def test_fallbacks() -> None:
    sections = split_sections(NO_HEADERS)
    assert [n for n, _ in sections] == ["full report", "last_paragraph"]
    assert extract_report(sections, "findings") is None
    assert extract_report(sections, "findings", fallback=True) == "The lungs are clear. There is no pleural effusion."
    only = split_sections(IMPRESSION_ONLY)
    assert extract_report(only, "findings") is None and extract_report(only, "both") == extract_report(
        only, "impression"
    )
    empty_findings = split_sections(" FINDINGS:\n\n IMPRESSION:  Clear lungs.\n")
    assert [n for n, _ in empty_findings] == ["preamble", "impression"]  # the empty findings section is removed


@pytest.mark.parametrize(
    ("text", "rule", "expected"),
    [(REPORT, "comparison", False), (PRIOR, "comparison", True), (IMPRESSION_ONLY, "comparison", False),
     (TYPO, "comparison", False), (REPORT, "phrases", False), (PRIOR, "phrases", True), (TYPO, "either", False),
     (" COMPARISON:  None.\n FINDINGS:  Effusion again seen.\n", "comparison", False),
     (" COMPARISON:  None.\n FINDINGS:  Effusion again seen.\n", "either", True)],
    ids=lambda v: str(v)[:12].strip() if isinstance(v, str) else str(v),
)  # fmt: skip
def test_prior_reference_rule(text: str, rule: str, expected: bool) -> None:
    sections = split_sections(text)
    assert refers_to_prior(sections, extract_report(sections, "findings") or "", rule) is expected


# -- the builder ------------------------------------------------------------------------------------------------------
def test_curated_subset(mimic: dict[str, Path]) -> None:
    """--views frontal --section findings --no-prior-reference: the two-stage paper's subset (§4)."""
    annotation, report = build_annotation(**mimic, section="findings", views="frontal", no_prior_reference=True,
                                          progress=False)  # fmt: skip
    assert {s: [e["id"] for e in v] for s, v in annotation.items()} == {
        "train": ["50414267"], "val": ["51000009"], "test": ["52000003"]
    }  # fmt: skip
    entry = annotation["train"][0]
    assert entry["image_path"] == ["p10/p10000032/s50414267/d-pa-1.jpg"] and entry["views"] == ["frontal"]
    assert entry["subject_id"] == "10000032" and entry["split"] == "train"
    assert entry["report"].startswith("There is no focal consolidation")
    assert entry["impression"] == "No acute cardiopulmonary process."
    assert annotation["test"][0]["report"] == TYPO_FINDINGS
    assert {d["study_id"]: d["reason"] for d in report["dropped"]} == {
        "53189527": "refers to a prior study",
        "57375967": "no frontal image",
        "56699142": "no report file",
        "51000002": "no findings section",
        "52000004": "no findings section",
    }
    assert report["entries"] == {"train": 1, "val": 1, "test": 1} and report["studies"] == 8


def test_all_views_per_image_from_a_folder(tmp_path: Path) -> None:
    inputs = write_mimic(tmp_path, zip_reports=False)
    annotation, report = build_annotation(**inputs, section="both", views="all", entries="image", progress=False)
    train = annotation["train"]
    assert [e["id"] for e in train] == ["d-pa-1", "d-lat-1", "d-ap-2", "d-lat-3"]  # frontal first within a study
    assert train[1]["views"] == ["lateral"] and train[0]["study_id"] == train[1]["study_id"] == "50414267"
    assert [e["id"] for e in annotation["val"]] == ["d-pa-5", "d-pa-8"]
    assert annotation["val"][0]["report"] == "No acute cardiopulmonary process."
    assert [e["id"] for e in annotation["test"]] == ["d-ap-6", "d-ll-6"]
    assert report["dropped_by_reason"] == {"no report file": 1, "no both section": 1}


def test_r2gen_layout(mimic: dict[str, Path]) -> None:
    """--layout r2gen: one entry per image of every view of the studies with findings, IMPRESSION + FINDINGS."""
    annotation, report = build_annotation(**mimic, layout="r2gen", progress=False)
    assert {s: [e["id"] for e in v] for s, v in annotation.items()} == {
        "train": ["d-pa-1", "d-lat-1", "d-ap-2", "d-lat-3"], "val": ["d-pa-8"], "test": ["d-ap-6", "d-ll-6"]
    }  # fmt: skip
    first = annotation["train"][0]
    assert first["report"] == (
        "IMPRESSION: No acute cardiopulmonary process. FINDINGS: There is no focal consolidation, pleural effusion "
        "or pneumothorax. Bilateral nodular opacities that most likely represent nipple shadows. The "
        "cardiomediastinal silhouette is normal."
    )
    assert first["image_path"] == ["p10/p10000032/s50414267/d-pa-1.jpg"] and first["study_id"] == "50414267"
    assert annotation["train"][2]["report"] == (  # no prior filter: R2Gen's entries keep such reports
        "IMPRESSION: Stable right effusion. FINDINGS: Moderate right pleural effusion is unchanged. Heart size is "
        "normal."
    )
    assert annotation["test"][1]["report"] == f"IMPRESSION: Small left effusion. FINDINGS: {TYPO_FINDINGS}"
    # an impression-only report and one without headers have no findings: not in R2Gen's entries
    assert {d["study_id"]: d["reason"] for d in report["dropped"]} == {
        "56699142": "no report file", "51000002": "no findings section", "52000004": "no findings section"
    }  # fmt: skip
    assert report["settings"]["layout"] == "r2gen" and report["settings"]["entries"] == "image"
    assert report["published_entries"] == R2GEN_ENTRIES == {"train": 270_790, "val": 2_130, "test": 3_858}
    # R2GenGPT's cleaner keeps the headers as Fig. 3 prints its ground truth
    assert clean_r2gengpt_mimic(annotation["test"][1]["report"]) == (
        "impression : small left effusion . findings : small left pleural effusion . mild cardiomegaly ."
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [({"section": "findings"}, "--layout r2gen builds --section impression_findings; drop --section findings"),
     ({"entries": "study"}, "--layout r2gen builds --entries image; drop --entries study"),
     ({"views": "frontal"}, "--layout r2gen builds --views all; drop --views frontal"),
     ({"no_prior_reference": True}, "--layout r2gen keeps R2Gen's entries; drop --no-prior-reference"),
     ({"layout": "r2gengpt"}, "--layout 'r2gengpt': choose one of \\['suite', 'r2gen'\\]")],
)  # fmt: skip
def test_r2gen_layout_refuses_what_it_fixes(mimic: dict[str, Path], options: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(DataError, match=message):
        build_annotation(**mimic, **{"layout": "r2gen", **options}, progress=False)


def test_suite_layout_takes_the_impression_findings_section(mimic: dict[str, Path]) -> None:
    """The r2gen report text is also a --section of the default layout (here one entry per study)."""
    annotation, _ = build_annotation(**mimic, section="impression_findings", progress=False)
    assert [e["id"] for e in annotation["val"]] == ["51000002", "51000009"]  # impression only is kept here
    assert annotation["val"][0]["report"] == "IMPRESSION: No acute cardiopulmonary process."


def test_missing_jpgs_are_counted(mimic: dict[str, Path]) -> None:
    (mimic["jpg_root"] / "p10/p10000032/s50414267/d-pa-1.jpg").unlink()
    annotation, report = build_annotation(**mimic, views="frontal", progress=False)
    assert "50414267" not in [e["id"] for e in annotation["train"]]
    assert {"study_id": "50414267", "subject_id": "10000032", "split": "train",
            "reason": "no frontal image (1 missing)"} in report["dropped"]  # fmt: skip
    assert report["missing_images"] == ["p10/p10000032/s50414267/d-pa-1.jpg"]


def test_leaking_split_file_is_an_error(tmp_path: Path) -> None:
    studies = [*STUDIES, ("10000032", "59999999", "test", [("d-pa-9", "PA")], REPORT)]
    inputs = write_mimic(tmp_path, studies=studies)
    with pytest.raises(DataError, match=r"mimic-cxr-2.0.0-split.csv.gz: 1 subject\(s\) in more than one split "
                                        r"\(10000032 in \['test', 'train'\]\)"):  # fmt: skip
        build_annotation(**inputs, progress=False)


def test_bad_input_files(mimic: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "split.csv"
    bad.write_text("dicom_id,study_id\nx,1\n")
    with pytest.raises(DataError, match=rf"{bad}: column\(s\) \['subject_id', 'split'\] missing"):
        build_annotation(**{**mimic, "split_csv": bad}, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=rf"{tmp_path / 'empty'}: no report files"):
        build_annotation(**{**mimic, "reports": tmp_path / "empty"}, progress=False)


# -- command + DataModule ---------------------------------------------------------------------------------------------
def prepare(inputs: dict[str, Path], out: Path, *extra: str) -> None:
    files = [f"--{key.replace('_', '-')}={path}" for key, path in inputs.items()]
    main(["data", "prepare", "mimic-cxr", *files, "--out", str(out), *extra])


def test_command_and_datamodule(mimic: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "mimic_cxr"
    prepare(mimic, out, "--section", "impression")
    assert (out / "images").resolve() == mimic["jpg_root"].resolve()
    built = json.loads((out / "build-report.json").read_text())
    assert built["entries"] == {"train": 3, "val": 2, "test": 1}
    dm = MIMICCXRDataModule(str(out / "annotation.json"), cleaning="r2gen_mimic", max_views=2, num_workers=0,
                            batch_size=2, image_transform=ImageTransformConfig(16))  # fmt: skip
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert batch.ids == ["51000002", "51000009"] and batch.reports == ["no acute cardiopulmonary process ."] * 2
    assert batch.images is not None and batch.images.shape == (2, 1, 3, 16, 16)
    test = next(iter(dm.test_dataloader()))
    assert test.views == [["frontal", "lateral"]] and test.view_mask is not None and test.view_mask.all()


def test_r2gen_annotation_as_distributed(tmp_path: Path, mimic: dict[str, Path]) -> None:
    """R2Gen's file: {train, val, test}, one entry per image (id = dicom_id), image_path a list; read unchanged."""
    entry = {"id": "d-pa-1", "study_id": 50414267, "subject_id": 10000032, "report": "No acute process.",
             "image_path": ["p10/p10000032/s50414267/d-pa-1.jpg"], "split": "train"}  # fmt: skip
    second = {**entry, "id": "d-lat-1", "image_path": ["p10/p10000032/s50414267/d-lat-1.jpg"]}
    test = {**entry, "id": "d-pa-7", "subject_id": 12000020, "split": "test",
            "image_path": ["p12/p12000020/s52000004/d-pa-7.jpg"]}  # fmt: skip
    path = tmp_path / "annotation.json"
    path.write_text(json.dumps({"train": [entry, second], "val": [], "test": [test]}))
    dm = MIMICCXRDataModule(str(path), image_root=str(mimic["jpg_root"]), cleaning="r2gengpt_mimic", num_workers=0,
                            image_transform=ImageTransformConfig(16))  # fmt: skip
    dm.setup("fit")
    assert [dm.datasets["train"][i]["id"] for i in range(2)] == ["d-pa-1", "d-lat-1"]
    assert dm.datasets["train"][0]["report"] == "no acute process ."

    leaking = {**test, "subject_id": 10000032}
    path.write_text(json.dumps({"train": [entry, second], "val": [], "test": [leaking]}))
    for skip in (False, True):  # leakage is never dropped: it would change the split
        dm = MIMICCXRDataModule(str(path), image_root=str(mimic["jpg_root"]), skip_invalid=skip, num_workers=0)
        with pytest.raises(DataError, match=rf"{path}: patient leakage: 1 subject_id\(s\) .*subject 10000032 in "
                                            r"\['test', 'train'\]"):  # fmt: skip
            dm.setup("fit")


DATA_YAMLS = [
    ("mimic_cxr.yaml", "mimic_cxr", ("--section", "both")),
    ("mimic_cxr_curated.yaml", "mimic_cxr_curated", ("--views", "frontal", "--no-prior-reference")),
]


def build_for(data_yaml: str, folder: str, extra: tuple[str, ...], workdir: Path) -> Path:
    """The builder's output where ``experiments/data/<data_yaml>`` expects it (workdir is the cwd)."""
    target = workdir / "data" / folder
    if target.exists():
        shutil.rmtree(target)  # the workdir fixture copies the phantom into data/mimic_cxr
    prepare(write_mimic(workdir / "raw"), target, *extra)
    return REPO / "experiments" / "data" / data_yaml


@pytest.mark.parametrize(("data_yaml", "folder", "extra"), DATA_YAMLS, ids=[y for y, _, _ in DATA_YAMLS])
def test_data_yaml(data_yaml: str, folder: str, extra: tuple[str, ...], workdir: Path) -> None:
    """Each MIMIC-CXR data YAML instantiates (as the CLI does) and reads the builder's annotation."""
    data = build_for(data_yaml, folder, extra, workdir)
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(ReportDataModule, "data")
    config = parser.parse_args([f"--data={data}", "--data.init_args.num_workers=0"])
    dm = parser.instantiate_classes(config).data
    assert isinstance(dm, MIMICCXRDataModule) and dm.max_views == 1
    dm.setup("fit")
    batch = next(iter(dm.test_dataloader()))
    assert batch.ids == ["52000003"] and batch.images is not None and batch.images.shape[:2] == (1, 1)
    expected = "small left pleural effusion . mild cardiomegaly ." if "curated" not in folder else TYPO_FINDINGS
    assert batch.reports[0].startswith(expected)


def test_r2gen_layout_command_and_data_yaml(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`radiolm data prepare mimic-cxr --layout r2gen` where data/mimic_cxr_r2gen.yaml (R2GenGPT's MIMIC-CXR
    experiments) reads it: per-image entries, R2GenGPT's cleaning with the headers kept."""
    data = build_for("mimic_cxr_r2gen.yaml", "mimic_cxr_r2gen", ("--layout", "r2gen"), workdir)
    printed = capsys.readouterr().out
    assert "{'train': 4, 'val': 1, 'test': 2} entries of 8 studies" in printed
    assert f"R2Gen's annotation (R2GenGPT §4.1) has {R2GEN_ENTRIES} entries" in printed
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(ReportDataModule, "data")
    config = parser.parse_args([f"--data={data}", "--data.init_args.num_workers=0"])
    dm = parser.instantiate_classes(config).data
    assert isinstance(dm, MIMICCXRDataModule) and dm.cleaning == "r2gengpt_mimic"
    dm.setup("fit")
    batch = next(iter(dm.test_dataloader()))
    assert batch.ids == ["d-ap-6", "d-ll-6"] and batch.views == [["frontal"], ["lateral"]]
    assert batch.reports == ["impression : small left effusion . findings : small left pleural effusion . "
                             "mild cardiomegaly ."] * 2  # fmt: skip


@pytest.mark.slow
def test_curated_yaml_through_the_cli(tiny_workdir: Path) -> None:
    """The curated data YAML with an R2GenGPT experiment through the real CLI: fit + test, one batch each."""
    workdir = tiny_workdir
    data = build_for(*DATA_YAMLS[1], workdir)
    experiment = REPO / "experiments" / "r2gengpt_shallow_mimic_cxr.yaml"
    main(["fit", "-c", str(experiment), f"--data={data}", "-c", str(REPO / "tests" / "conf" / experiment.name)])
    lines = sorted(workdir.glob("predictions-test-*.jsonl"))[-1].read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["52000003"]
