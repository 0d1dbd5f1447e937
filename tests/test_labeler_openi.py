"""The rule labeler on real report text: 320 Open-i sentences labelled by hand, and one test sentence per fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radiolm.cli import main
from radiolm.metrics.chexpert_labeler import SHORT_NAMES, RuleLabeler, read_validation, validate
from radiolm.metrics.openi_sentences import draw_sentences

from .conftest import REPO

OPENI = REPO / "tests" / "data" / "openi_sentences_labelled.jsonl"
SAMPLE_REPORTS = REPO / "tests" / "data" / "iu_xray_reports"
CODES = list(SHORT_NAMES.values())[:-1]  # the 13 observations a sentence is labelled for (not No Finding)


def test_openi_file_is_a_seeded_draw_of_real_sentences() -> None:
    rows = [json.loads(line) for line in OPENI.read_text().splitlines()]
    assert len(rows) >= 300 and sum(row["set"] == "holdout" for row in rows) >= 100
    assert {row["set"] for row in rows} == {"dev", "holdout"}
    assert len({row["sentence"].lower() for row in rows}) == len(rows)  # distinct: no sentence in both parts
    assert all(row["report"].endswith(".xml") and row["section"] in ("findings", "impression") for row in rows)
    assert all(set(row["labels"]) <= set(CODES) and set(row["labels"].values()) <= {1, 0, -1} for row in rows)
    assert len(read_validation(OPENI)) == len(rows)


def test_agreement_on_real_sentences_stays_at_least_as_measured() -> None:
    # measured (docs/labeler.md, "Real report text"): exact match 0.970 dev, 0.908 holdout, 0.947 all (n=320);
    # before the fixes 0.815 / 0.867 / 0.834
    results = validate(OPENI, RuleLabeler())
    assert results["dev"]["n"] == 200 and results["holdout"]["n"] == 120
    assert results["dev"]["exact_match"] >= 0.97
    assert results["holdout"]["exact_match"] >= 0.90
    assert results["all"]["exact_match"] >= 0.946
    assert all(row["accuracy"] >= 0.88 for row in results["all"]["table"].values() if row["support"])


# (sentence, expected labels; every other observation blank): each fix made for real phrasing, and its limits
FIXES = [
    # Open-i's anonymiser put XXXX where a word was
    ("Accounting for technical factors heart size XXXX borderline enlarged.", {"CM": -1}),
    # two findings offered as alternatives are each uncertain; negated or after "no change in" they are not
    ("Small bilateral pleural effusions with adjacent infiltrate or atelectasis.", {"EFF": 1, "LO": -1, "ATL": -1}),
    ("Bibasilar atelectasis/infiltrate.", {"ATL": -1, "LO": -1}),
    ("Lingular scarring or subsegmental atelectasis.", {"LO": -1, "ATL": -1}),
    ("No effusion or pneumothorax.", {"EFF": 0, "PTX": 0}),
    ("No significant change in right pneumothorax or pleural fluid.", {"PTX": 1, "EFF": 1}),
    ("Findings compatible with infection/pneumonia.", {"PNA": 1}),
    # hedges
    ("Correlate clinically for XXXX of infection/pneumonia.", {"PNA": -1}),
    ("Right upper lobe opacity, favoring scarring and/or granulomas.", {"LO": 1, "LL": -1}),
    ("Apparent nodular opacity, immediately retrocardiac.", {"LL": -1}),
    ("No apparent pneumothorax.", {"PTX": 0}),
    ("Nodular right lower lobe opacity, XXXX nipple XXXX.", {"LL": -1}),
    (
        "Prominent interstitial markings which may be secondary to low lung volumes with bronchovascular crowding.",
        {"LO": -1},
    ),
    ("Unchanged, suggesting no progression of the retrohilar nodule.", {"LL": 1}),
    # scars, interstitial and reticular patterns are Lung Opacity; a pleural scar is Pleural Other
    ("XXXX scar in the right lateral midlung.", {"LO": 1}),
    ("Atelectasis versus scar left lung base.", {"ATL": -1, "LO": -1}),
    ("Stable left lateral pleural thickening or scarring.", {"PO": 1}),
    ("Biapical pleural-parenchymal scarring.", {"PO": 1}),
    ("Diffuse reticulonodular pattern in both lungs.", {"LO": 1}),
    ("Normal interstitial markings.", {"LO": 0}),
    ("Limited right base stringy density compatible with atelectasis.", {"LO": 1, "ATL": 1}),
    ("Retrocardiac density XXXX corresponding to known hiatal hernia.", {}),
    # lesion wording: a history of malignancy is not a finding
    ("Correlation with history of primary malignancy is recommended.", {}),
    ("Irregular left apical mass, concerning for malignancy.", {"LL": 1}),
    # normal organs in real wording
    ("The right lung appears clear.", {"LO": 0}),
    ("The lungs are hyperinflated but clear.", {"LO": 0}),
    ("The lungs are hypoinflated but grossly clear of focal airspace disease or effusion.", {"LO": 0, "EFF": 0}),
    ("Heart and mediastinum are stable with normal size heart.", {"CM": 0}),
    ("The Cardiopulmonary silhouette is normal.", {"CM": 0}),
    ("Central vascular markings are symmetric and within normal limits.", {"ED": 0}),
    ("Probable mild cardiomegaly, without evidence of acute failure.", {"CM": -1, "ED": 0}),
    # devices
    ("No significant change in position of the device overlying left chest wall.", {"SD": 1}),
    ("Lower cervical spine fusion and sternotomy.", {"SD": 1}),
    ("Probable nerve stimulator noted.", {"SD": -1}),
    ("There is a screw in the right shoulder.", {"SD": 1}),
]


@pytest.mark.parametrize(("sentence", "expected"), FIXES, ids=[f[0] for f in FIXES])
def test_real_phrasing(sentence: str, expected: dict[str, int]) -> None:
    got = dict(zip(CODES, RuleLabeler().label(sentence), strict=False))
    assert got == {code: expected.get(code) for code in CODES}


def test_draw_is_seeded_distinct_and_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = draw_sentences(SAMPLE_REPORTS, n=6, seed=0, n_dev=4)
    assert rows == draw_sentences(SAMPLE_REPORTS, n=6, seed=0, n_dev=4)
    assert rows != draw_sentences(SAMPLE_REPORTS, n=6, seed=1, n_dev=4)
    assert [row["set"] for row in rows] == ["dev"] * 4 + ["holdout"] * 2
    assert len({str(row["sentence"]).lower() for row in rows}) == 6
    with pytest.raises(ValueError, match=r"asked for 1000 sentences, the reports hold only \d+ distinct ones"):
        draw_sentences(SAMPLE_REPORTS, n=1000)
    with pytest.raises(SystemExit):
        main(["label", "--draw-openi", str(SAMPLE_REPORTS)])
    assert "--draw-openi needs --out" in capsys.readouterr().err


def test_validate_command_on_jsonl_lists_one_set(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    main(["label", "--validate", str(OPENI), "--errors", "dev"])
    out = capsys.readouterr().out
    assert "| exact match, all 13 |" in out and "(n=200)" in out and "(n=120)" in out
    errors = [line for line in out.splitlines() if line.startswith("- ")]
    dev = {sentence for name, sentence, _ in read_validation(OPENI) if name == "dev"}
    assert errors and all(any(line[2:].startswith(s) for s in dev) for line in errors)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"set": "dev", "sentence": "No effusion."}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: expected a JSON object with 'set', 'sentence' and 'labels'"):
        read_validation(bad)
    with pytest.raises(SystemExit):
        main(["label", "--validate", str(OPENI), "--errors", "test"])
    assert "--errors test: " in capsys.readouterr().err
