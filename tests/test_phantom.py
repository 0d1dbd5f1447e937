"""Phantom chest X-rays: determinism, on-disk format, labels against spec and report, pixels that carry findings."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radiolm.data.labels import CHEXPERT_14, label_index
from radiolm.data.phantom import (
    StudySpec,
    generate_cxr,
    render_frontal,
    render_lateral,
    sample_study,
    spec_labels,
    write_report,
)
from radiolm.data.phantom.grammar_cxr import HEDGE_WORDS, NORMAL_IMPRESSION

SIZE = 64  # image size of the data sets written in these tests
NORMAL = StudySpec()


def _files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def _specs(root: Path) -> dict[str, StudySpec]:
    specs = {}
    for line in (root / "phantom.jsonl").read_text().splitlines():
        record = json.loads(line)
        study_id = record.pop("id")
        specs[study_id] = StudySpec(
            **{**record, "devices": tuple(record["devices"]), "hedges": tuple(record["hedges"])}
        )
    return specs


@pytest.fixture(scope="module")
def twenty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("phantom20")
    generate_cxr(root, 20, seed=0, image_size=SIZE, progress=False)
    return root


# ----------------------------------------------------------------------------------------------------------------
# Determinism


def test_same_seed_gives_identical_files(twenty: Path, tmp_path: Path) -> None:
    generate_cxr(tmp_path, 20, seed=0, image_size=SIZE, progress=False)
    assert _files(tmp_path) == _files(twenty)


def test_other_seed_gives_other_data(twenty: Path, tmp_path: Path) -> None:
    generate_cxr(tmp_path, 20, seed=1, image_size=SIZE, progress=False)
    ours, theirs = _files(tmp_path), _files(twenty)
    assert ours.keys() == theirs.keys()
    assert ours["labels.csv"] != theirs["labels.csv"]
    assert ours["images/phantom_00000/0.png"] != theirs["images/phantom_00000/0.png"]


def test_smaller_n_is_a_prefix(twenty: Path, tmp_path: Path) -> None:
    generate_cxr(tmp_path, 10, seed=0, image_size=SIZE, progress=False)
    small, large = _files(tmp_path), _files(twenty)
    images = [name for name in small if name.startswith("images/")]
    assert len(images) == 20
    assert all(small[name] == large[name] for name in images)
    assert large["labels.csv"].startswith(small["labels.csv"])
    assert large["phantom.jsonl"].startswith(small["phantom.jsonl"])
    entries = {e["id"]: e for split in json.loads(large["annotation.json"]).values() for e in split}
    for split in json.loads(small["annotation.json"]).values():
        for entry in split:
            assert {**entry, "split": None} == {**entries[entry["id"]], "split": None}


def test_rerun_replaces_a_previous_phantom(twenty: Path, tmp_path: Path) -> None:
    generate_cxr(tmp_path, 30, seed=5, image_size=SIZE, progress=False)
    generate_cxr(tmp_path, 20, seed=0, image_size=SIZE, progress=False)
    assert _files(tmp_path) == _files(twenty)


# ----------------------------------------------------------------------------------------------------------------
# On-disk format


def test_annotation_schema_and_split_sizes(twenty: Path) -> None:
    annotation = json.loads((twenty / "annotation.json").read_text())
    assert {name: len(items) for name, items in annotation.items()} == {"train": 14, "val": 2, "test": 4}
    ids = [entry["id"] for items in annotation.values() for entry in items]
    assert len(set(ids)) == 20
    for split, items in annotation.items():
        for entry in items:
            assert set(entry) == {"id", "report", "findings", "impression", "image_path", "views", "split"}
            assert entry["split"] == split
            assert entry["report"] == entry["findings"] and entry["impression"]
            assert entry["views"] == ["frontal", "lateral"]
            assert entry["image_path"] == [f"{entry['id']}/0.png", f"{entry['id']}/1.png"]
            for path in entry["image_path"]:
                with Image.open(twenty / "images" / path) as image:
                    assert (image.mode, image.size) == ("L", (SIZE, SIZE))


def test_labels_csv_matches_spec(twenty: Path) -> None:
    specs = _specs(twenty)
    with (twenty / "labels.csv").open() as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["id", *CHEXPERT_14]
    assert [row[0] for row in rows[1:]] == list(specs)
    for row in rows[1:]:
        assert [int(value) for value in row[1:]] == spec_labels(specs[row[0]])


def test_one_view_writes_frontal_only_and_same_reports(twenty: Path, tmp_path: Path) -> None:
    generate_cxr(tmp_path, 20, seed=0, views=1, image_size=SIZE, progress=False)
    entries = [entry for items in json.loads((tmp_path / "annotation.json").read_text()).values() for entry in items]
    reports = {
        e["id"]: e["report"] for items in json.loads((twenty / "annotation.json").read_text()).values() for e in items
    }
    for entry in entries:
        assert entry["views"] == ["frontal"] and entry["image_path"] == [f"{entry['id']}/0.png"]
        assert entry["report"] == reports[entry["id"]]
        assert sorted(p.name for p in (tmp_path / "images" / entry["id"]).iterdir()) == ["0.png"]
    assert (tmp_path / "images/phantom_00003/0.png").read_bytes() == (
        twenty / "images/phantom_00003/0.png"
    ).read_bytes()


def test_summary_counts(tmp_path: Path) -> None:
    summary = generate_cxr(tmp_path, 12, seed=3, image_size=SIZE, progress=False)
    specs = _specs(tmp_path)
    labels = np.array([spec_labels(spec) for spec in specs.values()])
    assert summary["out"] == str(tmp_path)
    assert sum(summary["n"].values()) == 12
    assert summary["findings"]["normal"] == int((labels[:, -1] == 1).sum())
    assert summary["findings"]["effusion"] == sum(spec.effusion_side is not None for spec in specs.values())
    assert summary["labels"]["Pleural Effusion"]["positive"] == int(
        (labels[:, label_index("Pleural Effusion")] == 1).sum()
    )


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"views": 3}, ValueError),
        ({"split": (0.5, 0.2, 0.2)}, ValueError),
        ({"n": 0}, ValueError),
        ({"language": "fr"}, ValueError),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        generate_cxr(tmp_path / "out", **{"n": 4, **kwargs, "progress": False})
    assert not (tmp_path / "out").exists()


def test_refuses_a_folder_with_other_content(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"phantom\.jsonl"):
        generate_cxr(tmp_path, 2, progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_chinese_report_of_a_normal_study() -> None:
    """The Chinese grammar writes Chinese sentences joined without spaces (details in tests/test_phantom_zh.py)."""
    report = write_report(NORMAL, np.random.default_rng(0), language="zh")
    assert report and " " not in report and any("\u4e00" <= ch <= "\u9fff" for ch in report)


# ----------------------------------------------------------------------------------------------------------------
# Labels and reports


def _sentences(text: str) -> list[str]:
    return [sentence.strip() for sentence in text.lower().split(". ") if sentence.strip()]


def _one(sentences: list[str], keyword: str) -> str:
    """The single positive (not negated) sentence that mentions ``keyword``."""
    found = [s for s in sentences if keyword in s and not s.startswith(("no ", "there is no ", "there are no "))]
    assert len(found) == 1, (keyword, sentences)
    return found[0]


def _check_mentions(spec: StudySpec, labels: dict[str, int], sentences: list[str]) -> None:
    """Every positive / uncertain label is stated with its side, lobe, size or amount; hedges carry a hedge word."""
    if labels["Cardiomegaly"]:
        sentence = next(s for s in sentences if "cardiomegaly" in s or "enlarge" in s)
        assert spec.cardiomegaly in sentence
    if labels["Enlarged Cardiomediastinum"]:
        assert "widen" in _one(sentences, "mediastin")
    if labels["Pleural Effusion"]:
        sentence = _one(sentences, "effusion")
        assert spec.effusion_side in sentence and spec.effusion_amount in sentence
    if labels["Pneumothorax"]:
        sentence = _one(sentences, "pneumothorax")
        assert spec.pneumothorax_side in sentence and spec.pneumothorax_size in sentence
    if labels["Consolidation"]:
        lobe = {"R": "right", "L": "left"}[spec.consolidation_lobe[0]]
        lobe += {"U": " upper lobe", "M": " middle lobe", "L": " lower lobe"}[spec.consolidation_lobe[1]]
        assert lobe in _one(sentences, "consolidation")
    if labels["Lung Lesion"]:
        sentence = _one(sentences, "nodule")
        assert f"{spec.nodule_mm} mm" in sentence and f"{spec.nodule_side} {spec.nodule_zone} zone" in sentence
    if labels["Atelectasis"]:
        assert spec.atelectasis_side in _one(sentences, "atelectasis")
    if labels["Fracture"]:
        assert f"{spec.fracture_side} {spec.fracture_rib}th rib" in _one(sentences, "fracture")
    if labels["Edema"] == 1:
        assert spec.edema in _one(sentences, "edema")
    for name, keyword in (
        ("Pneumonia", "pneumonia"),
        ("Lung Lesion", "nodule"),
        ("Edema", "edema"),
        ("Atelectasis", "atelectasis"),
    ):
        if labels[name] == -1:
            assert any(hedge in _one(sentences, keyword) for hedge in HEDGE_WORDS)
        elif labels[name] == 1:
            assert not any(hedge in _one(sentences, keyword) for hedge in HEDGE_WORDS)


def _check_negations(labels: dict[str, int], sentences: list[str]) -> None:
    """An absent finding is only ever mentioned negated."""
    for name, keyword in (
        ("Pleural Effusion", "effusion"),
        ("Pneumothorax", "pneumothorax"),
        ("Consolidation", "consolidation"),
        ("Edema", "edema"),
        ("Lung Lesion", "nodule"),
        ("Fracture", "fracture"),
    ):
        if labels[name] == 0:
            assert all(s.startswith(("no ", "there is no ")) for s in sentences if keyword in s), (name, sentences)


def test_reports_agree_with_labels() -> None:
    for index in range(400):
        spec = sample_study(np.random.default_rng([7, index]))
        findings, impression = write_report(spec, np.random.default_rng(index))
        labels = dict(zip(CHEXPERT_14, spec_labels(spec), strict=True))
        assert set(labels.values()) <= {-1, 0, 1}
        _check_mentions(spec, labels, _sentences(findings))
        for device, keyword in {"ett": "endotracheal", "cvc": "central", "pacemaker": "pacemaker"}.items():
            assert (keyword in findings.lower()) == (device in spec.devices)
        _check_mentions(spec, labels, _sentences(impression))
        _check_negations(labels, _sentences(findings + " " + impression))
        assert (NORMAL_IMPRESSION in impression.lower()) == (labels["No Finding"] == 1), (findings, impression)
        assert findings[0].isupper() and findings.endswith(".") and impression.endswith(".")


def test_label_rules() -> None:
    assert spec_labels(NORMAL) == [0] * 13 + [1]
    devices_only = dict(zip(CHEXPERT_14, spec_labels(replace(NORMAL, devices=("ett",))), strict=True))
    assert devices_only["Support Devices"] == 1 and devices_only["No Finding"] == 1
    hedged = replace(NORMAL, consolidation_lobe="RLL", atelectasis_side="left", hedges=("pneumonia", "atelectasis"))
    labels = dict(zip(CHEXPERT_14, spec_labels(hedged), strict=True))
    assert (labels["Consolidation"], labels["Lung Opacity"], labels["Pneumonia"]) == (1, 1, -1)
    assert (labels["Atelectasis"], labels["No Finding"], labels["Pleural Other"]) == (-1, 0, 0)


def test_prevalences() -> None:
    labels = np.array([spec_labels(sample_study(np.random.default_rng([3, i]))) for i in range(2000)])
    normal = (labels[:, label_index("No Finding")] == 1).mean()
    assert 0.28 < normal < 0.45
    observed = [name for i, name in enumerate(CHEXPERT_14) if (labels[:, i] != 0).any()]
    assert observed == [name for name in CHEXPERT_14 if name != "Pleural Other"]


def test_spec_round_trips_through_json() -> None:
    spec = sample_study(np.random.default_rng(11))
    record = json.loads(json.dumps(asdict(spec)))
    assert [field.name for field in fields(StudySpec)] == list(record)
    assert spec == StudySpec(**{**record, "devices": tuple(record["devices"]), "hedges": tuple(record["hedges"])})


# ----------------------------------------------------------------------------------------------------------------
# Pixels


def _frontal(spec: StudySpec, seed: int, size: int = 128) -> np.ndarray:
    """Frontal view drawn at 256 px and downsampled to ``size`` as a float array (what a small CNN sees)."""
    image = Image.fromarray(render_frontal(spec, np.random.default_rng(seed), 256))
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


def _region(image: np.ndarray, u: tuple[float, float], v: tuple[float, float]) -> np.ndarray:
    """Pixels in the image-fraction box ``u`` (columns) x ``v`` (rows)."""
    size = image.shape[0]
    return image[int(v[0] * size) : int(v[1] * size), int(u[0] * size) : int(u[1] * size)]


def _gain(spec: StudySpec, seed: int, u: tuple[float, float], v: tuple[float, float]) -> float:
    """Mean brightening of a box by the findings of ``spec`` over the normal study, same nuisance."""
    return float(_region(_frontal(spec, seed), u, v).mean() - _region(_frontal(NORMAL, seed), u, v).mean())


SEEDS = (0, 1, 2)
LEFT_BASE, RIGHT_BASE = ((0.64, 0.8), (0.6, 0.68)), ((0.2, 0.36), (0.6, 0.68))  # patient's left is image right


@pytest.mark.parametrize("seed", SEEDS)
def test_effusion_whitens_its_base_only(seed: int) -> None:
    left = replace(NORMAL, effusion_side="left", effusion_amount="moderate")
    assert _gain(left, seed, *LEFT_BASE) > 30
    assert abs(_gain(left, seed, *RIGHT_BASE)) < 1
    bilateral = replace(left, effusion_side="bilateral")
    assert _gain(bilateral, seed, *RIGHT_BASE) > 30


@pytest.mark.parametrize("seed", SEEDS)
def test_effusion_amount_raises_the_level(seed: int) -> None:
    gains = [
        _gain(replace(NORMAL, effusion_side="right", effusion_amount=amount), seed, (0.2, 0.36), (0.45, 0.7))
        for amount in ("small", "moderate", "large")
    ]
    assert gains[0] + 5 < gains[1] and gains[1] + 5 < gains[2]


@pytest.mark.parametrize("seed", SEEDS)
def test_cardiomegaly_widens_the_heart(seed: int) -> None:
    def heart_width(spec: StudySpec) -> int:
        band = _region(_frontal(spec, seed), (0.1, 0.9), (0.58, 0.64)).mean(axis=0)
        lung, tissue = np.percentile(band, 10), np.percentile(band, 90)
        centre = band.size // 2
        bright = band > (lung + tissue) / 2
        left, right = centre, centre
        while left > 0 and bright[left - 1]:
            left -= 1
        while right < band.size - 1 and bright[right + 1]:
            right += 1
        return right - left

    assert heart_width(replace(NORMAL, cardiomegaly="severe", ctr=0.66)) > heart_width(NORMAL) * 1.3


@pytest.mark.parametrize("seed", SEEDS)
def test_nodule_is_a_bright_spot_where_the_spec_says(seed: int) -> None:
    spec = replace(NORMAL, nodule_mm=20, nodule_side="right", nodule_zone="upper", nodule_x=0.6, nodule_v=0.3)
    difference = _frontal(spec, seed) - _frontal(NORMAL, seed)
    u = 0.5 - 0.6 * 0.34  # right lung (image left), body_scale 1; the box allows for shift, tilt and zoom
    assert _region(difference, (u - 0.06, u + 0.06), (0.24, 0.36)).max() > 60
    assert np.abs(_region(difference, (1 - u - 0.06, 1 - u + 0.06), (0.24, 0.36))).max() == 0
    assert _region(difference, (u - 0.06, u + 0.06), (0.24, 0.36)).sum() > 0.9 * difference.sum()


@pytest.mark.parametrize("seed", SEEDS)
def test_pneumothorax_darkens_the_periphery(seed: int) -> None:
    spec = replace(NORMAL, pneumothorax_side="right", pneumothorax_size="large")
    assert _gain(spec, seed, (0.19, 0.24), (0.4, 0.55)) < -8


@pytest.mark.parametrize("seed", SEEDS)
def test_consolidation_lobes_land_in_their_zones(seed: int) -> None:
    upper, lower = (0.2, 0.35), (0.59, 0.69)
    rul, rll = replace(NORMAL, consolidation_lobe="RUL"), replace(NORMAL, consolidation_lobe="RLL")
    assert _gain(rul, seed, (0.27, 0.38), upper) > 20 and abs(_gain(rul, seed, (0.23, 0.36), lower)) < 3
    assert _gain(rll, seed, (0.23, 0.36), lower) > 20 and abs(_gain(rll, seed, (0.27, 0.38), upper)) < 3


FINDINGS = {
    "cardiomegaly": {"cardiomegaly": "moderate", "ctr": 0.6},
    "mediastinum": {"mediastinum_widened": True},
    "effusion": {"effusion_side": "right", "effusion_amount": "small"},
    "pneumothorax": {"pneumothorax_side": "left", "pneumothorax_size": "small"},
    "consolidation": {"consolidation_lobe": "LLL"},
    "nodule": {"nodule_mm": 8, "nodule_side": "left", "nodule_zone": "mid", "nodule_x": 0.5, "nodule_v": 0.45},
    "edema": {"edema": "mild"},
    "atelectasis": {"atelectasis_side": "right"},
    "fracture": {"fracture_side": "left", "fracture_rib": 6},
    "ett": {"devices": ("ett",)},
    "cvc": {"devices": ("cvc",)},
    "pacemaker": {"devices": ("pacemaker",)},
}


@pytest.mark.parametrize("finding", list(FINDINGS))
def test_every_finding_is_visible_at_128(finding: str) -> None:
    spec = replace(NORMAL, **FINDINGS[finding])
    for seed in SEEDS:
        difference = np.abs(_frontal(spec, seed) - _frontal(NORMAL, seed))
        assert difference.max() > 25, (finding, seed)


LATERAL = {
    "cardiomegaly": ({"cardiomegaly": "severe", "ctr": 0.66}, (0.6, 0.66), (0.5, 0.6)),
    "effusion": ({"effusion_side": "bilateral", "effusion_amount": "moderate"}, (0.66, 0.72), (0.66, 0.74)),
    "consolidation": ({"consolidation_lobe": "RUL"}, (0.41, 0.49), (0.25, 0.31)),
}


@pytest.mark.parametrize("finding", list(LATERAL))
def test_lateral_view_shows_findings(finding: str) -> None:
    changes, u, v = LATERAL[finding]
    for seed in SEEDS:
        with_finding = render_lateral(replace(NORMAL, **changes), np.random.default_rng(seed), 128)
        normal = render_lateral(NORMAL, np.random.default_rng(seed), 128)
        gain = _region(with_finding.astype(np.float32), u, v).mean() - _region(normal.astype(np.float32), u, v).mean()
        assert gain > 20, (finding, seed, gain)


@pytest.mark.parametrize("size", [48, 100, 256])
def test_render_shapes(size: int) -> None:
    spec = sample_study(np.random.default_rng(4))
    for render in (render_frontal, render_lateral):
        image = render(spec, np.random.default_rng(0), size)
        assert image.shape == (size, size) and image.dtype == np.uint8
        assert 40 < image.mean() < 200
        assert np.array_equal(image, render(spec, np.random.default_rng(0), size))
