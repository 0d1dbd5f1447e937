"""Chinese phantom reports: X-ray and CT lexicons cover every statement, read as Chinese, hedge where English
hedges, and leave the labels of a study unchanged."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from radiolm.cli import main
from radiolm.data.phantom import generate_cxr, sample_study, write_report
from radiolm.data.phantom.ct import generate_ct, sample_ct_study
from radiolm.data.phantom.grammar_ct import _EN_TEMPLATES as _EN_CT_TEMPLATES
from radiolm.data.phantom.grammar_ct import write_ct_report
from radiolm.data.phantom.grammar_cxr import _EN_TEMPLATES
from radiolm.data.phantom.grammar_zh import ZH_CT_LEXICON, ZH_CXR_LEXICON, ZH_HEDGE_WORDS

# Latin text allowed in Chinese reports: units, "CT", "Kerley B".
LATIN = re.compile(r"[A-Za-z]+")
ALLOWED_LATIN = {"mm", "CT", "Kerley", "B"}


@pytest.mark.parametrize(
    ("zh", "en"), [(ZH_CXR_LEXICON, _EN_TEMPLATES), (ZH_CT_LEXICON, _EN_CT_TEMPLATES)], ids=["cxr", "ct"]
)
def test_lexicon_covers_every_statement_and_hedges(zh: dict, en: dict) -> None:
    assert set(zh["templates"]) == set(en)
    for key, templates in zh["templates"].items():
        assert templates and all(t.endswith("。") for t in templates), key
        if key.endswith("_hedged"):
            assert all(any(w in t for w in ZH_HEDGE_WORDS) for t in templates), key
        else:
            assert not any(w in t for t in templates for w in ("可能", "不除外", "可疑", "似见")), key


def check_chinese(text: str) -> None:
    assert text.endswith("。") and "{" not in text and "None" not in text, text
    assert set(LATIN.findall(text)) <= ALLOWED_LATIN, text
    assert " " not in text.replace("Kerley B", ""), text


def test_cxr_reports_in_chinese_for_many_studies() -> None:
    rng = np.random.default_rng(0)
    for index in range(300):
        spec = sample_study(rng)
        zh = write_report(spec, np.random.default_rng(index), "zh")
        en = write_report(spec, np.random.default_rng(index), "en")
        for text in zh:
            check_chinese(text)
        assert zh[1].count("。") == en[1].count(". ") + 1  # one impression sentence per English one
        if spec.effusion_side == "left":
            assert "左侧" in zh[0] and "积液" in zh[0]


def test_ct_reports_in_chinese_for_many_studies() -> None:
    rng = np.random.default_rng(1)
    for index in range(300):
        spec = sample_ct_study(rng)
        finding, impression = write_ct_report(spec, np.random.default_rng(index), "zh")
        check_chinese(finding)
        check_chinese(impression)
        if spec.nodule_lobe:
            lobe = {"RUL": "右肺上叶", "RML": "右肺中叶", "RLL": "右肺下叶", "LUL": "左肺上叶", "LLL": "左肺下叶"}
            assert lobe[spec.nodule_lobe] in finding and f"{spec.nodule_mm}mm" in finding


def test_pinned_chinese_reports() -> None:
    spec = sample_ct_study(np.random.default_rng(np.random.SeedSequence(0, spawn_key=(1,)).spawn(3)[0]))
    report_rng = np.random.default_rng(np.random.SeedSequence(0, spawn_key=(1,)).spawn(3)[2])
    assert write_ct_report(spec, report_rng, "zh") == (
        "胸廓两侧对称。左肺上叶见一实性结节，大小约11mm。未见实变影。心脏及大血管形态未见异常。无胸腔积液。",
        "左肺上叶实性结节。",
    )


def test_cxr_phantom_in_chinese_keeps_labels(tmp_path: Path) -> None:
    generate_cxr(tmp_path / "en", n=12, seed=3, image_size=32, progress=False)
    generate_cxr(tmp_path / "zh", n=12, seed=3, image_size=32, language="zh", progress=False)
    assert (tmp_path / "en" / "labels.csv").read_text() == (tmp_path / "zh" / "labels.csv").read_text()
    assert (tmp_path / "en" / "phantom.jsonl").read_text() == (tmp_path / "zh" / "phantom.jsonl").read_text()
    entries = json.loads((tmp_path / "zh" / "annotation.json").read_text(encoding="utf-8"))["train"]
    for entry in entries:
        check_chinese(entry["report"])
        check_chinese(entry["impression"])


def test_ct_phantom_in_chinese_keeps_volumes_and_labels(tmp_path: Path) -> None:
    generate_ct(tmp_path / "en", n=4, seed=0, size=(16, 32, 32), progress=False)
    generate_ct(tmp_path / "zh", n=4, seed=0, size=(16, 32, 32), language="zh", progress=False)
    assert (tmp_path / "en" / "labels.csv").read_text() == (tmp_path / "zh" / "labels.csv").read_text()
    en_volume = (tmp_path / "en" / "volumes" / "phantom_ct_00002.nii.gz").read_bytes()
    assert en_volume == (tmp_path / "zh" / "volumes" / "phantom_ct_00002.nii.gz").read_bytes()
    header = (tmp_path / "zh" / "reports.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "id,finding_zh,impression_zh"


def test_phantom_command_cxr_zh(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["data", "phantom", "--kind", "cxr", "--language", "zh", "--out", str(tmp_path / "x"), "--n", "4",
          "--image-size", "32"])  # fmt: skip
    assert json.loads(capsys.readouterr().out)["n"] == {"train": 2, "val": 1, "test": 1}
    entry = json.loads((tmp_path / "x" / "annotation.json").read_text(encoding="utf-8"))["test"][0]
    check_chinese(entry["report"])


def test_chinese_reports_segment_for_the_metrics() -> None:
    from radiolm.metrics.evaluate import evaluate_records

    finding = write_ct_report(sample_ct_study(np.random.default_rng(2)), np.random.default_rng(2), "zh")[0]
    scores = evaluate_records([{"id": "a", "prediction": finding, "reference": finding, "language": "zh"}], ["nlg"])
    assert scores["bleu4"] == pytest.approx(1.0, abs=1e-3)
