"""Bootstrap confidence intervals over studies, as LLaVA-Rad reports them.

A resample draws N studies with replacement from the N scored studies (``numpy.random.default_rng(seed)``), and
every metric is recomputed on it exactly as on the full set: corpus metrics (BLEU, METEOR, CIDEr, micro and macro
clinical efficacy) from the resample's summed statistics, CIDEr with its document frequencies recomputed on the
resample. The interval is the percentile interval of the resampled values (``numpy.percentile``, linear
interpolation): 2.5th and 97.5th percentiles for 95%.

A resample is represented by per-study counts (a row of ``[B, N]`` summing to N), which is what lets every metric be
recomputed from statistics computed once. A *resampler* maps counts ``[B, N]`` to ``{metric: [B] values}``:
:meth:`radiolm.metrics.nlg.NLGStats.resample`, :func:`ce_resampler`, :func:`mean_resampler`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np

from radiolm.data.labels import CHEXPERT_5, CHEXPERT_14
from radiolm.metrics.clinical import CE_METRICS, LabelMatrix, binarize

__all__ = [
    "Resampler",
    "bootstrap_intervals",
    "ce_resampler",
    "mean_resampler",
    "percentile_interval",
    "resample_counts",
]

_COLUMNS = {"14": list(range(len(CHEXPERT_14))), "5": [CHEXPERT_14.index(name) for name in CHEXPERT_5]}

Resampler = Callable[[np.ndarray], Mapping[str, np.ndarray]]
"""Per-study counts ``[B, N]`` of B resamples -> ``{metric: [B]}``."""


def resample_counts(n: int, resamples: int, seed: int = 0, chunk: int = 100) -> Iterator[np.ndarray]:
    """Per-study counts of ``resamples`` bootstrap resamples of ``n`` studies, ``chunk`` resamples at a time.

    Yields:
        ``[b, n]`` float arrays whose rows sum to ``n`` (``b <= chunk``); the sequence depends only on ``seed``.
    """
    if n < 1 or resamples < 1:
        raise ValueError(f"bootstrap needs at least one study and one resample (got {n} studies, {resamples})")
    rng = np.random.default_rng(seed)
    done = 0
    while done < resamples:
        b = min(chunk, resamples - done)
        draws = rng.integers(0, n, size=(b, n)) + n * np.arange(b)[:, None]
        yield np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        done += b


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` percentile interval of resampled values (linear interpolation between order statistics)."""
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(np.asarray(values, dtype=np.float64), [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_intervals(
    resamplers: Sequence[Resampler], n: int, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of every metric the resamplers give, all on the same resamples.

    Args:
        resamplers: One per metric family (see the module docstring).
        n: Number of studies.
        resamples: Number of bootstrap resamples.
        seed: Seed of the resampling.
        level: Coverage of the interval (0.95: 2.5th to 97.5th percentile).

    Returns:
        ``{metric: (low, high)}``.
    """
    values: dict[str, list[np.ndarray]] = {}
    for counts in resample_counts(n, resamples, seed):
        for resampler in resamplers:
            for name, batch in resampler(counts).items():
                values.setdefault(name, []).append(np.asarray(batch, dtype=np.float64))
    return {name: percentile_interval(np.concatenate(parts), level) for name, parts in values.items()}


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise ratio with 0 where the denominator is 0 (clinical.py's convention)."""
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator != 0)


def ce_resampler(pred_labels: LabelMatrix, ref_labels: LabelMatrix, uncertain: str = "negative") -> Resampler:
    """Clinical efficacy of resamples, equal to :func:`radiolm.metrics.clinical.clinical_efficacy` on them.

    Args:
        pred_labels: N x 14 labels of the predictions (1 / 0 / -1 / ``None``).
        ref_labels: N x 14 labels of the references.
        uncertain: ``"negative"`` or ``"positive"``, as in clinical efficacy.
    """
    pred = np.asarray(binarize(pred_labels, uncertain, "prediction labels"), dtype=bool)
    ref = np.asarray(binarize(ref_labels, uncertain, "reference labels"), dtype=bool)
    tp, fp, fn = (x.astype(np.float64) for x in (pred & ref, pred & ~ref, ~pred & ref))
    # Example-based scores are per report; a report without positives on both sides scores 1 (clinical.py).
    hits, n_pred, n_ref = tp.sum(1), pred.sum(1).astype(np.float64), ref.sum(1).astype(np.float64)
    empty = (n_pred == 0) & (n_ref == 0)
    example = {
        "precision": np.where(empty, 1.0, _ratio(hits, n_pred)),
        "recall": np.where(empty, 1.0, _ratio(hits, n_ref)),
        "f1": np.where(empty, 1.0, _ratio(2 * hits, n_pred + n_ref)),
    }

    def resample(counts: np.ndarray) -> dict[str, np.ndarray]:
        sums = {"tp": counts @ tp, "fp": counts @ fp, "fn": counts @ fn}  # [B, 14] each
        out: dict[str, np.ndarray] = {}
        for suffix, columns in _COLUMNS.items():
            t, p, f = (sums[k][:, columns] for k in ("tp", "fp", "fn"))
            micro = (t.sum(1), p.sum(1), f.sum(1))
            out[f"ce_precision_micro_{suffix}"] = _ratio(micro[0], micro[0] + micro[1])
            out[f"ce_recall_micro_{suffix}"] = _ratio(micro[0], micro[0] + micro[2])
            out[f"ce_f1_micro_{suffix}"] = _ratio(2 * micro[0], 2 * micro[0] + micro[1] + micro[2])
            out[f"ce_precision_macro_{suffix}"] = _ratio(t, t + p).mean(1)
            out[f"ce_recall_macro_{suffix}"] = _ratio(t, t + f).mean(1)
            out[f"ce_f1_macro_{suffix}"] = _ratio(2 * t, 2 * t + p + f).mean(1)
        for name, per_report in example.items():
            out[f"ce_{name}_example"] = counts @ per_report / counts.sum(1)
        out["f1_cxb_14"], out["f1_cxb_5"] = out["ce_f1_micro_14"], out["ce_f1_micro_5"]
        return {name: out[name] for name in CE_METRICS}

    return resample


def mean_resampler(per_study: Mapping[str, Sequence[float] | np.ndarray]) -> Resampler:
    """Resampler of metrics whose corpus value is the mean of per-study values (BERTScore, RadGraph F1, ...)."""
    table = {name: np.asarray(values, dtype=np.float64) for name, values in per_study.items()}

    def resample(counts: np.ndarray) -> dict[str, np.ndarray]:
        return {name: counts @ values / counts.sum(1) for name, values in table.items()}

    return resample
