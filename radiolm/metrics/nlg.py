"""Natural-language-generation metrics as R2Gen's ``compute_scores`` computes them with pycocoevalcap.

BLEU-1..4, METEOR 1.5 (the jar inside pycocoevalcap, ``-l en -norm``; Java needed), ROUGE-L and CIDEr over one
prediction and one reference per study. Texts are scored as given (R2Gen-style cleaned, lower-case, punctuation as
tokens), on one line each; references are never truncated. A study whose language is ``zh`` is first cut into words
with jieba (``segment_chinese``), as the continual-learning paper does, so that n-grams are words, not whole lines.
SPICE is not offered: it downloads Stanford CoreNLP at run time.

Every metric is computed from per-study statistics, once (:meth:`NLGScorer.stats`), then aggregated the way
pycocoevalcap aggregates them (:meth:`NLGStats.resample`), for the full set or for any bootstrap resample given as
per-study counts:

- BLEU: summed clipped n-gram matches, n-gram counts and lengths (corpus BLEU, ``option="closest"``).
- ROUGE-L: the mean of per-study scores.
- METEOR: the JVM's sufficient statistics per study, summed, then METEOR 1.5's formula (``en`` parameters); the point
  estimate is the JVM's own ``EVAL`` over all studies.
- CIDEr: the document frequencies of reference n-grams (and the log corpus size) are recomputed on every resample,
  as pycocoevalcap would do on the resampled set; per-study scores are then averaged.

The JVM starts when an :class:`NLGScorer` is made (about 10 s to load METEOR's paraphrase table, in the background
while the other statistics are computed) and serves every call until :meth:`NLGScorer.close`.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import subprocess
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "NLG_METRICS",
    "MeteorProcess",
    "NLGScorer",
    "NLGStats",
    "compute_nlg",
    "meteor_from_stats",
    "meteor_statistics",
    "prepare_texts",
    "segment_chinese",
    "sentence_bleu",
    "shared_nlg_scorer",
]

log = logging.getLogger(__name__)

NLG_METRICS = ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider")

# METEOR 1.5 `-l en` (task "rank"): alpha, beta, gamma, delta and the exact / stem / synonym / paraphrase weights.
_METEOR_ALPHA, _METEOR_BETA, _METEOR_GAMMA, _METEOR_DELTA = 0.85, 0.20, 0.60, 0.75
_METEOR_WEIGHTS = (1.0, 0.6, 0.8, 0.6)
_METEOR_FIELDS = 23  # 4 lengths, 4 modules x 4 match counts, chunks, 2 word-match counts (MeteorStats.toString)
_CIDER_N, _CIDER_SIGMA = 4, 6.0


@lru_cache(maxsize=1)
def _jieba() -> ModuleType:
    import jieba

    jieba.setLogLevel(logging.WARNING)  # no "Building prefix dict ..." on every run
    return jieba


def segment_chinese(text: str) -> str:
    """Words of a Chinese text (jieba's default dictionary, accurate mode), separated by single spaces."""
    return " ".join(word for word in _jieba().lcut(text) if word.strip())


def prepare_texts(texts: Sequence[str], languages: Sequence[str] | None = None) -> list[str]:
    """One line per text, ``|||`` removed (METEOR's separator), ``zh`` texts segmented into words.

    Args:
        texts: Reports as given.
        languages: Language of each text (``"en"``, ``"zh"``, ...); ``None``: all English. Only ``zh`` changes the
            text; any other language is split at white space.
    """
    if languages is not None and len(languages) != len(texts):
        raise ValueError(f"{len(languages)} languages for {len(texts)} texts")
    out = []
    for i, text in enumerate(texts):
        if languages is not None and str(languages[i]).lower().startswith("zh"):
            text = segment_chinese(text)
        out.append(" ".join(text.replace("|||", " ").split()))
    return out


class MeteorProcess:
    """The METEOR 1.5 jar over stdio (pycocoevalcap's command line), one JVM for many calls.

    Raises:
        FileNotFoundError: when ``java`` is not on ``PATH``.
    """

    def __init__(self) -> None:
        import pycocoevalcap.meteor.meteor as pycoco_meteor

        java = shutil.which("java")
        if java is None:
            raise FileNotFoundError("no `java` on PATH (install a JRE, e.g. openjdk-17-jre)")
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (open as long as the JVM, closed in close())
        command = [java, "-jar", "-Xmx2G", "meteor-1.5.jar", "-", "-", "-stdio", "-l", "en", "-norm"]
        self._process = subprocess.Popen(
            command,
            cwd=Path(pycoco_meteor.__file__).parent,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )

    def _ask(self, line: str, answers: int = 1) -> list[str]:
        assert self._process.stdin is not None and self._process.stdout is not None
        try:
            self._process.stdin.write((line + "\n").encode())
            self._process.stdin.flush()
        except BrokenPipeError:
            pass  # the readline below reports it with the JVM's message
        replies = [self._process.stdout.readline().decode().strip() for _ in range(answers)]
        if not all(replies):
            self._stderr.seek(0)
            message = " ".join(self._stderr.read().decode(errors="replace").split()[-40:])
            raise RuntimeError(f"the METEOR JVM stopped: {message or 'no message'}")
        return replies

    def stats(self, hypotheses: Sequence[str], references: Sequence[str]) -> list[str]:
        """METEOR's sufficient statistics of each (hypothesis, reference) pair, one-line texts."""
        return [self._ask(f"SCORE ||| {ref} ||| {hyp}")[0] for hyp, ref in zip(hypotheses, references, strict=True)]

    def corpus_score(self, stats: Sequence[str]) -> float:
        """The JVM's METEOR of the summed statistics (what pycocoevalcap's ``Meteor.compute_score`` returns)."""
        return float(self._ask("EVAL ||| " + " ||| ".join(stats), answers=len(stats) + 1)[-1])

    @property
    def running(self) -> bool:
        """Whether the JVM is still up."""
        return self._process.poll() is None

    def close(self) -> None:
        """Stop the JVM."""
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            self._process.kill()
            self._process.wait()
        self._stderr.close()


def meteor_statistics(lines: Sequence[str]) -> np.ndarray:
    """METEOR statistics lines of the JVM as rows ``[N, 23]`` that add up to the JVM's aggregate.

    As ``MeteorStats.addStats`` does, a segment that matches completely in one chunk adds no chunk (its
    fragmentation is 0), so its chunk count is set to 0 here.
    """
    rows = np.array([[float(x) for x in line.split()] for line in lines], dtype=np.float64).reshape(len(lines), -1)
    if rows.shape[1] != _METEOR_FIELDS:
        raise RuntimeError(f"METEOR gave {rows.shape[1]} statistics per segment, expected {_METEOR_FIELDS}")
    stage = rows[:, 4:20].reshape(-1, 4, 4)
    test_total, ref_total = stage[:, :, 0].sum(1) + stage[:, :, 2].sum(1), stage[:, :, 1].sum(1) + stage[:, :, 3].sum(1)
    exact = (test_total == rows[:, 0]) & (ref_total == rows[:, 1]) & (rows[:, 20] == 1)
    rows[exact, 20] = 0.0
    return rows


def meteor_from_stats(stats: np.ndarray) -> np.ndarray:
    """METEOR 1.5 (``MeteorScorer.computeMetrics``) of summed :func:`meteor_statistics` ``[..., 23]`` -> ``[...]``."""
    s = np.asarray(stats, dtype=np.float64)
    test_len, ref_len, test_fw, ref_fw = s[..., 0], s[..., 1], s[..., 2], s[..., 3]
    stage = s[..., 4:20].reshape(*s.shape[:-1], 4, 4)  # module x (test content, ref content, test fn, ref fn)
    chunks, test_words, ref_words = s[..., 20], s[..., 21], s[..., 22]
    delta = _METEOR_DELTA
    test_weighted_len = delta * (test_len - test_fw) + (1.0 - delta) * test_fw
    ref_weighted_len = delta * (ref_len - ref_fw) + (1.0 - delta) * ref_fw
    test_matches, ref_matches = np.zeros_like(test_len), np.zeros_like(test_len)
    for kind, factor in ((0, delta), (2, 1.0 - delta)):  # content matches first, then function words (as Java)
        for module, weight in enumerate(_METEOR_WEIGHTS):
            test_matches = test_matches + stage[..., module, kind] * weight * factor
        for module, weight in enumerate(_METEOR_WEIGHTS):
            ref_matches = ref_matches + stage[..., module, kind + 1] * weight * factor
    test_total, ref_total = stage[..., 0].sum(-1) + stage[..., 2].sum(-1), stage[..., 1].sum(-1) + stage[..., 3].sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision, recall = test_matches / test_weighted_len, ref_matches / ref_weighted_len
        f_mean = 1.0 / (((1.0 - _METEOR_ALPHA) / precision) + (_METEOR_ALPHA / recall))
        exact = (test_total == test_len) & (ref_total == ref_len) & (chunks == 1)
        frag = np.where(exact, 0.0, chunks / ((test_words + ref_words) / 2))
        score = f_mean * (1.0 - _METEOR_GAMMA * np.power(frag, _METEOR_BETA))
    return np.where(np.isnan(score), 0.0, np.maximum(score, 0.0))


@dataclass
class _CiderOrder:
    """Sparse tables of one n-gram order: entries ``(study, n-gram id, value)`` as parallel arrays."""

    vocabulary: int
    presence: tuple[np.ndarray, np.ndarray]  # (study, n-gram) of each distinct reference n-gram
    hypothesis: tuple[np.ndarray, np.ndarray, np.ndarray]  # (study, n-gram, tf^2)
    reference: tuple[np.ndarray, np.ndarray, np.ndarray]  # (study, n-gram, tf^2)
    common: tuple[np.ndarray, np.ndarray, np.ndarray]  # (study, n-gram, min(tf_hyp, tf_ref) * tf_ref)


def _ngram_counts(words: list[str], n: int) -> dict[tuple[str, ...], int]:
    counts: dict[tuple[str, ...], int] = defaultdict(int)
    for i in range(len(words) - n + 1):
        counts[tuple(words[i : i + n])] += 1
    return counts


def _cider_tables(hypotheses: list[str], references: list[str]) -> tuple[list[_CiderOrder], np.ndarray]:
    """CIDEr tables per order and the Gaussian length penalty per study (pycocoevalcap's CiderScorer)."""
    orders = []
    for n in range(1, _CIDER_N + 1):
        ids: dict[tuple[str, ...], int] = {}
        entries: dict[str, list[tuple[int, int, float]]] = {"presence": [], "hyp": [], "ref": [], "common": []}
        for study, (hyp, ref) in enumerate(zip(hypotheses, references, strict=True)):
            h, r = _ngram_counts(hyp.split(), n), _ngram_counts(ref.split(), n)
            for gram, tf in r.items():
                gid = ids.setdefault(gram, len(ids))
                entries["presence"].append((study, gid, 1.0))
                entries["ref"].append((study, gid, float(tf * tf)))
            for gram, tf in h.items():
                gid = ids.setdefault(gram, len(ids))
                entries["hyp"].append((study, gid, float(tf * tf)))
                if gram in r:
                    entries["common"].append((study, gid, float(min(tf, r[gram]) * r[gram])))
        arrays = {key: _columns(rows) for key, rows in entries.items()}
        orders.append(_CiderOrder(len(ids), arrays["presence"][:2], arrays["hyp"], arrays["ref"], arrays["common"]))
    # pycocoevalcap's "length" counts bigrams (its `n == 1` is the 0-based order of 2-grams).
    bigrams = [[max(0, len(text.split()) - 1) for text in texts] for texts in (hypotheses, references)]
    delta = np.asarray(bigrams[0], np.float64) - np.asarray(bigrams[1], np.float64)
    return orders, np.e ** (-(delta**2) / (2 * _CIDER_SIGMA**2))


def _columns(rows: list[tuple[int, int, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parallel arrays (study, n-gram id, value) of a list of entries."""
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    study, gram, value = zip(*rows, strict=True)
    return np.asarray(study, np.int64), np.asarray(gram, np.int64), np.asarray(value, np.float64)


@dataclass
class NLGStats:
    """Per-study statistics of N studies, aggregated for the full set or per bootstrap resample.

    Attributes:
        n: Number of studies.
        bleu: ``[N, 10]``: hypothesis length, reference length, then n-gram counts and clipped matches for n=1..4.
        rouge_l: ``[N]`` per-study ROUGE-L (pycocoevalcap, beta 1.2).
        cider: Tables per n-gram order and ``[N]`` length penalties.
        meteor: ``[N, 23]`` METEOR statistics, ``None`` when METEOR is unavailable.
        meteor_score: The JVM's METEOR over all N studies.
        unavailable: ``{metric: reason}`` for metrics that could not be computed (never scored as 0).
    """

    n: int
    bleu: np.ndarray
    rouge_l: np.ndarray
    cider: tuple[list[_CiderOrder], np.ndarray]
    meteor: np.ndarray | None = None
    meteor_score: float | None = None
    unavailable: dict[str, str] = field(default_factory=dict)

    def scores(self) -> dict[str, float]:
        """Corpus scores of all N studies (equal to pycocoevalcap's on the same texts)."""
        values = {k: float(v[0]) for k, v in self.resample(np.ones((1, self.n))).items()}
        if self.meteor_score is not None:
            values["meteor"] = self.meteor_score
        return values

    def resample(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Scores of B resamples given as per-study counts ``[B, N]`` (each row sums to the resample size).

        Returns:
            ``{metric: [B]}``, equal to pycocoevalcap on the resampled list of studies.
        """
        weights = np.asarray(weights, dtype=np.float64)
        out = _bleu(weights @ self.bleu)
        if self.meteor is not None:
            out["meteor"] = meteor_from_stats(weights @ self.meteor)
        out["rouge_l"] = (weights @ self.rouge_l) / weights.sum(1)
        out["cider"] = np.array([self._cider(row) for row in weights])
        return {k: out[k] for k in NLG_METRICS if k in out}

    def _cider(self, w: np.ndarray) -> float:
        orders, penalty = self.cider
        total = np.zeros(self.n)
        ref_len = np.log(float(w.sum()))
        for order in orders:
            rows, cols = order.presence
            document_frequency = np.bincount(cols, weights=w[rows], minlength=order.vocabulary)
            idf2 = (ref_len - np.log(np.maximum(1.0, document_frequency))) ** 2
            hyp_norm, ref_norm, common = (
                np.bincount(t[0], weights=t[2] * idf2[t[1]], minlength=self.n)
                for t in (order.hypothesis, order.reference, order.common)
            )
            both = (hyp_norm != 0) & (ref_norm != 0)
            value = np.where(both, common / np.sqrt(np.where(both, hyp_norm * ref_norm, 1.0)), common)
            total += value * penalty
        per_study = total / len(orders) * 10.0
        return float(w @ per_study / w.sum())


def _bleu_rows(hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """``[N, 10]`` BLEU statistics per study: lengths, n-gram counts and clipped matches (pycocoevalcap's cooking)."""
    from pycocoevalcap.bleu.bleu_scorer import cook_refs, cook_test

    rows = np.zeros((len(hypotheses), 10))
    for i, (hyp, ref) in enumerate(zip(hypotheses, references, strict=True)):
        cooked: dict[str, Any] = cook_test(hyp, cook_refs([ref]), eff="closest")
        rows[i] = [cooked["testlen"], cooked["reflen"], *cooked["guess"], *cooked["correct"]]
    return rows


def sentence_bleu(
    predictions: Sequence[str], references: Sequence[str], n: int = 2, languages: Sequence[str] | None = None
) -> list[float]:
    """Per-study BLEU-n, as pycocoevalcap's ``Bleu.compute_score`` lists it per image (its smoothing constants)."""
    rows = _bleu_rows(prepare_texts(predictions, languages), prepare_texts(references, languages))
    return [float(v) for v in _bleu(rows)[f"bleu{n}"]]


def _bleu(sums: np.ndarray) -> dict[str, np.ndarray]:
    """pycocoevalcap's corpus BLEU-1..4 of summed statistics ``[B, 10]`` (same tiny / small constants)."""
    tiny, small = 1e-15, 1e-9
    test_len, ref_len = sums[:, 0], sums[:, 1]
    product, out = np.ones(len(sums)), {}
    ratio = (test_len + tiny) / (ref_len + small)
    brevity = np.where(ratio < 1, np.exp(1 - 1 / np.where(ratio < 1, ratio, 1.0)), 1.0)
    for k in range(4):
        product = product * (sums[:, 6 + k] + tiny) / (sums[:, 2 + k] + small)
        out[f"bleu{k + 1}"] = product ** (1.0 / (k + 1)) * brevity
    return out


class NLGScorer:
    """Reusable NLG scorer: one METEOR JVM for every call (also a context manager that closes it).

    Args:
        meteor: Compute METEOR; without Java it is reported in :attr:`NLGStats.unavailable`, never as 0.
    """

    def __init__(self, meteor: bool = True) -> None:
        self._meteor: MeteorProcess | None = None
        self._meteor_reason = "" if meteor else "not requested"
        if meteor:
            try:
                self._meteor = MeteorProcess()
            except FileNotFoundError as e:
                self._meteor_reason = str(e)
                log.warning("radiolm: METEOR unavailable: %s", e)

    def stats(
        self, predictions: Sequence[str], references: Sequence[str], languages: Sequence[str] | None = None
    ) -> NLGStats:
        """Per-study statistics of all metrics (the JVM is asked last, so that it loads meanwhile)."""
        from pycocoevalcap.rouge.rouge import Rouge

        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
        if not predictions:
            raise ValueError("no predictions to score")
        hyps, refs = prepare_texts(predictions, languages), prepare_texts(references, languages)
        rouge = Rouge()
        rouge_l = np.array([rouge.calc_score([hyp], [ref]) for hyp, ref in zip(hyps, refs, strict=True)])
        stats = NLGStats(len(hyps), _bleu_rows(hyps, refs), rouge_l, _cider_tables(hyps, refs))
        if self._meteor is None:
            stats.unavailable["meteor"] = self._meteor_reason
        else:
            lines = self._meteor.stats(hyps, refs)
            stats.meteor = meteor_statistics(lines)
            stats.meteor_score = self._meteor.corpus_score(lines)
        return stats

    def __call__(
        self, predictions: Sequence[str], references: Sequence[str], languages: Sequence[str] | None = None
    ) -> dict[str, float]:
        """Corpus scores (see :func:`compute_nlg`)."""
        return self.stats(predictions, references, languages).scores()

    @property
    def closed(self) -> bool:
        """Closed, or its METEOR JVM has stopped: METEOR needs a new scorer."""
        if self._meteor is not None:
            return not self._meteor.running
        return self._meteor_reason == _CLOSED

    def close(self) -> None:
        """Stop the METEOR JVM."""
        if self._meteor is not None:
            self._meteor.close()
            self._meteor = None
        self._meteor_reason = _CLOSED

    def __enter__(self) -> NLGScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_CLOSED = "the scorer was closed"
_shared: NLGScorer | None = None


def shared_nlg_scorer() -> NLGScorer:
    """The process's scorer: one METEOR JVM, started on first use and stopped when the process exits.

    A new JVM spends 8-16 s on 2 cores loading METEOR's paraphrase table; a run that validates every epoch and then
    tests, or a table of many evaluations, would pay that each time. A scorer whose JVM stopped is replaced.
    """
    global _shared
    if _shared is None or _shared.closed:
        _shared = NLGScorer()
        atexit.register(_shared.close)
    return _shared


def compute_nlg(
    predictions: Sequence[str], references: Sequence[str], languages: Sequence[str] | None = None, meteor: bool = True
) -> dict[str, float]:
    """Corpus-level NLG scores, equal to pycocoevalcap's scorers on the same (prepared) texts.

    Args:
        predictions: One generated report per study.
        references: The reference report of each study, same order.
        languages: Language per study (``"zh"`` is segmented with jieba); ``None``: all English.
        meteor: Compute METEOR (with :func:`shared_nlg_scorer`: the first call starts its JVM, about 10 s).

    Returns:
        ``{"bleu1", ..., "bleu4", "meteor", "rouge_l", "cider"}``; ``meteor`` is absent (with a logged reason)
        when Java is not installed, never 0.
    """
    if meteor:
        return shared_nlg_scorer()(predictions, references, languages)
    with NLGScorer(meteor=False) as scorer:
        return scorer(predictions, references, languages)
