"""The phantom chest CT: sampling, voxels that carry each finding, CTRG-style reports, labels, files, command."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from radiolm.cli import main
from radiolm.data.formats.volumes import read_volume
from radiolm.data.labels import CHEXPERT_14
from radiolm.data.phantom.ct import generate_ct, sample_ct_study
from radiolm.data.phantom.ct_render import ct_spacing, render_ct
from radiolm.data.phantom.grammar_ct import ct_spec_labels, write_ct_report
from radiolm.data.phantom.specs import CTStudySpec

SIZE = (32, 64, 64)
NORMAL = CTStudySpec()


def render(spec: CTStudySpec, size: tuple[int, int, int] = SIZE) -> np.ndarray:
    return render_ct(spec, np.random.default_rng(7), size).astype(np.float32)


def labels_of(spec: CTStudySpec) -> dict[str, int]:
    return dict(zip(CHEXPERT_14, ct_spec_labels(spec), strict=True))


def test_render_is_int16_hu_and_deterministic() -> None:
    a, b = render_ct(NORMAL, np.random.default_rng(0), SIZE), render_ct(NORMAL, np.random.default_rng(0), SIZE)
    assert a.dtype == np.int16 and a.shape == SIZE and np.array_equal(a, b)
    assert a.min() >= -1024 and a.max() <= 3071
    lung = (a > -950) & (a < -750)
    assert 0.08 < lung.mean() < 0.3  # the lungs are a good part of the volume
    assert ct_spacing(SIZE) == (10.0, 5.625, 5.625) and ct_spacing((64, 256, 256)) == (5.0, 1.4062, 1.4062)


# Each finding against the same study without it (same nuisance): the voxels change where the finding is.
FINDINGS = {
    "cardiomegaly": replace(NORMAL, cardiomegaly="severe", heart_scale=1.55),
    "effusion": replace(NORMAL, effusion_side="right", effusion_amount="moderate"),
    "pneumothorax": replace(NORMAL, pneumothorax_side="left", pneumothorax_size="large"),
    "consolidation": replace(NORMAL, consolidation_lobe="RLL"),
    "nodule": replace(NORMAL, nodule_mm=20, nodule_lobe="LUL", nodule_center=(0.7, -0.2, 0.0)),
    "emphysema": replace(NORMAL, emphysema="severe"),
    "ground_glass": replace(NORMAL, ground_glass=True),
    "atelectasis": replace(NORMAL, atelectasis_side="left"),
    "pleural_thickening": replace(NORMAL, pleural_thickening_side="right"),
}


@pytest.mark.parametrize("finding", sorted(FINDINGS))
def test_each_finding_changes_voxels_on_its_side(finding: str) -> None:
    base, changed = render(NORMAL), render(FINDINGS[finding])
    diff = np.abs(changed - base) > 100
    assert diff.sum() >= 3, finding
    right, left = diff[:, :, : SIZE[2] // 2].sum(), diff[:, :, SIZE[2] // 2 :].sum()
    side = {"effusion": "right", "pneumothorax": "left", "consolidation": "right", "nodule": "left"}
    side |= {"atelectasis": "left", "pleural_thickening": "right"}
    if finding in side:  # column 0 is the patient's right
        assert (right > left) if side[finding] == "right" else (left > right), (finding, right, left)


def test_small_nodule_still_covers_a_voxel() -> None:
    spec = replace(NORMAL, nodule_mm=6, nodule_lobe="RLL", nodule_center=(0.3, 0.4, 0.0))
    assert (np.abs(render(spec) - render(NORMAL)) > 100).sum() >= 1


def test_effusion_is_dependent_and_pneumothorax_anterior() -> None:
    base = render(NORMAL)
    effusion = np.abs(render(FINDINGS["effusion"]) - base) > 100
    pneumothorax = np.abs(render(FINDINGS["pneumothorax"]) - base) > 100
    rows = np.arange(SIZE[1])[None, :, None]
    assert (rows * effusion).sum() / effusion.sum() > SIZE[1] / 2  # posterior (row 0 is anterior)
    assert (rows * pneumothorax).sum() / pneumothorax.sum() < SIZE[1] / 2


def test_labels_map_ct_findings_to_chexpert() -> None:
    assert labels_of(NORMAL)["No Finding"] == 1 and sum(ct_spec_labels(NORMAL)) == 1
    assert labels_of(FINDINGS["nodule"])["Lung Lesion"] == 1
    consolidation = labels_of(replace(FINDINGS["consolidation"], hedges=("pneumonia",)))
    assert (consolidation["Consolidation"], consolidation["Lung Opacity"], consolidation["Pneumonia"]) == (1, 1, -1)
    assert labels_of(FINDINGS["pleural_thickening"])["Pleural Other"] == 1
    assert labels_of(FINDINGS["ground_glass"])["Lung Opacity"] == 1
    emphysema = labels_of(FINDINGS["emphysema"])  # no CheXpert column: described, labelled No Finding
    assert emphysema["No Finding"] == 1 and sum(emphysema.values()) == 1
    assert labels_of(replace(FINDINGS["atelectasis"], hedges=("atelectasis",)))["Atelectasis"] == -1


def test_report_names_side_lobe_size_and_amount() -> None:
    spec = replace(FINDINGS["nodule"], effusion_side="right", effusion_amount="moderate", consolidation_lobe="RLL")
    finding, impression = write_ct_report(spec, np.random.default_rng(0))
    assert (
        "left upper lobe" in finding and "20 mm" in finding and "moderate right pleural effusion" in impression.lower()
    )
    low = impression.lower()
    assert low.index("pleural effusion") < low.index("consolidation") < low.index("nodule")
    _, normal_impression = write_ct_report(NORMAL, np.random.default_rng(0))
    assert "nodule" not in normal_impression.lower() and normal_impression.endswith(".")
    hedged = write_ct_report(replace(spec, hedges=("pneumonia",)), np.random.default_rng(1))
    assert any(word in " ".join(hedged) for word in ("may represent", "cannot be excluded", "possibly"))


def test_reports_vary_over_seeds() -> None:
    texts = {write_ct_report(NORMAL, np.random.default_rng(seed))[0] for seed in range(30)}
    assert len(texts) >= 10


def test_sample_prevalence_and_first_study() -> None:
    rng = np.random.default_rng(0)
    specs = [sample_ct_study(rng) for _ in range(400)]
    nodules = sum(bool(s.nodule_mm) for s in specs)
    assert 70 <= nodules <= 130  # prevalence 0.25
    normal = sum(labels_of(s)["No Finding"] == 1 for s in specs)
    assert 0.2 < normal / 400 < 0.5
    first = sample_ct_study(np.random.default_rng(np.random.SeedSequence(0, spawn_key=(0,)).spawn(3)[0]))
    assert first.atelectasis_side == "right" and first.body_scale == 0.985


def test_generate_ct_layout(tmp_path: Path) -> None:
    summary = generate_ct(tmp_path / "ct", n=20, seed=0, size=SIZE, progress=False)
    root = tmp_path / "ct"
    assert summary["n"] == {"train": 16, "val": 0, "test": 4}
    assert summary["findings"]["cardiomegaly"] == 6 and summary["findings"]["normal"] == 6
    assert summary["spacing_mm"] == [10.0, 5.625, 5.625]
    volume = read_volume(root / "volumes" / "phantom_ct_00000.nii.gz")
    assert volume.array.shape == SIZE and volume.spacing == (10.0, 5.625, 5.625)
    rows = list(csv.DictReader((root / "reports.csv").open(encoding="utf-8")))
    assert list(rows[0]) == ["id", "finding", "impression"] and len(rows) == 20
    assert rows[0]["impression"] == "Atelectasis in the lower lobe of the right lung."
    labels = list(csv.DictReader((root / "labels.csv").open()))
    assert labels[0]["Atelectasis"] == "1" and labels[0]["No Finding"] == "0"
    split = json.loads((root / "splits" / "dia_llama-seed0.json").read_text())
    assert (split["scheme"], len(split["train"]), len(split["test"])) == ("dia_llama", 16, 4)
    specs = [json.loads(line) for line in (root / "phantom.jsonl").read_text().splitlines()]
    assert specs[1]["nodule_mm"] == 11 and specs[1]["nodule_lobe"] == "LUL"
    # the first k studies of a larger set are the same
    generate_ct(tmp_path / "ct5", n=5, seed=0, size=SIZE, progress=False)
    small = (tmp_path / "ct5" / "volumes" / "phantom_ct_00003.nii.gz").read_bytes()
    assert small == (root / "volumes" / "phantom_ct_00003.nii.gz").read_bytes()


def test_generate_ct_refuses_foreign_folder_and_bad_arguments(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds no phantom data set"):
        generate_ct(tmp_path / "other", n=2, progress=False)
    with pytest.raises(ValueError, match=r"size=.*at least 8"):
        generate_ct(tmp_path / "x", n=2, size=(4, 64, 64), progress=False)
    with pytest.raises(ValueError, match="language 'fr'"):
        generate_ct(tmp_path / "x", n=2, language="fr", progress=False)


def test_phantom_command_ct(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmd"
    main(["data", "phantom", "--kind", "ct", "--out", str(out), "--n", "6", "--size", "16", "32", "32"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["size"] == [16, 32, 32] and sum(summary["n"].values()) == 6
    assert json.loads((out / "phantom.json").read_text()) == {"n": 6, "seed": 0, "size": [16, 32, 32], "language": "en"}
    assert read_volume(out / "volumes" / "phantom_ct_00005.nii.gz").array.shape == (16, 32, 32)
