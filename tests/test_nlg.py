"""NLG metrics: equal to pycocoevalcap's scorers on real IU-Xray text, for the full set and for bootstrap resamples."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from radiolm.metrics.bootstrap import resample_counts
from radiolm.metrics.nlg import (
    NLGScorer,
    NLGStats,
    compute_nlg,
    meteor_from_stats,
    meteor_statistics,
    prepare_texts,
    segment_chinese,
    shared_nlg_scorer,
)

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs java")
SAMPLE = Path(__file__).parent / "data" / "iu_findings_sample.txt"


def iu_pairs() -> tuple[list[str], list[str]]:
    """30 (prediction, reference) pairs of IU FINDINGS: prediction = the next report's findings, except an exact
    match (study 0) and an empty prediction (study 5). Lower case, ``.`` and ``,`` as tokens (as R2Gen cleans)."""
    lines = [line.split("\t", 1)[1] for line in SAMPLE.read_text().splitlines() if not line.startswith("#")]
    texts = [" ".join(re.sub(r"([.,])", r" \1 ", line.lower()).split()) for line in lines]
    references = texts
    predictions = [texts[(i + 1) % len(texts)] for i in range(len(texts))]
    predictions[0], predictions[5] = references[0], ""
    return predictions, references


def pycocoevalcap_scores(predictions: list[str], references: list[str], meteor: object) -> dict[str, float]:
    """R2Gen's compute_scores: pycocoevalcap's own scorers, keys 0..N-1 (duplicates in a resample are new keys)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    res = {i: [p] for i, p in enumerate(predictions)}
    gts = {i: [r] for i, r in enumerate(references)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = {f"bleu{n + 1}": b for n, b in enumerate(bleu)}
    scores["meteor"] = meteor.compute_score(gts, res)[0]  # type: ignore[attr-defined]
    scores["rouge_l"] = Rouge().compute_score(gts, res)[0]
    scores["cider"] = Cider().compute_score(gts, res)[0]
    return {k: float(v) for k, v in scores.items()}


@pytest.fixture(scope="module")
def meteor_jvms() -> Iterator[tuple[NLGScorer, object]]:
    """Our scorer and pycocoevalcap's Meteor, each one JVM for the whole module (they load in parallel)."""
    from pycocoevalcap.meteor.meteor import Meteor

    scorer, reference = NLGScorer(), Meteor()
    yield scorer, reference
    scorer.close()


@pytest.fixture(scope="module")
def iu_stats(meteor_jvms: tuple[NLGScorer, object]) -> NLGStats:
    return meteor_jvms[0].stats(*iu_pairs())


@needs_java
def test_equal_to_pycocoevalcap_on_iu_text(iu_stats: NLGStats, meteor_jvms: tuple[NLGScorer, object]) -> None:
    predictions, references = iu_pairs()
    expected = pycocoevalcap_scores(predictions, references, meteor_jvms[1])
    ours = iu_stats.scores()
    assert list(ours) == ["bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider"]
    assert ours == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert 0.1 < ours["bleu1"] < 0.9 and ours["cider"] > 0  # a real, non-degenerate comparison


@needs_java
def test_resamples_equal_pycocoevalcap_on_the_resampled_lists(
    iu_stats: NLGStats, meteor_jvms: tuple[NLGScorer, object]
) -> None:
    """CIDEr's document frequencies and METEOR's aggregate are recomputed per resample, as on the resampled list."""
    predictions, references = iu_pairs()
    counts = next(resample_counts(len(predictions), resamples=3, seed=7))
    resampled = iu_stats.resample(counts)
    for b, row in enumerate(counts):
        index = [i for i, count in enumerate(row) for _ in range(int(count))]
        assert len(set(index)) < len(index)  # studies repeat, some are left out
        expected = pycocoevalcap_scores([predictions[i] for i in index], [references[i] for i in index], meteor_jvms[1])
        assert {k: float(v[b]) for k, v in resampled.items()} == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_hand_computed_bleu_rouge_cider() -> None:
    # "the heart is normal" vs "the heart is enlarged": 3 of 4 unigrams, 2 of 3 bigrams, 1 of 2 trigrams match.
    scores = compute_nlg(["the heart is normal"], ["the heart is enlarged"], meteor=False)
    assert scores["bleu1"] == pytest.approx(3 / 4)
    assert scores["bleu2"] == pytest.approx((3 / 4 * 2 / 3) ** 0.5)
    assert scores["bleu3"] == pytest.approx((3 / 4 * 2 / 3 * 1 / 2) ** (1 / 3))
    assert scores["rouge_l"] == pytest.approx(0.75)  # LCS 3, P = R = 3/4
    assert "meteor" not in scores
    # CIDEr, 2 studies: "a b"/"a b" has cosine 1 for 1- and 2-grams, 0 for 3- and 4-grams -> 10 * 2/4 = 5;
    # "c"/"d" shares nothing -> 0. Mean 2.5.
    assert compute_nlg(["a b", "c"], ["a b", "d"], meteor=False)["cider"] == pytest.approx(2.5)


def test_meteor_formula_and_exact_match_chunks() -> None:
    # 7 hypothesis words (4 function words), 5 reference words (2), 3 content + 2 function exact matches, 4 chunks.
    line = "7.0 5.0 4.0 2.0 3.0 3.0 2.0 2.0" + " 0.0" * 12 + " 4.0 5.0 5.0"
    precision = (3 * 0.75 + 2 * 0.25) / (0.75 * 3 + 0.25 * 4)
    recall = (3 * 0.75 + 2 * 0.25) / (0.75 * 3 + 0.25 * 2)
    f_mean = 1 / (0.15 / precision + 0.85 / recall)
    expected = f_mean * (1 - 0.6 * (4 / 5) ** 0.2)
    assert meteor_from_stats(meteor_statistics([line]).sum(0)) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.4148737611845802)  # what the METEOR 1.5 JVM prints for this pair
    # A complete match in one chunk adds no chunk to an aggregate (MeteorStats.addStats).
    exact = "25.0 25.0 9.0 9.0 16.0 16.0 9.0 9.0" + " 0.0" * 12 + " 1.0 25.0 25.0"
    assert meteor_statistics([exact, line])[:, 20].tolist() == [0.0, 4.0]


def test_chinese_reports_are_segmented_into_words() -> None:
    prediction, reference = "双肺纹理清晰。", "双肺纹理增多。"
    assert segment_chinese(prediction) == "双肺 纹理 清晰 。"
    assert prepare_texts([prediction, "Heart  normal."], ["zh", "en"]) == ["双肺 纹理 清晰 。", "Heart normal."]
    segmented = compute_nlg([prediction], [reference], languages=["zh"], meteor=False)
    unsegmented = compute_nlg([prediction], [reference], meteor=False)
    assert segmented["bleu1"] == pytest.approx(3 / 4)  # 双肺, 纹理, 。 of 4 words
    assert segmented["rouge_l"] == pytest.approx(3 / 4)
    assert unsegmented["bleu1"] == pytest.approx(0, abs=1e-9)  # one "word" per report, and they differ
    with pytest.raises(ValueError, match="1 languages for 2 texts"):
        prepare_texts(["a", "b"], ["en"])


@needs_java
def test_one_meteor_jvm_per_process_replaced_when_it_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every evaluation in a process (each epoch's validation, the test, a table's rows) asks one JVM; a stopped
    scorer is replaced (here by one without METEOR, so that the test starts no second JVM)."""
    from radiolm.metrics import nlg
    from radiolm.metrics.evaluate import evaluate_records

    first = shared_nlg_scorer()
    assert shared_nlg_scorer() is first and not first.closed
    records = [{"id": "a", "prediction": "no effusion .", "reference": "no effusion ."}]
    assert evaluate_records(records, metrics=["nlg"])["meteor"] == pytest.approx(1.0, abs=0.01)
    assert shared_nlg_scorer() is first and not first.closed  # evaluate used it and left it running
    stopped = NLGScorer(meteor=False)
    stopped.close()
    monkeypatch.setattr(nlg, "_shared", stopped)
    monkeypatch.setattr(nlg, "NLGScorer", lambda: NLGScorer(meteor=False))
    replacement = shared_nlg_scorer()
    assert replacement is not stopped and not replacement.closed and stopped.closed
    monkeypatch.setattr(nlg, "_shared", first)  # the process's JVM stays for the later tests


def test_meteor_without_java_is_unavailable_not_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with NLGScorer() as scorer:
        stats = scorer.stats(["no effusion ."], ["no effusion ."])
    assert "java" in stats.unavailable["meteor"]
    assert "meteor" not in stats.scores() and stats.scores()["bleu1"] == pytest.approx(1.0)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        compute_nlg(["a", "b"], ["a"], meteor=False)
    with pytest.raises(ValueError, match="no predictions to score"):
        compute_nlg([], [], meteor=False)
    assert np.isfinite(compute_nlg([""], ["no effusion ."], meteor=False)["bleu1"])  # empty is scored, not an error
