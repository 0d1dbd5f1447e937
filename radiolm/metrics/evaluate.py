"""Scoring a set of predictions: the one function that validation, test, `radiolm evaluate` and `baseline` share.

:func:`evaluate` scores records ``{"id", "prediction", "reference", "language"?}`` with the requested metric families
and optional bootstrap intervals, and returns an :class:`Evaluation` (scores, intervals, the metrics that could not be
computed and why, counts); :func:`evaluate_records` is the same as a flat ``{name: float}`` for loggers.
Families (``docs/evaluation.md`` defines every name):

- ``nlg``: BLEU-1..4, METEOR, ROUGE-L, CIDEr (:mod:`radiolm.metrics.nlg`); ``zh`` reports segmented with jieba.
- ``ce``: clinical efficacy from CheXpert-14 labels (:mod:`radiolm.metrics.clinical`), rule-based or CheXbert labeler.
- ``bertscore``, ``radgraph``, ``radcliq``: need models the user provides (:mod:`radiolm.metrics.bertscore`,
  :mod:`radiolm.metrics.radgraph`, :mod:`radiolm.metrics.chexbert`); when one is missing the family is reported in
  ``unavailable`` with the reason, never as 0.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radiolm.errors import DataError, MissingAssetError, RadioLMError
from radiolm.metrics.bootstrap import Resampler, bootstrap_intervals, ce_resampler, mean_resampler
from radiolm.metrics.clinical import Labeler, clinical_efficacy
from radiolm.metrics.nlg import NLG_METRICS, NLGScorer, sentence_bleu, shared_nlg_scorer

__all__ = [
    "METRIC_FAMILIES",
    "Evaluation",
    "MetricOptions",
    "dedupe_records",
    "evaluate",
    "evaluate_records",
    "make_labeler",
    "metrics_table",
    "read_predictions",
    "write_predictions",
]

log = logging.getLogger(__name__)

REQUIRED_FIELDS = ("id", "prediction", "reference")
# The columns people read first: NLG, then clinical efficacy (micro F1 over 14 and 5 observations, example-based).
TABLE_COLUMNS = (*NLG_METRICS, "ce_f1_micro_14", "ce_f1_micro_5", "ce_f1_example")

OFFLINE_FAMILIES = ("nlg", "ce")
MODEL_FAMILIES = ("bertscore", "radgraph", "radcliq")
METRIC_FAMILIES = (*OFFLINE_FAMILIES, *MODEL_FAMILIES)
"""Metric families: ``nlg`` and ``ce`` run offline; ``bertscore``, ``radgraph``, ``radcliq`` need models you provide."""

LABELERS = ("rules", "chexbert")


@dataclass
class MetricOptions:
    """Settings of the metric families (the ``radiolm evaluate`` options).

    Attributes:
        labeler: ``"rules"`` (the rule-based CheXpert labeler), ``"chexbert"`` or any ``labeler(texts)`` callable.
        uncertain: How clinical efficacy binarizes an uncertain label: ``"negative"`` or ``"positive"``.
        chexbert_checkpoint: ``chexbert.pth`` for ``labeler="chexbert"``.
        chexbert_tokenizer: BERT tokenizer folder for ``labeler="chexbert"``.
        bertscore_model: BERTScore model (alias or local path).
        bertscore_layers: BERTScore layer (``None``: the model's default).
        bertscore_baseline: Baseline file for rescaling BERTScore (``None``: no rescaling).
        radgraph_model: RadGraph model folder (``None``: the ``radgraph`` package's default, when installed).
        nlg_scorer: A running :class:`~radiolm.metrics.nlg.NLGScorer` to reuse (its METEOR JVM); ``None``: the process's
            :func:`~radiolm.metrics.nlg.shared_nlg_scorer`.
        ce_formula: ``"suite"`` or ``"epsilon"`` (Dia-LLaMA's ``+ 1e-6``; :mod:`radiolm.metrics.clinical`).
        radgraph_levels: RadGraph F1 levels reported as ``radgraph_<level>`` (``simple``, ``partial``, ``complete``,
            ``combined``: the RadCliQ input).
        protocol: Name of the evaluation protocol these options come from (:mod:`radiolm.metrics.protocols`).
    """

    labeler: str | Labeler = "rules"
    uncertain: str = "negative"
    chexbert_checkpoint: str | None = None
    chexbert_tokenizer: str | None = None
    bertscore_model: str = "minilm-l6"
    bertscore_layers: int | None = None
    bertscore_baseline: str | None = None
    radgraph_model: str | None = None
    nlg_scorer: NLGScorer | None = None
    ce_formula: str = "suite"
    radgraph_levels: tuple[str, ...] = ("simple", "partial", "complete")
    protocol: str = "default"


@dataclass
class Evaluation:
    """What :func:`evaluate` found.

    Attributes:
        n: Number of studies scored (each id once).
        n_empty_predictions: Studies whose prediction is empty (scored as an empty report, never dropped).
        scores: ``{metric: value}`` over all studies.
        intervals: ``{metric: (low, high)}`` bootstrap percentile intervals (empty without bootstrap).
        unavailable: ``{metric or family: reason}`` for what could not be computed.
        bootstrap: ``{"resamples", "seed", "level"}`` when intervals were computed, and ``"not_resampled"``:
            ``{metric: reason}`` for scores without an interval.
        labels: CheXpert labels ``(predictions, references)`` when ``ce`` was computed.
        options: The settings used.
    """

    n: int
    n_empty_predictions: int
    scores: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    bootstrap: dict[str, Any] | None = None
    labels: tuple[list[list[int | None]], list[list[int | None]]] | None = field(default=None, repr=False)
    options: MetricOptions = field(default_factory=MetricOptions, repr=False)

    def flat(self) -> dict[str, float]:
        """Scores with ``<metric>_ci_low`` / ``<metric>_ci_high`` after each bootstrapped metric."""
        out: dict[str, float] = {}
        for name, value in self.scores.items():
            out[name] = value
            if name in self.intervals:
                out[f"{name}_ci_low"], out[f"{name}_ci_high"] = self.intervals[name]
        return out

    def to_json(self) -> dict[str, Any]:
        """``metrics.json``: counts, flat scores, what is unavailable and how it was computed."""
        labeler = self.options.labeler if isinstance(self.options.labeler, str) else "custom"
        out: dict[str, Any] = {"n": self.n, "n_empty_predictions": self.n_empty_predictions, **self.flat()}
        out["unavailable"] = dict(self.unavailable)
        settings: dict[str, Any] = {"labeler": labeler, "uncertain": self.options.uncertain}
        settings["protocol"] = self.options.protocol
        out["settings"] = settings
        if any(name.startswith(("bertscore", "radcliq")) for name in self.scores):  # scores depend on model and layer
            settings["bertscore_model"] = self.options.bertscore_model
            settings["bertscore_layers"] = self.options.bertscore_layers
            settings["bertscore_baseline"] = self.options.bertscore_baseline
        if any(name.startswith(("radgraph", "radcliq")) for name in self.scores):
            settings["radgraph_model"] = self.options.radgraph_model
        if self.bootstrap is not None:
            out["bootstrap"] = self.bootstrap
        return out

    def markdown(self, title: str = "Evaluation") -> str:
        """``metrics.md``: one row per metric with its value and 95% interval, then what is unavailable."""
        settings = self.to_json()["settings"]
        lines = [
            f"# {title}",
            "",
            f"- studies: {self.n} ({self.n_empty_predictions} with an empty prediction, scored as empty)",
            f"- clinical efficacy: {settings['labeler']} labeler, uncertain as {settings['uncertain']}",
        ]
        if self.bootstrap is not None:
            level = round(100 * self.bootstrap["level"])
            lines.append(
                f"- bootstrap: {self.bootstrap['resamples']} resamples of the studies (seed {self.bootstrap['seed']}),"
                f" {level}% percentile interval"
            )
        header = "| metric | value | 95% CI |" if self.bootstrap is not None else "| metric | value |"
        lines += ["", header, "|---|---:|---:|" if self.bootstrap is not None else "|---|---:|"]
        for name, value in self.scores.items():
            row = f"| {name} | {value:.4f} |"
            if self.bootstrap is not None:
                low_high = self.intervals.get(name)
                row += f" {low_high[0]:.4f} – {low_high[1]:.4f} |" if low_high else " not resampled |"
            lines.append(row)
        if self.unavailable:
            lines += ["", "Not computed (never reported as 0):", "", "| metric | reason |", "|---|---|"]
            lines += [f"| {name} | {' '.join(reason.split())} |" for name, reason in self.unavailable.items()]
        return "\n".join(lines) + "\n"


def _optional(module: str, attribute: str) -> Callable[..., Any] | str:
    """``module.attribute``, or why it cannot be used (the family is then reported as unavailable)."""
    try:
        return getattr(importlib.import_module(module), attribute)
    except ModuleNotFoundError as e:
        if e.name == module:
            return f"not implemented yet ({module} is missing)"
        return f"needs the package {e.name!r} (pip install it)"
    except AttributeError:
        return f"not implemented yet ({module}.{attribute} is missing)"


def make_labeler(options: MetricOptions) -> Labeler:
    """The CheXpert labeler the options name (``rules``, ``chexbert``) or the callable they hold."""
    if callable(options.labeler):
        return options.labeler
    if options.labeler == "rules":
        from radiolm.metrics.chexpert_labeler import label_reports

        return label_reports
    if options.labeler != "chexbert":
        raise RadioLMError(f"unknown labeler {options.labeler!r}; use one of {list(LABELERS)}")
    if not (options.chexbert_checkpoint and options.chexbert_tokenizer):
        raise RadioLMError(
            "the CheXbert labeler needs the CheXbert weights (chexbert.pth) and a BERT tokenizer folder: pass "
            "--chexbert-checkpoint and --chexbert-tokenizer (or use --labeler rules)"
        )
    factory = _optional("radiolm.metrics.chexbert", "ChexbertLabeler")
    if isinstance(factory, str):
        raise RadioLMError(f"the CheXbert labeler is {factory}; use --labeler rules")
    return factory(options.chexbert_checkpoint, options.chexbert_tokenizer)


# Per-study functions of the model-based families (module, function, the keys reported as metrics).
_PER_STUDY: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "bertscore": (
        "radiolm.metrics.bertscore",
        "bertscore_scores",
        ("bertscore_precision", "bertscore_recall", "bertscore_f1"),
    ),
    "radgraph": (
        "radiolm.metrics.radgraph",
        "radgraph_scores",
        ("radgraph_simple", "radgraph_partial", "radgraph_complete"),  # radgraph_combined feeds RadCliQ only
    ),
    "radcliq": ("radiolm.metrics.radgraph", "compute_radcliq", ("radcliq_v1",)),
}


# Constructor options of the metric modules -> the `radiolm evaluate` options that set them (for error messages).
_COMMAND_OPTIONS = {
    ("BERTScore", "model"): "bertscore-model",
    ("BERTScore", "baseline_path"): "bertscore-baseline",
    ("RadGraph", "model_path"): "radgraph-model",
    ("CheXbert", "checkpoint"): "chexbert-checkpoint",
    ("CheXbert", "tokenizer"): "chexbert-tokenizer",
}


def _reason(error: MissingAssetError) -> str:
    """The message of a missing model, naming the ``radiolm evaluate`` option that takes its local path."""
    keys = [
        key
        for (what, option), key in _COMMAND_OPTIONS.items()
        if error.what.startswith(what) and option == error.option
    ]
    return str(error.with_option_keys(keys) if keys else error)


class _ModelFamilies:
    """Per-study values of ``bertscore`` / ``radgraph`` / ``radcliq`` (a dict of lists) or why they are unavailable
    (a string); each family is computed once, RadCliQ reusing the other two."""

    def __init__(self, predictions: list[str], references: list[str], options: MetricOptions, labeler: Any) -> None:
        self.predictions, self.references, self.options, self.labeler = predictions, references, options, labeler
        self.found: dict[str, dict[str, list[float]] | str] = {}

    def __call__(self, family: str) -> dict[str, list[float]] | str:
        if family not in self.found:
            self.found[family] = self._compute(family)
        return self.found[family]

    def _compute(self, family: str) -> dict[str, list[float]] | str:
        module, name, _ = _PER_STUDY[family]
        function = _optional(module, name)
        if isinstance(function, str):
            return function
        options = self.options
        kwargs: dict[str, Any] = {"model_path": options.radgraph_model}
        if family == "bertscore":
            kwargs = {"model": options.bertscore_model, "num_layers": options.bertscore_layers}
            kwargs["baseline_path"] = options.bertscore_baseline
        elif family == "radcliq":
            return self._radcliq(function)
        try:
            return function(self.predictions, self.references, **kwargs)
        except MissingAssetError as e:
            return _reason(e)

    def _radcliq(self, radcliq: Callable[..., list[float]]) -> dict[str, list[float]] | str:
        """RadCliQ-v1 from per-study BLEU-2, BERTScore F1, CheXbert s_emb and RadGraph (``radgraph_combined``)."""
        bertscore, radgraph, semb = self("bertscore"), self("radgraph"), self._semb()
        missing = {"BERTScore": bertscore, "RadGraph": radgraph, "CheXbert s_emb": semb}
        reasons = [f"{name}: {why}" for name, why in missing.items() if isinstance(why, str)]
        if reasons:
            return "needs " + "; ".join(reasons)
        assert isinstance(bertscore, dict) and isinstance(radgraph, dict) and isinstance(semb, list)
        bleu2 = sentence_bleu(self.predictions, self.references, n=2)
        return {"radcliq_v1": radcliq(bleu2, bertscore["bertscore_f1"], semb, radgraph["radgraph_combined"])}

    def _semb(self) -> list[float] | str:
        labeler = self.labeler if hasattr(self.labeler, "semb") else None
        if labeler is None:
            options = self.options
            if not (options.chexbert_checkpoint and options.chexbert_tokenizer):
                return "pass the CheXbert weights and tokenizer (--chexbert-checkpoint, --chexbert-tokenizer)"
            factory = _optional("radiolm.metrics.chexbert", "ChexbertLabeler")
            if isinstance(factory, str):
                return factory
            try:
                labeler = factory(options.chexbert_checkpoint, options.chexbert_tokenizer)
            except MissingAssetError as e:
                return _reason(e)
        return labeler.semb(self.predictions, self.references)


def evaluate(
    records: Sequence[dict[str, Any]],
    metrics: Sequence[str] = OFFLINE_FAMILIES,
    options: MetricOptions | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    level: float = 0.95,
) -> Evaluation:
    """Score records with fields ``id``, ``prediction``, ``reference`` (and ``language``, default ``en``).

    Args:
        records: One per study, each id once (see :func:`dedupe_records`).
        metrics: Families to compute (:data:`METRIC_FAMILIES`).
        options: Labeler, uncertainty policy and model paths (:class:`MetricOptions`).
        bootstrap: Number of bootstrap resamples of the studies (0: no intervals).
        seed: Seed of the resampling.
        level: Coverage of the intervals.

    Returns:
        An :class:`Evaluation`.

    Raises:
        ValueError: for an unknown family or no records.
    """
    unknown = sorted(set(metrics) - set(METRIC_FAMILIES))
    if unknown:
        raise ValueError(
            f"unknown metric families {unknown}; available: {list(OFFLINE_FAMILIES)} (offline) and "
            f"{list(MODEL_FAMILIES)} (need a model you provide)"
        )
    if not records:
        raise ValueError("no predictions to score")
    options = options or MetricOptions()
    predictions, references = [str(r["prediction"]) for r in records], [str(r["reference"]) for r in records]
    languages = [str(r.get("language") or "en") for r in records]
    result = Evaluation(len(records), sum(not p.strip() for p in predictions), options=options)
    if result.n_empty_predictions:
        log.warning("radiolm: %d of %d predictions are empty (scored as empty)", result.n_empty_predictions, result.n)
    resamplers: list[Resampler] = []
    labeler = make_labeler(options) if "ce" in metrics else None  # a bad labeler setting fails before any work
    scorer = (options.nlg_scorer or shared_nlg_scorer()) if "nlg" in metrics else None  # a new JVM loads during CE
    if labeler is not None:
        labels = labeler([*predictions, *references])
        if len(labels) != 2 * len(records):
            raise ValueError(f"the labeler returned {len(labels)} label rows for {2 * len(records)} texts")
        result.labels = (labels[: len(records)], labels[len(records) :])
        result.scores.update(clinical_efficacy(*result.labels, uncertain=options.uncertain, formula=options.ce_formula))
        if options.ce_formula == "suite":  # the resampler knows the suite's ratios; "epsilon" CE is not resampled
            resamplers.append(ce_resampler(*result.labels, uncertain=options.uncertain))
    if scorer is not None:
        stats = scorer.stats(predictions, references, languages)
        result.scores = {**stats.scores(), **result.scores}  # NLG first
        result.unavailable.update(stats.unavailable)
        resamplers.append(stats.resample)
    model_families = _ModelFamilies(predictions, references, options, labeler)
    for family in (f for f in MODEL_FAMILIES if f in metrics):
        found = model_families(family)
        if isinstance(found, str):
            result.unavailable[family] = found
            log.warning("radiolm: %s unavailable: %s", family, found)
            continue
        keys = _PER_STUDY[family][2]
        if family == "radgraph":
            keys = tuple(f"radgraph_{level}" for level in options.radgraph_levels)
        per_study = {key: found[key] for key in keys}
        result.scores.update({key: sum(values) / len(values) for key, values in per_study.items()})
        resamplers.append(mean_resampler(per_study))
    if bootstrap:
        result.intervals = bootstrap_intervals(resamplers, result.n, bootstrap, seed, level)
        skipped = {name: "only a corpus score is available" for name in result.scores if name not in result.intervals}
        result.bootstrap = {"resamples": bootstrap, "seed": seed, "level": level, "not_resampled": skipped}
    return result


def evaluate_records(
    records: Sequence[dict[str, Any]],
    metrics: Sequence[str] = OFFLINE_FAMILIES,
    bootstrap: int = 0,
    seed: int = 0,
    options: MetricOptions | None = None,
) -> dict[str, float]:
    """:func:`evaluate` as a flat ``{name: value}`` (with ``<metric>_ci_low/_ci_high`` when ``bootstrap > 0``)."""
    return evaluate(records, metrics, options, bootstrap, seed).flat()


def dedupe_records(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the first record of each id (a distributed sampler repeats studies to even out ranks)."""
    seen: dict[str, dict[str, Any]] = {}
    for record in records:
        seen.setdefault(str(record["id"]), record)
    return list(seen.values())


def write_predictions(path: str | Path, records: Iterable[dict[str, Any]]) -> Path:
    """Write one JSON object per line (``id, prediction, reference, labels`` and any extra fields)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


# Dia-LLaMA's published predictions (results/dia-llama.csv of its repository): column -> radiolm field.
DIA_LLAMA_CSV_COLUMNS = {"ID": "id", "Pred": "prediction", "Ground Truth": "reference"}


def _read_csv(path: Path) -> list[dict[str, Any]]:
    """Records of a predictions CSV: columns ``id, prediction, reference[, language]``, or Dia-LLaMA's ``ID, Pred,
    Ground Truth`` (its ``results/dia-llama.csv``); a row without an id gets its row number."""
    import csv

    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or ())
        if set(REQUIRED_FIELDS) <= columns:
            mapping = {k: k for k in (*REQUIRED_FIELDS, "language") if k in columns}
        elif {"Pred", "Ground Truth"} <= columns:
            mapping = {k: v for k, v in DIA_LLAMA_CSV_COLUMNS.items() if k in columns}
        else:
            raise DataError(
                f"{path}: a predictions CSV needs the columns {list(REQUIRED_FIELDS)} (or Dia-LLaMA's 'Pred' and "
                f"'Ground Truth'); it has {sorted(columns)}"
            )
        rows = []
        for n, row in enumerate(reader, start=2):
            record = {field: row[column] or "" for column, field in mapping.items()}
            record.setdefault("id", str(n - 1))
            rows.append((n, record))
    return [{"_line": n, **record} for n, record in rows]


def read_predictions(path: str | Path) -> list[dict[str, Any]]:
    """Read a predictions JSONL (or CSV, see :func:`_read_csv`), checking fields, their types and duplicate ids.

    Raises:
        DataError: naming the file and line of a line that is not a JSON object, lacks a field, holds a non-text
            prediction / reference / language, or repeats an id; or for a file without records.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such predictions file")
    numbered = (
        [(record.pop("_line"), record) for record in _read_csv(path)]
        if path.suffix.lower() == ".csv"
        else list(_read_jsonl(path))
    )
    records, seen = [], set()
    for line, record in numbered:
        if str(record["id"]) in seen:
            raise DataError(f"{path}:{line}: duplicate id {record['id']!r}")
        seen.add(str(record["id"]))
        records.append(record)
    if not records:
        raise DataError(f"{path}: no predictions (the file has no records)")
    return records


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` of each non-empty line of a predictions JSONL, fields and their types checked."""
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{n}: not JSON ({e})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{n}: expected a JSON object with fields {list(REQUIRED_FIELDS)}")
        missing = [k for k in REQUIRED_FIELDS if k not in record]
        if missing:
            raise DataError(f"{path}:{n}: missing field(s) {missing}; each line needs {list(REQUIRED_FIELDS)}")
        for key in ("prediction", "reference", "language"):
            if key in record and not isinstance(record[key], str):
                raise DataError(f"{path}:{n}: field {key!r} must be a string, got {record[key]!r}")
        yield n, record


def metrics_table(rows: dict[str, dict[str, float]], columns: Sequence[str] = TABLE_COLUMNS) -> str:
    """Markdown table, one row per named run (``{"demo": {...}, "baseline": {...}}``); absent metrics show ``-``."""
    header = "| run | " + " | ".join(columns) + " |"
    lines = [header, "|" + "---|" * (len(columns) + 1)]
    for name, values in rows.items():
        cells = [f"{values[c]:.3f}" if c in values else "-" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
