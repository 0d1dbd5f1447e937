"""Scoring a set of predictions: the one function that training, testing and `radiolm baseline` share."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from radiolm.metrics.clinical import compute_ce
from radiolm.metrics.nlg import NLG_METRICS, compute_nlg

__all__ = [
    "METRIC_FAMILIES",
    "dedupe_records",
    "evaluate_records",
    "metrics_table",
    "read_predictions",
    "write_predictions",
]

REQUIRED_FIELDS = ("id", "prediction", "reference")
# The columns people read first: NLG, then clinical efficacy (micro F1 over 14 and 5 observations, example-based).
TABLE_COLUMNS = (*NLG_METRICS, "ce_f1_micro_14", "ce_f1_micro_5", "ce_f1_example")

METRIC_FAMILIES = ("nlg", "ce")
"""Metric families :func:`evaluate_records` computes: ``nlg`` (pycocoevalcap) and ``ce`` (clinical efficacy)."""


def dedupe_records(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the first record of each id (a distributed sampler repeats studies to even out ranks)."""
    seen: dict[str, dict[str, Any]] = {}
    for record in records:
        seen.setdefault(str(record["id"]), record)
    return list(seen.values())


def evaluate_records(records: Sequence[dict[str, Any]], metrics: Sequence[str] = ("nlg", "ce")) -> dict[str, float]:
    """Score records with fields ``id``, ``prediction``, ``reference``.

    Args:
        records: One per study, each id once (see :func:`dedupe_records`).
        metrics: Families to compute (:data:`METRIC_FAMILIES`): ``nlg`` (BLEU-1..4, METEOR, ROUGE-L, CIDEr) and
            ``ce`` (clinical efficacy with the rule-based CheXpert labeler, uncertain as negative: ``ce_*`` and
            ``f1_cxb_*``, see :mod:`radiolm.metrics.clinical`); embedding metrics plug in here.
    """
    unknown = set(metrics) - set(METRIC_FAMILIES)
    if unknown:
        raise ValueError(f"unknown metric families {sorted(unknown)}; available: {list(METRIC_FAMILIES)}")
    predictions, references = [r["prediction"] for r in records], [r["reference"] for r in records]
    scores: dict[str, float] = {}
    if "nlg" in metrics:
        scores.update(compute_nlg(predictions, references))
    if "ce" in metrics:
        scores.update(compute_ce(predictions, references))
    return scores


def write_predictions(path: str | Path, records: Iterable[dict[str, Any]]) -> Path:
    """Write one JSON object per line (``id, prediction, reference, labels`` and any extra fields)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def read_predictions(path: str | Path) -> list[dict[str, Any]]:
    """Read a predictions JSONL, checking fields and duplicate ids (errors name the file and line)."""
    path = Path(path)
    records, seen = [], set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not JSON ({e})") from None
        missing = [k for k in REQUIRED_FIELDS if k not in record]
        if missing:
            raise ValueError(f"{path}:{n}: missing field(s) {missing}; each line needs {list(REQUIRED_FIELDS)}")
        if str(record["id"]) in seen:
            raise ValueError(f"{path}:{n}: duplicate id {record['id']!r}")
        seen.add(str(record["id"]))
        records.append(record)
    return records


def metrics_table(rows: dict[str, dict[str, float]], columns: Sequence[str] = TABLE_COLUMNS) -> str:
    """Markdown table, one row per named run (``{"demo": {...}, "baseline": {...}}``); absent metrics show ``-``."""
    header = "| run | " + " | ".join(columns) + " |"
    lines = [header, "|" + "---|" * (len(columns) + 1)]
    for name, values in rows.items():
        cells = [f"{values[c]:.3f}" if c in values else "-" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
