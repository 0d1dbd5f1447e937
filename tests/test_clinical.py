"""Clinical efficacy: micro / macro / example-based on a hand-computed table, uncertain policies, empty cases."""

from __future__ import annotations

import math

import pytest

from radiolm.data.labels import label_index
from radiolm.metrics.clinical import (
    CE_METRICS,
    binarize,
    clinical_efficacy,
    compute_ce,
    per_observation_markdown,
    per_observation_table,
)
from radiolm.metrics.evaluate import evaluate_records

NAMES = {"CM": "Cardiomegaly", "ED": "Edema", "EFF": "Pleural Effusion"}


def row(**values: int | None) -> list[int | None]:
    """14 labels, blank except the given short codes."""
    labels: list[int | None] = [None] * 14
    for code, value in values.items():
        labels[label_index(NAMES[code])] = value
    return labels


# Four reports x three observations (Cardiomegaly, Edema, Pleural Effusion; the other 11 columns blank).
# Positive sets with uncertain as negative:   reference          prediction
#   report 1                                  {CM, EFF}          {CM}
#   report 2                                  {CM, ED}           {CM, EFF}
#   report 3                                  {EFF}              {EFF}
#   report 4                                  {} (ED uncertain)  {ED}
REFERENCE = [row(CM=1, ED=0, EFF=1), row(CM=1, ED=1, EFF=0), row(CM=0, EFF=1), row(ED=-1)]
PREDICTION = [row(CM=1, EFF=0), row(CM=1, EFF=1), row(EFF=1), row(ED=1)]


def close(scores: dict[str, float], expected: dict[str, float]) -> None:
    for name, value in expected.items():
        assert math.isclose(scores[name], value, abs_tol=1e-9), (name, scores[name], value)


def test_micro_macro_example_differ_uncertain_negative() -> None:
    scores = clinical_efficacy(PREDICTION, REFERENCE)
    assert list(scores) == list(CE_METRICS)
    # Per observation: CM tp=2 fp=0 fn=0 -> P=R=F1=1; ED tp=0 fp=1 fn=1 -> 0; EFF tp=1 fp=1 fn=1 -> 0.5.
    # Micro: tp=3 fp=2 fn=2 -> P = R = 3/5 = 0.6, F1 = 6/10 = 0.6.
    # Macro over 14: (1 + 0 + 0.5) / 14 (the 11 empty observations count 0); over the 5: 1.5 / 5 = 0.3.
    # Example-based (per report P, R, F1): r1 (1, 1/2, 2/3), r2 (1/2, 1/2, 1/2), r3 (1, 1, 1), r4 (0, 0, 0):
    #   P = 2.5/4 = 0.625, R = 2/4 = 0.5, F1 = (2/3 + 1/2 + 1 + 0)/4 = 0.541666...
    close(
        scores,
        {
            "ce_precision_micro_14": 0.6,
            "ce_recall_micro_14": 0.6,
            "ce_f1_micro_14": 0.6,
            "ce_precision_macro_14": 1.5 / 14,
            "ce_recall_macro_14": 1.5 / 14,
            "ce_f1_macro_14": 1.5 / 14,
            "ce_f1_micro_5": 0.6,
            "ce_precision_macro_5": 0.3,
            "ce_f1_macro_5": 0.3,
            "ce_precision_example": 0.625,
            "ce_recall_example": 0.5,
            "ce_f1_example": (2 / 3 + 1 / 2 + 1 + 0) / 4,
            "f1_cxb_14": 0.6,
            "f1_cxb_5": 0.6,
        },
    )


def test_uncertain_as_positive_changes_the_result() -> None:
    scores = clinical_efficacy(PREDICTION, REFERENCE, uncertain="positive")
    # Report 4's reference becomes {ED}: ED tp=1 fp=0 fn=1 -> P=1, R=1/2, F1=2/3.
    # Micro: tp=4 fp=1 fn=2 -> P=4/5, R=4/6, F1=8/11.
    # Macro over 14: P=(1+1+0.5)/14, R=(1+0.5+0.5)/14, F1=(1+2/3+0.5)/14; over the 5: the same sums / 5.
    # Example-based: r4 becomes (1, 1, 1): P=3.5/4, R=3/4, F1=(2/3 + 1/2 + 1 + 1)/4.
    close(
        scores,
        {
            "ce_precision_micro_14": 0.8,
            "ce_recall_micro_14": 4 / 6,
            "ce_f1_micro_14": 8 / 11,
            "ce_precision_macro_14": 2.5 / 14,
            "ce_recall_macro_14": 2 / 14,
            "ce_f1_macro_14": (1 + 2 / 3 + 0.5) / 14,
            "ce_recall_macro_5": 0.4,
            "ce_f1_macro_5": (1 + 2 / 3 + 0.5) / 5,
            "ce_precision_example": 0.875,
            "ce_recall_example": 0.75,
            "ce_f1_example": (2 / 3 + 1 / 2 + 1 + 1) / 4,
            "f1_cxb_14": 8 / 11,
        },
    )
    assert scores["ce_f1_micro_14"] != clinical_efficacy(PREDICTION, REFERENCE)["ce_f1_micro_14"]


def test_empty_cases() -> None:
    blank = [row(), row()]
    scores = clinical_efficacy(blank, blank)
    # No positives anywhere: every micro / macro ratio has a zero denominator -> 0; example-based both-empty -> 1.
    assert all(scores[name] == 0.0 for name in CE_METRICS if "example" not in name)
    close(scores, {"ce_precision_example": 1.0, "ce_recall_example": 1.0, "ce_f1_example": 1.0})
    # The reference has an effusion, the prediction says nothing: P = 0/0 -> 0, R = 0/1, F1 = 0, every average.
    missed = clinical_efficacy([row()], [row(EFF=1)])
    assert all(value == 0.0 for value in missed.values())
    # The prediction invents an effusion: P = 0/1, R = 0/0 -> 0 (not both empty), F1 = 0.
    invented = clinical_efficacy([row(EFF=1)], [row()])
    assert all(value == 0.0 for value in invented.values())


def test_per_observation_table_and_markdown() -> None:
    table = {r["observation"]: r for r in per_observation_table(PREDICTION, REFERENCE)}
    assert len(table) == 14
    assert {k: table["Cardiomegaly"][k] for k in ("tp", "fp", "fn", "support", "f1")} == {
        "tp": 2, "fp": 0, "fn": 0, "support": 2, "f1": 1.0,
    }  # fmt: skip
    assert {k: table["Edema"][k] for k in ("tp", "fp", "fn", "support")} == {"tp": 0, "fp": 1, "fn": 1, "support": 1}
    assert table["Pleural Effusion"]["precision"] == table["Pleural Effusion"]["recall"] == 0.5
    assert table["Edema"]["support"] != per_observation_table(PREDICTION, REFERENCE, "positive")[4]["support"]
    text = per_observation_markdown(PREDICTION, REFERENCE)
    assert "| Cardiomegaly | 2 | 0 | 0 | 2 | 1.000 | 1.000 | 1.000 |" in text
    assert "| **micro (14)** | | | | | 0.600 | 0.600 | 0.600 |" in text
    assert "| **example-based (14)** | | | | | 0.625 | 0.500 | 0.542 |" in text


def test_binarize_and_bad_input() -> None:
    assert binarize([row(CM=1, ED=-1, EFF=0)])[0][:10] == [0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert binarize([row(CM=1, ED=-1)], uncertain="positive")[0][4] == 1
    assert binarize([[float("nan")] * 14]) == [[0] * 14]  # NaN (an empty CSV cell) is blank
    with pytest.raises(ValueError, match="uncertain='maybe'"):
        clinical_efficacy(PREDICTION, REFERENCE, uncertain="maybe")
    with pytest.raises(ValueError, match="4 prediction label rows but 3 reference"):
        clinical_efficacy(PREDICTION, REFERENCE[:3])
    with pytest.raises(ValueError, match="reference labels row 1 has 13 values"):
        clinical_efficacy(PREDICTION[:2], [row(), row()[:13]])
    with pytest.raises(ValueError, match="prediction labels row 0: values must be 1, 0, -1 or None"):
        clinical_efficacy([[2] * 14], [row()])
    with pytest.raises(ValueError, match="values must be"):
        binarize([[0.5] * 14])
    with pytest.raises(ValueError, match="no reports to score"):
        clinical_efficacy([], [])


def test_compute_ce_with_injected_and_default_labeler() -> None:
    calls = []

    def fake(texts: list[str]) -> list[list[int | None]]:
        calls.append(list(texts))
        return [{"p": row(CM=1), "r": row(CM=1, EFF=1)}[text] for text in texts]

    scores = compute_ce(["p"], ["r"], labeler=fake)
    assert calls == [["p", "r"]]  # one call for both sides
    close(scores, {"ce_precision_micro_14": 1.0, "ce_recall_micro_14": 0.5, "ce_f1_example": 2 / 3})
    # Rule labeler: prediction 1 {CM}, prediction 2 (empty) {No Finding}; references {CM, EFF} and {No Finding}.
    # Micro over 14: tp=2 fp=0 fn=1 -> P=1, R=2/3, F1=0.8. Example F1: (2/3 + 1)/2.
    predictions = ["Moderate cardiomegaly. No pleural effusion.", ""]
    references = ["Mild cardiomegaly. Small left pleural effusion.", "No acute cardiopulmonary process."]
    close(compute_ce(predictions, references), {"ce_f1_micro_14": 0.8, "ce_f1_example": (2 / 3 + 1) / 2})
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        compute_ce(predictions, references[:1])


def test_evaluate_records_ce_family() -> None:
    records = [
        {"id": "a", "prediction": "Moderate cardiomegaly.", "reference": "Mild cardiomegaly."},
        {"id": "b", "prediction": "No pneumothorax.", "reference": "Small right pneumothorax."},
    ]
    scores = evaluate_records(records, metrics=("ce",))
    assert set(scores) == set(CE_METRICS)
    assert scores["ce_f1_micro_14"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))  # tp CM; fp NF; fn PTX
    with pytest.raises(ValueError, match=r"unknown metric families \['bleu'\]; available: \['nlg', 'ce'\]"):
        evaluate_records(records, metrics=("ce", "bleu"))
