"""evaluate / evaluate_records, bootstrap intervals, the predictions file, `radiolm evaluate` and `radiolm label`."""

from __future__ import annotations

import csv
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from radiolm.cli import main
from radiolm.data.labels import CHEXPERT_14
from radiolm.errors import DataError, MissingAssetError
from radiolm.metrics.bootstrap import (
    bootstrap_intervals,
    ce_resampler,
    mean_resampler,
    percentile_interval,
    resample_counts,
)
from radiolm.metrics.clinical import CE_METRICS, clinical_efficacy
from radiolm.metrics.evaluate import MetricOptions, evaluate, evaluate_records, read_predictions

RECORDS = [
    {"id": "a", "prediction": "Moderate cardiomegaly.", "reference": "Mild cardiomegaly."},
    {"id": "b", "prediction": "No pneumothorax.", "reference": "Small right pneumothorax."},
    {"id": "c", "prediction": "", "reference": "No acute cardiopulmonary process."},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_resample_counts_are_seeded_resamples_of_all_studies() -> None:
    first = np.concatenate(list(resample_counts(7, resamples=250, seed=3, chunk=100)))
    assert first.shape == (250, 7) and (first.sum(1) == 7).all()
    assert np.array_equal(first, np.concatenate(list(resample_counts(7, resamples=250, seed=3, chunk=100))))
    assert not np.array_equal(first, np.concatenate(list(resample_counts(7, resamples=250, seed=4))))
    with pytest.raises(ValueError, match="at least one study"):
        next(resample_counts(0, resamples=10))


def test_percentile_interval_and_mean_resampler() -> None:
    assert percentile_interval(np.arange(101.0)) == pytest.approx((2.5, 97.5))
    assert percentile_interval(np.arange(101.0), level=0.5) == pytest.approx((25.0, 75.0))
    # Studies worth 0 and 1: a resample with counts (3, 1) has mean 1/4.
    values = mean_resampler({"f1": [0.0, 1.0]})(np.array([[3.0, 1.0], [0.0, 4.0]]))
    assert values["f1"].tolist() == [0.25, 1.0]
    # All studies equal: every resample gives the same value, so the interval is a point.
    intervals = bootstrap_intervals([mean_resampler({"x": [0.5] * 6})], n=6, resamples=50, seed=0)
    assert intervals == {"x": pytest.approx((0.5, 0.5))}


def test_ce_resampler_equals_clinical_efficacy_on_the_resampled_rows() -> None:
    rng = np.random.default_rng(0)
    choices = np.array([1, 0, -1, None], dtype=object)
    pred, ref = (rng.choice(choices, size=(40, 14)).tolist() for _ in range(2))
    for uncertain in ("negative", "positive"):
        resampler = ce_resampler(pred, ref, uncertain)
        assert {k: float(v[0]) for k, v in resampler(np.ones((1, 40))).items()} == pytest.approx(
            clinical_efficacy(pred, ref, uncertain), rel=1e-12
        )
        counts = next(resample_counts(40, resamples=4, seed=1))
        values = resampler(counts)
        for b, row in enumerate(counts):
            index = [i for i, count in enumerate(row) for _ in range(int(count))]
            expected = clinical_efficacy([pred[i] for i in index], [ref[i] for i in index], uncertain)
            assert {k: float(v[b]) for k, v in values.items()} == pytest.approx(expected, rel=1e-12)


def test_evaluate_counts_empty_predictions_and_adds_intervals() -> None:
    result = evaluate(RECORDS, metrics=("ce",), bootstrap=200, seed=0)
    assert (result.n, result.n_empty_predictions) == (3, 1)  # the empty prediction is scored, not dropped
    # Labels: a {CM} vs {CM}; b {NF} vs {PTX}; c (empty) {NF} vs {NF}. Micro-14: tp 2 (CM, NF), fp 1, fn 1.
    assert result.scores["ce_f1_micro_14"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert result.scores["ce_f1_example"] == pytest.approx((1 + 0 + 1) / 3)
    flat = evaluate_records(RECORDS, metrics=("ce",), bootstrap=200, seed=0)
    assert list(flat)[:3] == ["ce_precision_micro_14", "ce_precision_micro_14_ci_low", "ce_precision_micro_14_ci_high"]
    assert set(flat) == {f"{m}{s}" for m in CE_METRICS for s in ("", "_ci_low", "_ci_high")}
    assert flat == evaluate_records(RECORDS, metrics=("ce",), bootstrap=200, seed=0)  # seeded
    # Example-based F1 of a resample is the share of studies other than "b": 1 for the 30% of resamples without "b".
    assert flat["ce_f1_example_ci_high"] == 1.0 and 0.0 <= flat["ce_f1_example_ci_low"] <= 1 / 3
    assert result.bootstrap == {"resamples": 200, "seed": 0, "level": 0.95, "not_resampled": {}}


def fake_module(name: str, **functions: object) -> types.ModuleType:
    module = types.ModuleType(name)
    for key, value in functions.items():
        setattr(module, key, value)
    return module


def test_unavailable_families_are_reported_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing_radgraph(predictions: list[str], references: list[str], model_path: str | None) -> dict:
        raise MissingAssetError("RadGraph model", str(model_path), "model_path", "not found")

    def bertscore(predictions: list[str], references: list[str], **kwargs: object) -> dict[str, list[float]]:
        return {"bertscore_precision": [1.0, 0.5, 0.0], "bertscore_recall": [1.0] * 3, "bertscore_f1": [0.9, 0.6, 0.0]}

    monkeypatch.setitem(sys.modules, "radiolm.metrics.bertscore", fake_module("b", bertscore_scores=bertscore))
    monkeypatch.setitem(
        sys.modules,
        "radiolm.metrics.radgraph",
        fake_module("r", radgraph_scores=missing_radgraph, compute_radcliq=print),
    )
    result = evaluate(RECORDS, metrics=("ce", "bertscore", "radgraph", "radcliq"), bootstrap=20)
    assert result.scores["bertscore_f1"] == pytest.approx(0.5)  # the mean of the per-report values
    assert "bertscore_f1" in result.intervals  # per-report values: resampled like the others
    assert not any(name.startswith("radgraph") for name in result.scores)
    assert "cannot load the RadGraph model" in result.unavailable["radgraph"]
    radcliq = result.unavailable["radcliq"]
    assert radcliq.startswith("needs RadGraph: cannot load") and "--chexbert-checkpoint" in radcliq
    assert "| radgraph | cannot load the RadGraph model" in result.markdown()

    monkeypatch.setitem(sys.modules, "radiolm.metrics.radgraph", fake_module("radiolm.metrics.radgraph"))
    result = evaluate(RECORDS, metrics=("radgraph",))
    reason = "not implemented yet (radiolm.metrics.radgraph.radgraph_scores is missing)"
    assert result.unavailable == {"radgraph": reason} and result.scores == {}


def test_radcliq_gets_its_four_per_report_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple] = []

    def radcliq(bleu2: list[float], bert: list[float], semb: list[float], radgraph: list[float]) -> list[float]:
        calls.append((bleu2, bert, semb, radgraph))
        return [1.0, 2.0, 6.0]

    class Chexbert:
        def __init__(self, checkpoint: str, tokenizer: str) -> None:
            assert (checkpoint, tokenizer) == ("chexbert.pth", "bert-tokenizer")

        def semb(self, predictions: list[str], references: list[str]) -> list[float]:
            return [0.1, 0.2, 0.3]

    rows = {"radgraph_simple": [0.0] * 3, "radgraph_partial": [0.0] * 3, "radgraph_complete": [0.0] * 3}
    radgraph = fake_module("r", radgraph_scores=lambda p, r, model_path: {**rows, "radgraph_combined": [0.4, 0.5, 0.6]})
    radgraph.compute_radcliq = radcliq  # type: ignore[attr-defined]
    bert = {"bertscore_precision": [0.0] * 3, "bertscore_recall": [0.0] * 3, "bertscore_f1": [0.7, 0.8, 0.9]}
    monkeypatch.setitem(sys.modules, "radiolm.metrics.radgraph", radgraph)
    monkeypatch.setitem(
        sys.modules, "radiolm.metrics.bertscore", fake_module("b", bertscore_scores=lambda *a, **k: bert)
    )
    monkeypatch.setitem(sys.modules, "radiolm.metrics.chexbert", fake_module("c", ChexbertLabeler=Chexbert))
    options = MetricOptions(chexbert_checkpoint="chexbert.pth", chexbert_tokenizer="bert-tokenizer")
    result = evaluate(RECORDS, metrics=("radcliq",), options=options)
    assert result.scores == {"radcliq_v1": pytest.approx(3.0)} and result.unavailable == {}
    ((bleu2, bert_f1, semb, combined),) = calls
    assert (bert_f1, semb, combined) == ([0.7, 0.8, 0.9], [0.1, 0.2, 0.3], [0.4, 0.5, 0.6])
    assert bleu2 == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)  # sentence BLEU-2 of these short pairs


def test_read_predictions_names_file_and_line(tmp_path: Path) -> None:
    good = {"id": "a", "prediction": "x", "reference": "y"}
    cases = [
        ([good, {"id": "b", "prediction": "x"}], r"bad.jsonl:2: missing field\(s\) \['reference'\]"),
        ([good, {**good}], r"bad.jsonl:2: duplicate id 'a'"),
        ([{**good, "prediction": None}], r"bad.jsonl:1: field 'prediction' must be a string"),
        ([], r"bad.jsonl: no predictions"),
    ]
    for rows, message in cases:
        with pytest.raises(DataError, match=message):
            read_predictions(write_jsonl(tmp_path / "bad.jsonl", rows))
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "prediction": "x", "reference": "y"}\nnot json\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: not JSON"):
        read_predictions(tmp_path / "bad.jsonl")


def test_evaluate_command_writes_three_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    predictions = write_jsonl(tmp_path / "preds.jsonl", RECORDS)
    out = tmp_path / "eval"
    main(["evaluate", "--predictions", str(predictions), "--metrics", "ce", "--bootstrap", "50", "--out", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["n"], metrics["n_empty_predictions"], metrics["metrics"]) == (3, 1, ["ce"])
    assert metrics["ce_f1_micro_14"] == pytest.approx(2 / 3) and "ce_f1_micro_14_ci_low" in metrics
    assert metrics["bootstrap"]["resamples"] == 50 and metrics["unavailable"] == {}
    table = (out / "metrics.md").read_text()
    assert "| metric | value | 95% CI |" in table and "| ce_f1_micro_14 | 0.6667 |" in table
    assert "1 with an empty prediction" in table
    per_observation = (out / "per_observation.md").read_text()
    assert "| Cardiomegaly | 1 | 0 | 0 | 1 | 1.000 | 1.000 | 1.000 |" in per_observation
    assert "ce_f1_micro_14" in capsys.readouterr().out


def test_evaluate_command_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write_jsonl(tmp_path / "preds.jsonl", [RECORDS[0], RECORDS[0]])
    for args, message in [
        (["--predictions", str(bad)], "preds.jsonl:2: duplicate id 'a'"),
        (["--predictions", str(bad), "--metrics", "nlg,bleu"], "unknown ['bleu']"),
        (["--predictions", str(tmp_path / "none.jsonl")], "none.jsonl: no such predictions file"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(["evaluate", *args, "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and message in err, err
    good = write_jsonl(tmp_path / "good.jsonl", RECORDS)
    with pytest.raises(SystemExit):
        main(["evaluate", "--predictions", str(good), "--labeler", "chexbert", "--out", str(tmp_path / "out")])
    assert "--chexbert-checkpoint" in capsys.readouterr().err


def test_label_command_jsonl_and_csv(tmp_path: Path) -> None:
    report = "Moderate cardiomegaly. Possible small left effusion. No pneumothorax."
    jsonl = write_jsonl(tmp_path / "reports.jsonl", [{"id": "s1", "report": report}, {"id": "s2", "report": ""}])
    main(["label", "--reports", str(jsonl), "--out", str(tmp_path / "labels.csv")])
    with (tmp_path / "labels.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", *CHEXPERT_14]
    expected = dict.fromkeys(CHEXPERT_14, "") | {"Cardiomegaly": "1", "Pleural Effusion": "-1", "Pneumothorax": "0"}
    assert rows[1] == ["s1", *expected.values()]
    assert rows[2] == ["s2", *([""] * 13), "1"]  # an empty report says nothing: No Finding

    table = tmp_path / "reports.csv"
    table.write_text(f'id,findings\ns1,"{report}"\n')
    main(["label", "--reports", str(table), "--text-field", "findings", "--out", str(tmp_path / "from_csv.csv")])
    with (tmp_path / "from_csv.csv").open() as f:
        assert list(csv.reader(f))[1] == rows[1]


def test_label_command_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "reports.csv").write_text("id,text\ns1,No effusion.\n")
    (tmp_path / "dup.jsonl").write_text('{"id": 1, "report": "a"}\n{"id": 1, "report": "b"}\n')
    (tmp_path / "reports.txt").write_text("No effusion.\n")
    for name, message in [
        ("reports.csv", "missing column(s) ['report']; a reports CSV needs 'id' and 'report' (--text-field)"),
        ("dup.jsonl", "dup.jsonl:2: duplicate id 1"),
        ("reports.txt", "unknown format '.txt'; use a .jsonl or .csv file"),
    ]:
        with pytest.raises(SystemExit):
            main(["label", "--reports", str(tmp_path / name), "--out", str(tmp_path / "labels.csv")])
        assert message in capsys.readouterr().err


def test_label_command_measures_the_rules_labeler(capsys: pytest.CaptureFixture[str]) -> None:
    """`radiolm label --text | --validate | --phantom`: the labeler's own measurements (docs/labeler.md)."""
    main(["label", "--text", "Moderate cardiomegaly. No pneumothorax."])
    out = capsys.readouterr().out
    assert "('Cardiomegaly', 'cardiomegaly', 'positive', 1)" in out and "'CM': 1" in out and "'PTX': 0" in out
    main(["label", "--validate", str(Path(__file__).parent / "data" / "chexpert_sentences.tsv")])
    assert "| exact match, all 13 | 0.996 (n=248) | 0.986 (n=70) | 1.000 (n=55) | 0.995 (n=373) |" in (
        capsys.readouterr().out
    )
    main(["label", "--phantom", "4", "--propagate-opacity"])
    out = capsys.readouterr().out
    assert out.startswith("phantom n=4 exact match") and "| Cardiomegaly | 1.000 |" in out
    for args, message in [
        (["--reports", "reports.jsonl"], "--reports needs --out"),
        (["--text", "No effusion.", "--labeler", "chexbert"], "are for --labeler rules"),
        (["--text", "a", "--phantom", "4"], "not allowed with argument"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(["label", *args])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
