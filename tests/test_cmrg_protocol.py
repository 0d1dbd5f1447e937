"""CMRG-LLM's protocol details (``../shared/papers/cmrg_llm_continual.md`` §3.1, Fig. 3): targets are impression +
findings with their headers, only studies that have both; Chinese is scored on jieba words (a BLEU by hand); Chinese
studies without their labels file stop with a one-line error."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import pytest
import yaml

from radiolm.data import CTRGChestDataModule, MIMICCXRDataModule, R2GenDataModule
from radiolm.data.formats.labels_csv import write_labels_csv
from radiolm.data.phantom.ct import generate_ct
from radiolm.data.targets import check_sections, compose_sections
from radiolm.errors import DataError
from radiolm.metrics.nlg import NLGScorer
from radiolm.metrics.protocols import EvaluationProtocol

from .conftest import REPO

SECTIONS = ["impression", "findings"]


# -- targets: impression + findings with their headers -----------------------------------------------------------
def test_compose_sections_with_headers() -> None:
    texts = {"findings": " The heart is enlarged. ", "impression": "Cardiomegaly."}
    assert compose_sections(texts, SECTIONS, "en") == "Impression: Cardiomegaly. Findings: The heart is enlarged."
    assert compose_sections(texts, SECTIONS, "en", headers=False) == "Cardiomegaly. The heart is enlarged."
    zh = {"findings": "心影增大。", "impression": "心影增大。"}
    assert compose_sections(zh, SECTIONS, "zh") == "影像学印象：心影增大。影像学所见：心影增大。"  # Fig. 3
    assert compose_sections({"findings": "x", "impression": "  "}, SECTIONS, "en") is None
    assert compose_sections({"findings": "x"}, SECTIONS, "en") is None
    with pytest.raises(DataError, match=r"data\.init_args\.sections: \['impression', 'history'\]"):
        check_sections(["impression", "history"], "en")
    with pytest.raises(DataError, match="no section headers for language 'de'"):
        check_sections(SECTIONS, "de")


def write_annotation(root: Path, language: str = "en") -> Path:
    """Four train studies (one without an impression, one without findings) and one val and test study."""
    zh = language == "zh"

    def entry(i: int, findings: str, impression: str) -> dict[str, object]:
        return {"id": f"s{i}", "report": "unused", "findings": findings, "impression": impression,
                "image_path": [f"s{i}/0.png"]}  # fmt: skip

    finding, impression = ("心影增大。", "心脏增大。") if zh else ("The heart is enlarged.", "Cardiomegaly.")
    annotation = {
        "train": [entry(0, finding, impression), entry(1, finding, ""), entry(2, "", impression),
                  entry(3, finding, impression)],
        "val": [entry(4, finding, impression)],
        "test": [entry(5, finding, impression)],
    }  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    (root / "annotation.json").write_text(json.dumps(annotation, ensure_ascii=False), encoding="utf-8")
    return root / "annotation.json"


def test_r2gen_targets_are_impression_and_findings_with_headers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_annotation(tmp_path / "mimic")
    dm = MIMICCXRDataModule(
        str(path), cleaning="r2gengpt_mimic", sections=SECTIONS, validate_images=False, num_workers=0
    )
    with caplog.at_level(logging.INFO, logger="radiolm"):
        dm.setup("fit")
    train = dm.datasets["train"]
    assert [e["id"] for e in train.entries] == ["s0", "s3"]  # s1 lacks an impression, s2 findings
    assert "{'train': 2}" in caplog.text and "left out" in caplog.text  # counted and logged
    # R2GenGPT's MIMIC-CXR cleaning after composing: Fig. 3's "impression : ... findings : ..."
    assert train.reports()[0] == "impression : cardiomegaly . findings : the heart is enlarged ."
    assert (
        MIMICCXRDataModule(str(path), validate_images=False, num_workers=0).read_entries()[0]["train"][1]["report"]
        == "unused"
    )  # without sections: report_key as before
    # Chinese (R2Gen layout, language zh): Fig. 3's headers, no separator; its labels come from labels.csv
    zh = write_annotation(tmp_path / "xc", "zh")
    write_labels_csv(zh.parent / "labels.csv", [(f"s{i}", [0] * 13 + [1]) for i in range(6)])
    dm = R2GenDataModule(str(zh), language="zh", sections=SECTIONS, validate_images=False, num_workers=0)
    dm.setup("fit")
    assert dm.datasets["test"].reports() == ["影像学印象：心脏增大。影像学所见：心影增大。"]
    with pytest.raises(DataError, match="sections"):
        R2GenDataModule(str(zh), language="zh", sections=["findings", "findings"])


def test_ctrg_targets_are_impression_and_findings_with_headers(tmp_path: Path) -> None:
    root = tmp_path / "ct"
    generate_ct(root, n=10, seed=0, size=[8, 16, 16], language="zh", split="cmrg", progress=False)
    with (root / "reports.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    rows[0]["impression_zh"] = ""  # this study has findings only: left out
    with (root / "reports.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    dm = CTRGChestDataModule(str(root), split="cmrg", language="zh", sections=SECTIONS, volume_size=[8, 16, 16],
                             num_workers=0)  # fmt: skip
    dm.setup("fit")
    kept = {e["id"]: e["report"] for d in dm.datasets.values() for e in d.entries}
    assert rows[0]["id"] not in kept and len(kept) == 9
    row = rows[1]
    assert kept[row["id"]] == f"影像学印象：{row['impression_zh'].strip()}影像学所见：{row['finding_zh'].strip()}"


def test_cmrg_real_data_experiment_targets_both_sections() -> None:
    """experiments/data/cmrg.yaml: every task's target is impression + findings (§3.1); XE1 cleaned as Fig. 3."""
    tasks = yaml.safe_load((REPO / "experiments" / "data" / "cmrg.yaml").read_text())["init_args"]["tasks"]
    assert [t["name"] for t in tasks] == ["XE1", "XE2", "XC", "CTC"]
    assert all(t["data"]["init_args"]["sections"] == SECTIONS for t in tasks)
    assert tasks[0]["data"]["init_args"]["cleaning"] == "r2gengpt_mimic"
    assert "report_key" not in tasks[3]["data"]["init_args"]  # sections replace it


# -- Chinese: jieba words for the metrics; labels from the labels file -------------------------------------------
def test_cmrg_protocol_scores_chinese_on_jieba_words_bleu_by_hand() -> None:
    # jieba: 心影 增大 ， 双肺 纹理 清晰 。  vs  心影 不大 ， 双肺 纹理 清晰 。  (7 words each; only 增大 / 不大 differ)
    # matches: 1-grams 6/7, 2-grams 4/6, 3-grams 3/5, 4-grams 2/4; equal lengths, no brevity penalty
    # BLEU-3 = (6/7 * 4/6 * 3/5)^(1/3) = (12/35)^(1/3); BLEU-4 = (12/35 * 1/2)^(1/4) = (6/35)^(1/4);
    # ROUGE-L: LCS 6 of 7 both ways -> 6/7
    pairs = [
        {"id": "1", "prediction": "心影增大，双肺纹理清晰。", "reference": "心影不大，双肺纹理清晰。", "language": "zh"}
    ]
    protocol = EvaluationProtocol("cmrg")
    assert protocol.settings.chinese == "jieba"
    with NLGScorer(meteor=False) as scorer:
        scores = protocol.scores(pairs, nlg_scorer=scorer)
        by_characters = EvaluationProtocol("cmrg", chinese="characters").scores(pairs, nlg_scorer=scorer)
        unsegmented = EvaluationProtocol("cmrg").scores([{**pairs[0], "language": "en"}], nlg_scorer=scorer)
    assert scores["bleu3"] == pytest.approx((12 / 35) ** (1 / 3), rel=1e-6)
    assert scores["bleu4"] == pytest.approx((6 / 35) ** (1 / 4), rel=1e-6)
    assert scores["rouge_l"] == pytest.approx(6 / 7, rel=1e-6)
    assert by_characters["bleu4"] != pytest.approx(scores["bleu4"], rel=1e-3)  # characters: other n-grams
    assert unsegmented["bleu4"] == pytest.approx(0, abs=1e-6)  # one "word" per report: what jieba prevents
    for name in ("cmrg_llm", "cmrg_llm_phantom"):  # both experiments score with this protocol
        model = yaml.safe_load((REPO / "experiments" / f"{name}.yaml").read_text())["model"]["init_args"]
        assert model["evaluation"]["init_args"]["preset"] == "cmrg"


def test_chinese_studies_without_their_labels_file_stop_with_one_line(tmp_path: Path) -> None:
    path = write_annotation(tmp_path / "xc", "zh")
    dm = R2GenDataModule(str(path), language="zh", sections=SECTIONS, validate_images=False, num_workers=0)
    with pytest.raises(DataError) as error:
        dm.setup("fit")
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'xc' / 'labels.csv'}: missing")
    assert "English CheXpert labeler cannot read them" in message and "data.init_args.labels_path" in message
    # English studies without labels still load (labels -1, a warning), as before
    english = write_annotation(tmp_path / "en")
    dm = R2GenDataModule(str(english), validate_images=False, num_workers=0)
    dm.setup("fit")
    assert dm.datasets["train"].labels == {}
    shutil.rmtree(tmp_path / "en")
