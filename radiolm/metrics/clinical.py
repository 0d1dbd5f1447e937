"""Clinical efficacy (CE): CheXpert-14 labels of the generated reports scored against those of the references.

The same labeler labels both sides (default: the rule-based :class:`~radiolm.metrics.chexpert_labeler.RuleLabeler`;
any callable ``labeler(texts) -> [[1 | 0 | -1 | None] * 14, ...]`` fits, e.g. a CheXbert labeler). Labels are then
binarized: 1 stays 1, 0 and blank become 0, uncertain (-1) becomes 0 with ``uncertain="negative"`` (the default,
R2GenCMN's convention) or 1 with ``uncertain="positive"`` (LLaVA-Rad's variant).

Metric names (all in ``[0, 1]``):

- ``ce_{precision,recall,f1}_micro_14`` / ``_micro_5``: true and false positives and false negatives summed over the
  14 observations (or the 5 of :data:`~radiolm.data.labels.CHEXPERT_5`) and all reports, then one P / R / F1.
- ``ce_{precision,recall,f1}_macro_14`` / ``_macro_5``: P, R and F1 per observation, then their unweighted mean.
- ``ce_{precision,recall,f1}_example``: P, R and F1 per report over the 14 observations, then the mean over reports
  (example-based, as PromptMRG).
- ``f1_cxb_14`` / ``f1_cxb_5``: the two-stage fine-tuning paper's F1-CXB-14 / F1-CXB-5. The paper says only "the F1
  score between the output of CheXBert on generated report and ground truth report"; radiolm maps them to the
  micro averages (``ce_f1_micro_14`` / ``ce_f1_micro_5``), the averaging of the F1-CheXbert metric of the prior
  work it compares to. With the rule-based labeler these are not CheXbert numbers.

Undefined ratios: in micro and macro averages a ratio with a zero denominator is 0 (scikit-learn's
``zero_division=0``, which the peers' code uses), so in a macro average an observation that is neither present nor
predicted counts as 0. Example-based, a report whose reference and prediction are both without positives scores 1
for P, R and F1 (an empty set matched by an empty set); any other zero denominator scores 0.

``formula="epsilon"`` (Dia-LLaMA's official ``utils/metrics_clinical.py``) instead adds 1e-6 to every denominator:
``P = tp / (tp + fp + 1e-6)``, ``R = tp / (tp + fn + 1e-6)``, ``F1 = tp / (tp + (fp + fn) / 2 + 1e-6)``, for micro,
macro (per observation) and example-based (per report) alike; a report with no positive on either side then scores
0, and no ratio is exactly 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from radiolm.data.labels import CHEXPERT_5, CHEXPERT_14

__all__ = [
    "CE_FORMULAS",
    "CE_METRICS",
    "UNCERTAIN_POLICIES",
    "Labeler",
    "binarize",
    "clinical_efficacy",
    "compute_ce",
    "per_observation_markdown",
    "per_observation_table",
]

Labeler = Callable[[list[str]], list[list[int | None]]]
"""A report labeler: texts in, 14 labels per text (1 / 0 / -1 / ``None``) in CHEXPERT_14 order out."""

LabelMatrix = Sequence[Sequence[int | None]]

CE_FORMULAS = ("suite", "epsilon")
"""How ratios are formed: zero denominators as the module docstring says (``suite``), or Dia-LLaMA's ``+ 1e-6``."""

EPSILON = 1e-6
"""The constant Dia-LLaMA's ``utils/metrics_clinical.py`` adds to every denominator."""

UNCERTAIN_POLICIES = ("negative", "positive")
"""How an uncertain label (-1) is binarized."""

CE_METRICS: tuple[str, ...] = (
    *(f"ce_{m}_{avg}_{n}" for n in (14, 5) for avg in ("micro", "macro") for m in ("precision", "recall", "f1")),
    "ce_precision_example",
    "ce_recall_example",
    "ce_f1_example",
    "f1_cxb_14",
    "f1_cxb_5",
)
"""Keys of :func:`clinical_efficacy` and :func:`compute_ce`, in table order."""

_INDEX_5 = tuple(CHEXPERT_14.index(name) for name in CHEXPERT_5)
_INDEX_14 = tuple(range(len(CHEXPERT_14)))


def binarize(labels: LabelMatrix, uncertain: str = "negative", name: str = "labels") -> list[list[int]]:
    """0 / 1 matrix of a label matrix: 1 -> 1, 0 and ``None`` -> 0, -1 -> 0 (``"negative"``) or 1 (``"positive"``).

    Args:
        labels: N rows of 14 values in :data:`~radiolm.data.labels.CHEXPERT_14` order.
        uncertain: ``"negative"`` or ``"positive"``.
        name: what ``labels`` is, for error messages.

    Returns:
        N rows of 14 zeros and ones. A NaN counts as blank (what a CSV reader gives for an empty cell).

    Raises:
        ValueError: for an unknown policy, a row without 14 values or a value outside 1 / 0 / -1 / ``None``.
    """
    if uncertain not in UNCERTAIN_POLICIES:
        raise ValueError(f"uncertain={uncertain!r}; use one of {list(UNCERTAIN_POLICIES)}")
    mapping = {1: 1, 0: 0, None: 0, -1: 1 if uncertain == "positive" else 0}
    out = []
    for row_number, row in enumerate(labels):
        if len(row) != len(CHEXPERT_14):
            raise ValueError(f"{name} row {row_number} has {len(row)} values; expected 14 (CHEXPERT_14 order)")
        try:
            out.append([mapping[_label_key(value)] for value in row])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{name} row {row_number}: values must be 1, 0, -1 or None, got {list(row)}") from None
    return out


def _label_key(value: object) -> int | None:
    """``None`` for a blank (``None`` or NaN, as a CSV reader gives), else the integer value; 0.5 raises."""
    if value is None or value != value:
        return None
    number = float(value)  # type: ignore[arg-type]
    if number != int(number):
        raise ValueError(value)
    return int(number)


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1 with 0 for a zero denominator."""
    return _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn)


def _prf_epsilon(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    """Precision, recall and F1 as Dia-LLaMA's code forms them (``+ 1e-6`` in every denominator)."""
    return tp / (tp + fp + EPSILON), tp / (tp + fn + EPSILON), tp / (tp + 0.5 * (fp + fn) + EPSILON)


def _counts(pred: list[list[int]], ref: list[list[int]], column: int) -> tuple[int, int, int]:
    """True positives, false positives and false negatives of one observation over all reports."""
    tp = sum(p[column] and r[column] for p, r in zip(pred, ref, strict=True))
    fp = sum(p[column] and not r[column] for p, r in zip(pred, ref, strict=True))
    fn = sum(r[column] and not p[column] for p, r in zip(pred, ref, strict=True))
    return tp, fp, fn


def _binary_pair(pred_labels: LabelMatrix, ref_labels: LabelMatrix, uncertain: str) -> tuple[list, list]:
    if len(pred_labels) != len(ref_labels):
        raise ValueError(f"{len(pred_labels)} prediction label rows but {len(ref_labels)} reference label rows")
    if not pred_labels:
        raise ValueError("no reports to score: clinical efficacy needs at least one prediction and reference")
    return binarize(pred_labels, uncertain, "prediction labels"), binarize(ref_labels, uncertain, "reference labels")


def _example_based(pred: list[list[int]], ref: list[list[int]], formula: str = "suite") -> tuple[float, float, float]:
    """Mean per-report P, R, F1 over the 14 observations; both sides empty scores 1, or 0 with ``epsilon``."""
    totals = [0.0, 0.0, 0.0]
    for p_row, r_row in zip(pred, ref, strict=True):
        tp = sum(p and r for p, r in zip(p_row, r_row, strict=True))
        n_pred, n_ref = sum(p_row), sum(r_row)
        if formula == "epsilon":
            scores = _prf_epsilon(tp, n_pred - tp, n_ref - tp)
        elif n_pred == 0 and n_ref == 0:
            scores = (1.0, 1.0, 1.0)
        else:
            scores = (_ratio(tp, n_pred), _ratio(tp, n_ref), _ratio(2 * tp, n_pred + n_ref))
        totals = [t + s for t, s in zip(totals, scores, strict=True)]
    return totals[0] / len(pred), totals[1] / len(pred), totals[2] / len(pred)


def clinical_efficacy(
    pred_labels: LabelMatrix, ref_labels: LabelMatrix, uncertain: str = "negative", formula: str = "suite"
) -> dict[str, float]:
    """CE metrics of two label matrices (names and conventions in the module docstring).

    Args:
        pred_labels: N x 14 labels of the generated reports (1 / 0 / -1 / ``None``).
        ref_labels: N x 14 labels of the reference reports, same order.
        uncertain: ``"negative"`` (default) or ``"positive"``: how -1 is binarized.
        formula: ``"suite"`` (default) or ``"epsilon"`` (Dia-LLaMA's code): how ratios are formed.

    Returns:
        ``{name: value}`` for every name of :data:`CE_METRICS`.
    """
    if formula not in CE_FORMULAS:
        raise ValueError(f"formula={formula!r}; use one of {list(CE_FORMULAS)}")
    prf = _prf_epsilon if formula == "epsilon" else _prf
    pred, ref = _binary_pair(pred_labels, ref_labels, uncertain)
    scores: dict[str, float] = {}
    for suffix, columns in (("14", _INDEX_14), ("5", _INDEX_5)):
        counts = [_counts(pred, ref, column) for column in columns]
        micro = prf(*(sum(c[k] for c in counts) for k in range(3)))
        per_observation = [prf(*c) for c in counts]
        macro = [sum(values[k] for values in per_observation) / len(columns) for k in range(3)]
        for k, metric in enumerate(("precision", "recall", "f1")):
            scores[f"ce_{metric}_micro_{suffix}"] = micro[k]
            scores[f"ce_{metric}_macro_{suffix}"] = macro[k]
    example = _example_based(pred, ref, formula)
    scores.update(ce_precision_example=example[0], ce_recall_example=example[1], ce_f1_example=example[2])
    scores["f1_cxb_14"], scores["f1_cxb_5"] = scores["ce_f1_micro_14"], scores["ce_f1_micro_5"]
    return {name: scores[name] for name in CE_METRICS}


def per_observation_table(
    pred_labels: LabelMatrix, ref_labels: LabelMatrix, uncertain: str = "negative"
) -> list[dict[str, float | int | str]]:
    """One row per CheXpert-14 observation: ``observation, tp, fp, fn, support, precision, recall, f1``.

    ``support`` is the number of reference reports positive for the observation (after binarization).
    """
    pred, ref = _binary_pair(pred_labels, ref_labels, uncertain)
    rows: list[dict[str, float | int | str]] = []
    for column, observation in enumerate(CHEXPERT_14):
        tp, fp, fn = _counts(pred, ref, column)
        precision, recall, f1 = _prf(tp, fp, fn)
        row: dict[str, float | int | str] = {"observation": observation, "tp": tp, "fp": fp, "fn": fn}
        row.update(support=tp + fn, precision=precision, recall=recall, f1=f1)
        rows.append(row)
    return rows


def per_observation_markdown(pred_labels: LabelMatrix, ref_labels: LabelMatrix, uncertain: str = "negative") -> str:
    """:func:`per_observation_table` as a markdown table, with micro and macro rows over the 14 and the 5."""
    rows = per_observation_table(pred_labels, ref_labels, uncertain)
    scores = clinical_efficacy(pred_labels, ref_labels, uncertain)
    lines = [
        f"| observation (uncertain as {uncertain}) | tp | fp | fn | support | precision | recall | f1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        counts = " | ".join(str(row[key]) for key in ("tp", "fp", "fn", "support"))
        values = " | ".join(f"{row[key]:.3f}" for key in ("precision", "recall", "f1"))
        lines.append(f"| {row['observation']} | {counts} | {values} |")
    for average in ("micro", "macro"):
        for n in ("14", "5"):
            values = " | ".join(f"{scores[f'ce_{m}_{average}_{n}']:.3f}" for m in ("precision", "recall", "f1"))
            lines.append(f"| **{average} ({n})** | | | | | {values} |")
    values = " | ".join(f"{scores[f'ce_{m}_example']:.3f}" for m in ("precision", "recall", "f1"))
    lines.append(f"| **example-based (14)** | | | | | {values} |")
    return "\n".join(lines)


def compute_ce(
    predictions: Sequence[str],
    references: Sequence[str],
    labeler: Labeler | None = None,
    uncertain: str = "negative",
) -> dict[str, float]:
    """Label predictions and references with the same labeler and score them with :func:`clinical_efficacy`.

    Args:
        predictions: one generated report per study (an empty string is labelled as a report that says nothing).
        references: the reference report of each study, same order.
        labeler: ``labeler(texts)`` -> 14 labels per text; default the rule-based labeler.
        uncertain: ``"negative"`` (default) or ``"positive"``.

    Returns:
        ``{name: value}`` for every name of :data:`CE_METRICS`.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if labeler is None:
        from radiolm.metrics.chexpert_labeler import label_reports

        labeler = label_reports
    labels = labeler([*predictions, *references])
    if len(labels) != 2 * len(predictions):
        raise ValueError(f"the labeler returned {len(labels)} label rows for {2 * len(predictions)} texts")
    return clinical_efficacy(labels[: len(predictions)], labels[len(predictions) :], uncertain)
