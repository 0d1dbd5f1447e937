"""Evaluation protocols (radiolm.metrics.protocols): each preset on hand-made predictions and labels whose expected
values are computed by hand here, `radiolm evaluate --protocol`, the experiments' presets and the table's protocol."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import radiolm.metrics.evaluate as evaluate_module
from radiolm.cli import main
from radiolm.data.labels import CHEXPERT_14
from radiolm.errors import RadioLMError
from radiolm.metrics.evaluate import MetricOptions, evaluate
from radiolm.metrics.nlg import NLGScorer
from radiolm.metrics.protocols import PRESETS, EvaluationProtocol, normalise_text
from radiolm.tables import TableSpec, collect_row, load_spec, render_table

from .conftest import REPO

EPS = 1e-6  # Dia-LLaMA's utils/metrics_clinical.py adds it to every denominator


def labels(**observations: int) -> list[int | None]:
    """A CheXpert-14 row: the named observations set (``Pleural_Effusion=1``), every other one blank."""
    row: list[int | None] = [None] * len(CHEXPERT_14)
    for name, value in observations.items():
        row[CHEXPERT_14.index(name.replace("_", " "))] = value
    return row


def use_labels(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[int | None]]) -> None:
    """Make the CheXpert labeler a lookup of hand-made labels (any labeler name, CheXbert included)."""
    monkeypatch.setattr(evaluate_module, "make_labeler", lambda options: lambda texts: [table[t] for t in texts])


def records(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"id": str(i), "prediction": p, "reference": r} for i, (p, r) in enumerate(pairs)]


# Two studies. A: the prediction finds Cardiomegaly (right) and Edema (the reference is uncertain about Edema).
# B: the reference has Atelectasis, the prediction is uncertain about it and adds a Fracture.
TWO_STUDIES = {
    "pred a": labels(Cardiomegaly=1, Edema=1),
    "ref a": labels(Cardiomegaly=1, Edema=-1),
    "pred b": labels(Atelectasis=-1, Fracture=1),
    "ref b": labels(Atelectasis=1),
}


def test_default_is_the_suites_evaluation_bit_for_bit() -> None:
    pairs = records(
        ("Moderate cardiomegaly. Small left effusion.", "Mild cardiomegaly."),
        ("No pneumothorax.", "Small right pneumothorax."),
        ("", "No acute cardiopulmonary process."),
    )
    with NLGScorer(meteor=False) as scorer:
        expected = evaluate(pairs, ("nlg", "ce"), MetricOptions(nlg_scorer=scorer)).flat()
        got = EvaluationProtocol().scores(pairs, nlg_scorer=scorer)
    assert got == expected  # same names, same floats


def test_two_stage_is_vilmedic_f1chexbert(monkeypatch: pytest.MonkeyPatch) -> None:
    """ViLMedic's f1chexbert ("rrg" mode) counts uncertain as positive, then sklearn's micro F1 = 2tp / (2tp+fp+fn)."""
    use_labels(monkeypatch, TWO_STUDIES)
    protocol = EvaluationProtocol("two_stage", chexbert_checkpoint="chexbert.pth", chexbert_tokenizer="bert")
    scores = protocol.scores(records(("pred a", "ref a"), ("pred b", "ref b")), metrics=["ce"])
    # uncertain -> positive: A tp 2 (Cardiomegaly, Edema); B tp 1 (Atelectasis), fp 1 (Fracture): 14 -> 6/7.
    assert scores["f1_cxb_14"] == pytest.approx(2 * 3 / (2 * 3 + 1))
    assert scores["f1_cxb_5"] == pytest.approx(1.0)  # Fracture is not one of the 5
    # Macro over 14: Cardiomegaly, Edema, Atelectasis F1 1; Fracture 0 (fp only); the other 10 have no support: 0.
    assert scores["ce_f1_macro_14"] == pytest.approx(3 / 14)
    assert not [k for k in scores if k.endswith("_example")]  # ViLMedic reports micro and macro only
    # The suite's default (uncertain as negative) on the same labels: tp 1, fp 2, fn 1 -> 2 / 5.
    default = EvaluationProtocol().scores(records(("pred a", "ref a"), ("pred b", "ref b")), metrics=["ce"])
    assert default["f1_cxb_14"] == pytest.approx(2 / (2 + 2 + 1))


def test_two_stage_normalises_text_as_vilmedic() -> None:
    assert normalise_text("Heart size is normal. No effusion, no pneumothorax.", "vilmedic") == (
        "heart size is normal . no effusion , no pneumothorax ."
    )
    prepared = EvaluationProtocol("two_stage").prepare(records(("Small EFFUSION.", "Small effusion .")))
    assert prepared[0]["prediction"] == prepared[0]["reference"] == "small effusion ."


def test_dia_llama_is_the_official_example_based_formula(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per study tp / (tp + fp + 1e-6), tp / (tp + fn + 1e-6), tp / (tp + (fp + fn) / 2 + 1e-6), then the mean;
    only "present" counts; a study with no positive on either side scores 0 (the suite's default gives it 1)."""
    table = {
        "pred a": labels(Cardiomegaly=1, Edema=1, Pneumothorax=-1),
        "ref a": labels(Cardiomegaly=1, Pneumothorax=1),
        "pred b": labels(Pneumothorax=0),
        "ref b": labels(Edema=-1),
    }
    use_labels(monkeypatch, table)
    protocol = EvaluationProtocol("dia_llama", chexbert_checkpoint="chexbert.pth", chexbert_tokenizer="bert")
    pairs = records(("pred a", "ref a"), ("pred b", "ref b"))
    scores = protocol.scores(pairs, metrics=["ce"])
    # A: tp 1 (Cardiomegaly), fp 1 (Edema), fn 1 (Pneumothorax: uncertain is absent). B: nothing on either side.
    assert scores["ce_precision_example"] == pytest.approx((1 / (2 + EPS) + 0) / 2, abs=1e-12)
    assert scores["ce_recall_example"] == pytest.approx((1 / (2 + EPS) + 0) / 2, abs=1e-12)
    assert scores["ce_f1_example"] == pytest.approx((1 / (1 + 1 + EPS) + 0) / 2, abs=1e-12)
    assert scores["ce_f1_micro_14"] == pytest.approx(1 / (1 + 0.5 * 2 + EPS), abs=1e-12)
    suite = EvaluationProtocol().scores(pairs, metrics=["ce"])
    assert suite["ce_f1_example"] == pytest.approx((2 / 4 + 1) / 2)  # study B scores 1 under the suite's rule


def test_r2gengpt_cuts_references_and_reports_micro(monkeypatch: pytest.MonkeyPatch) -> None:
    class WordTokenizer:
        """One token per word (the LLM tokenizer stands in)."""

        def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
            assert not add_special_tokens
            self.words = text.split()
            return {"input_ids": list(range(len(self.words)))}

        def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
            return " ".join(self.words[i] for i in ids)

    protocol = EvaluationProtocol("r2gengpt", reference_tokens=3)
    prepared = protocol.prepare(records(("a b c", "a b c d e")), WordTokenizer())
    assert prepared[0]["reference"] == "a b c"
    with pytest.raises(RadioLMError, match="reference_tokenizer"):  # no tokenizer to cut with: one clear line
        protocol.prepare(records(("a", "b")))
    use_labels(monkeypatch, {"a b c": labels(Edema=1), "a b": labels(Edema=1, Pneumothorax=1)})
    cut = EvaluationProtocol("r2gengpt", reference_tokens=2).scores(
        records(("a b c", "a b c d")), metrics=["ce"], tokenizer=WordTokenizer()
    )
    # The reference is cut to "a b" (Edema, Pneumothorax): tp 1, fn 1 -> P 1, R 1/2, F1 2/3; micro keys only.
    assert cut["ce_precision_micro_14"] == 1.0 and cut["ce_recall_micro_14"] == 0.5
    assert cut["ce_f1_micro_14"] == pytest.approx(2 / 3)
    assert {k for k in cut if k.startswith("ce_")} == {
        f"ce_{m}_micro_{n}" for m in ("precision", "recall", "f1") for n in (14, 5)
    }


def test_bidirectional_is_the_radcliq_suite(monkeypatch: pytest.MonkeyPatch) -> None:
    protocol = EvaluationProtocol("bidirectional")
    options = protocol.options()
    assert options.bertscore_model == "distilroberta-base" and options.radgraph_levels == ("combined",)
    assert options.bertscore_baseline and options.bertscore_baseline.endswith("distilroberta-base.tsv")
    pairs = records(("small effusion", "small left effusion"), ("no pneumothorax", "no pneumothorax"))
    # No distilroberta-base on this machine: unavailable, with the option that supplies it; never 0.
    result = protocol.evaluate(pairs, metrics=["bertscore"])
    assert "bertscore_f1" not in result.scores and "--bertscore-model" in result.unavailable["bertscore"]
    # RadGraph reports the combined level (the RadCliQ input): mean of per-report values 0.5 and 1.0.
    per_report = {
        "radgraph_simple": [0.1, 0.2],
        "radgraph_partial": [0.1, 0.2],
        "radgraph_complete": [0.1, 0.2],
        "radgraph_combined": [0.5, 1.0],
    }
    monkeypatch.setattr("radiolm.metrics.radgraph.radgraph_scores", lambda *args, **kwargs: per_report)
    assert protocol.scores(pairs, metrics=["radgraph"]) == {"radgraph_combined": 0.75}
    assert "radgraph_combined" not in EvaluationProtocol().scores(pairs, metrics=["radgraph"])


def test_cmrg_reports_bleu34_rouge_cider_on_jieba_words() -> None:
    pairs = [
        {
            "id": "1",
            "prediction": "两肺纹理增多，右肺上叶见结节。",
            "reference": "两肺纹理增多，右肺上叶见结节。",
            "language": "zh",
        },
        {"id": "2", "prediction": "心影增大，主动脉钙化。", "reference": "心影增大，主动脉钙化。", "language": "zh"},
    ]
    with NLGScorer(meteor=False) as scorer:
        scores = EvaluationProtocol("cmrg").scores(pairs, nlg_scorer=scorer)
    assert set(scores) == {"bleu3", "bleu4", "rouge_l", "cider"}
    # Identical texts: BLEU and ROUGE-L 1; CIDEr 10 (cosine 1 at every n, no length penalty, times 10).
    assert scores["bleu4"] == pytest.approx(1.0, abs=1e-6) and scores["rouge_l"] == pytest.approx(1.0)
    assert scores["cider"] == pytest.approx(10.0)
    chars = EvaluationProtocol("cmrg", chinese="characters").prepare(pairs[1:])
    assert chars[0]["prediction"] == "心 影 增 大 ， 主 动 脉 钙 化 。"


def test_a_bad_choice_names_the_key() -> None:
    with pytest.raises(RadioLMError, match="unknown; use one of"):
        EvaluationProtocol("r2gen")
    with pytest.raises(RadioLMError, match=r"evaluation\.averages"):
        EvaluationProtocol(averages=["weighted"])
    with pytest.raises(RadioLMError, match=r"evaluation\.uncertain"):
        EvaluationProtocol(uncertain="ignore")


def test_chexbert_protocol_without_weights_reports_ce_unavailable() -> None:
    result = EvaluationProtocol("dia_llama").evaluate(records(("a", "b")), metrics=["ce"])
    assert not result.scores and "chexbert_checkpoint" in result.unavailable["ce"]


def test_evaluate_command_protocol(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    preds = tmp_path / "preds.jsonl"
    rows = records(("Moderate cardiomegaly. Possible edema.", "Cardiomegaly. Edema."), ("No effusion.", "Effusion."))
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    main(
        [
            "evaluate",
            "--predictions",
            str(preds),
            "--protocol",
            "two_stage",
            "--labeler",
            "rules",
            "--metrics",
            "ce",
            "--out",
            str(out),
        ]
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"] == {"labeler": "rules", "uncertain": "positive", "protocol": "two_stage"}
    assert "f1_cxb_14" in metrics and "ce_f1_example" not in metrics
    with pytest.raises(SystemExit):  # its CheXbert labeler needs the weights: one line naming the options
        main(["evaluate", "--predictions", str(preds), "--protocol", "dia_llama", "--out", str(out)])
    assert "--chexbert-checkpoint" in capsys.readouterr().err


PAPER_PRESETS = {
    "r2gengpt_": "r2gengpt",
    "bidirectional_t2v_swin": "r2gengpt",  # Table 4: R2GenGPT's recipe + T2V, scored as the R2GenGPT row it faces
    "two_stage_": "two_stage",
    "bidirectional_": "bidirectional",
    "dia_llama": "dia_llama",
    "cmrg": "cmrg",
}


@pytest.mark.parametrize("experiment", sorted((REPO / "experiments").glob("*.yaml")), ids=lambda p: p.stem)
def test_each_papers_experiment_sets_its_preset(experiment: Path) -> None:
    init = yaml.safe_load(experiment.read_text())["model"]["init_args"]
    expected = next((preset for prefix, preset in PAPER_PRESETS.items() if experiment.stem.startswith(prefix)), None)
    evaluation = init.get("evaluation")
    if expected is None:
        assert evaluation is None, f"{experiment.name}: not a paper's experiment; it uses the default protocol"
        return
    assert evaluation and evaluation["init_args"]["preset"] == expected, f"{experiment.name}: set preset {expected}"
    EvaluationProtocol(**evaluation["init_args"])  # the choices are valid


@pytest.mark.parametrize(
    ("experiment", "choice"),
    [("dia_llama", ("ce_formula", "epsilon")), ("r2gengpt_deep_mimic_cxr", ("reference_tokens", 100))],
)
def test_experiment_preset_resolves(experiment: str, choice: tuple[str, Any], capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", str(REPO / "experiments" / f"{experiment}.yaml"), "--print_config"])
    assert exit_info.value.code in (0, None)
    evaluation = yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]["evaluation"]
    assert evaluation["class_path"] == "radiolm.metrics.protocols.EvaluationProtocol"
    protocol = EvaluationProtocol(**evaluation["init_args"])
    assert protocol.name in PRESETS and getattr(protocol.settings, choice[0]) == choice[1]


def test_table_names_its_protocol_and_flags_other_rows(tmp_path: Path) -> None:
    specs = {p.stem: load_spec(p) for p in (REPO / "experiments" / "tables").glob("*.yaml")}
    assert {t.protocol for t in specs["dia_llama"]} == {"dia_llama"}
    assert {t.protocol for t in specs["two_stage"]} == {"two_stage"}
    spec_path = tmp_path / "t.yaml"
    spec_path.write_text(
        yaml.safe_dump(
            {
                "title": "T",
                "protocol": "dia_llama",
                "columns": [{"key": "bleu4"}],
                "rows": [{"name": "a", "config": "x.yaml"}, {"name": "b", "config": "x.yaml"}],
            }
        )
    )
    (table,) = load_spec(spec_path)
    for name, protocol in (("a", "dia_llama"), ("b", "default")):
        run = tmp_path / "runs" / "t" / name / "version_0"
        run.mkdir(parents=True)
        (run / "metrics-test-0.json").write_text(json.dumps({"n": 1, "protocol": protocol, "bleu4": 0.1}))
    results = {row.name: collect_row(tmp_path / "runs", spec_path, row) for row in table.rows}
    markdown = render_table(table, results)
    assert "Evaluation protocol: `dia_llama`" in markdown
    assert "- b: scored with the `default` protocol, not `dia_llama`" in markdown and "- a:" not in markdown
    spec_path.write_text(yaml.safe_dump({"title": "T", "protocol": "nope", "columns": [], "rows": []}))
    with pytest.raises(RadioLMError, match="unknown protocol 'nope'"):
        load_spec(spec_path)
    assert isinstance(table, TableSpec)


def test_evaluate_dia_llama_csv_equals_pycocoevalcap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`radiolm evaluate --protocol dia_llama` reads a file in the format of Dia-LLaMA's published
    `results/dia-llama.csv` (ID, Question, Ground Truth, Pred, ...) and gives pycocoevalcap's BLEU, ROUGE-L, CIDEr."""
    import csv

    scorer = NLGScorer(meteor=False)  # METEOR is not compared here; its JVM would take most of the test's time
    monkeypatch.setattr(evaluate_module, "shared_nlg_scorer", lambda: scorer)

    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    rows = [
        (
            "609",
            "Thorax is symmetrical, no pleural effusion.",
            "Thorax is symmetrical. No pleural effusion or thickening.",
        ),
        ("1739", "Bilateral lung markings are increased.", "Bilateral lung markings were increased, disordered."),
        ("326", "No mass in mediastinum.", "A small nodule in the right lung; no mass in mediastinum."),
    ]
    path = tmp_path / "dia-llama.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["ID", "Question", "Ground Truth", "Pred", "GT_labels", "belong_to"])
        for study, pred, ref in rows:
            writer.writerow([study, "<image>...", ref, pred, "tensor([0])", "ctrg_dataset"])
    out = tmp_path / "eval"
    main(["evaluate", "--predictions", str(path), "--protocol", "dia_llama", "--metrics", "nlg", "--out", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    gts = {study: [ref] for study, _, ref in rows}
    res = {study: [pred] for study, pred, _ in rows}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    expected = {**{f"bleu{n + 1}": b for n, b in enumerate(bleu)}, "rouge_l": Rouge().compute_score(gts, res)[0]}
    expected["cider"] = Cider().compute_score(gts, res)[0]
    assert {k: metrics[k] for k in expected} == pytest.approx(expected, abs=1e-12)
    assert metrics["n"] == 3 and metrics["settings"]["protocol"] == "dia_llama"


def test_selection_on_a_metric_the_protocol_did_not_compute_is_an_error() -> None:
    """A checkpoint is never selected on a metric read as 0: validation names the key and why it is missing; a family
    left out on purpose (``metrics: [ce]`` with a BLEU-4 selection) counts 0 with a warning, as before."""
    from types import SimpleNamespace

    from radiolm.methods.base import ReportGenerationModule

    protocol = EvaluationProtocol("two_stage")
    unavailable = protocol.evaluate(records(("a", "b")), metrics=["ce"]).unavailable
    module = SimpleNamespace(selection={"f1_cxb_14": 1.0}, evaluation=protocol, metric_families=["nlg", "ce"])
    check = ReportGenerationModule._missing_selection
    error = check(module, {"bleu4": 0.2}, unavailable)  # type: ignore[arg-type]
    assert "['f1_cxb_14']" in error and "'two_stage'" in error and "chexbert_checkpoint" in error
    assert check(module, {"f1_cxb_14": 0.5}, {}) == ""  # type: ignore[arg-type]
    on_purpose = SimpleNamespace(selection={"bleu4": 1.0}, evaluation=protocol, metric_families=["ce"])
    assert check(on_purpose, {"f1_cxb_14": 0.5}, {}) == ""  # type: ignore[arg-type]
