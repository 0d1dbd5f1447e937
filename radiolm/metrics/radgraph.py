"""RadGraph F1 (entity / relation matching of RadGraph annotations) and the RadCliQ-v1 composite.

A RadGraph annotation of a report (Jain et al. 2021; the format of the ``radgraph`` package and of the RadGraph data)::

    {"entities": {"1": {"tokens": "effusion", "label": "OBS-DP", "start_ix": 4, "end_ix": 4,
                        "relations": [["located_at", "2"]]},
                  "2": {"tokens": "pleural", "label": "ANAT-DP", "start_ix": 3, "end_ix": 3, "relations": []}}}

``tokens`` is the entity's text, ``label`` its type (``ANAT-DP``, ``OBS-DP``, ``OBS-U``, ``OBS-DA``; RadGraph-XL writes
``Observation::definitely present`` and so on), ``relations`` pairs of (relation type, id of the target entity).

RadGraph F1 (Delbrouck et al. 2022, "Improving the factual correctness of radiology report generation with semantic
rewards", section 3; the ``radgraph`` package's ``F1RadGraph`` reward levels) turns each annotation into a set of
tuples, compares the prediction's set H with the reference's set R, and takes per report
``P = |H & R| / |H|``, ``R = |H & R| / |R|``, ``F1 = 2PR / (P + R)`` (0 when a set is empty), then the mean over
reports:

* ``radgraph_simple`` (RG_E): one tuple ``(tokens, label)`` per entity.
* ``radgraph_partial`` (RG_ER): ``(tokens, label)`` for an entity without relations, ``(tokens, label, True)`` for one
  with at least one: the entity counts only when its having relations matches too.
* ``radgraph_complete`` (RG_ER-bar): ``(tokens, label)`` for an entity without relations, and one tuple
  ``(tokens, label, relation type, target tokens)`` per relation of an entity with relations (tokens lower-cased in
  these, as the package does): every relation must match with its type and target.

As in the package, a pair whose prediction or reference is empty, or whose annotation has no entity on either side,
scores 0 on all three levels.

``radgraph_combined`` (per report only, the RadGraph input of RadCliQ; Yu et al. 2023, ``CXRMetric/
radgraph_evaluate_model.py`` of rajpurkarlab/CXR-Report-Metric) is the mean of two F1s: over entity tuples
``(tokens, label)`` and over relation tuples ``((tokens, label), (target tokens, target label), relation type)``.

Annotating text needs a RadGraph model (:func:`load_radgraph`), which these machines do not have; the F1 functions are
pure and work on any annotations.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import tempfile
from collections.abc import Callable, Hashable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from radiolm.errors import MissingAssetError

__all__ = [
    "RADCLIQ_V1",
    "RADGRAPH_MODEL_TYPES",
    "annotate_reports",
    "compute_radcliq",
    "compute_radgraph",
    "load_radgraph",
    "radgraph_f1",
    "radgraph_f1_per_report",
    "radgraph_scores",
]

log = logging.getLogger(__name__)

Graph = Mapping[str, Any]
"""One report's RadGraph annotation: ``{"entities": {id: {"tokens", "label", "relations"}}}``."""

KEYS = ("radgraph_simple", "radgraph_partial", "radgraph_complete")
RADGRAPH_MODEL_TYPES = ("radgraph", "radgraph-xl", "modern-radgraph-xl")
"""Model types of the ``radgraph`` package (0.1.x); ``radgraph`` is the RadGraph v1 model of the papers above."""

_INSTALL = (
    "the `radgraph` package is not installed: pip install radgraph (0.1.18 on PyPI; it vendors its own AllenNLP and "
    "pulls nltk, h5py, dotmap, appdirs, jsonpickle)"
)


def _entities(graph: Graph) -> dict[str, Mapping[str, Any]]:
    entities = graph.get("entities", {})
    if not isinstance(entities, Mapping):
        raise ValueError(f"RadGraph annotation: 'entities' must be a mapping of id -> entity, got {type(entities)}")
    return {str(k): v for k, v in entities.items()}


def _f1(hypothesis: set[Hashable], reference: set[Hashable]) -> float:
    """F1 of two tuple sets, 0 when either is empty (``radgraph.rewards`` and ``compute_f1`` of Yu et al.)."""
    if not hypothesis or not reference:
        return 0.0
    hits = len(hypothesis & reference)
    precision, recall = hits / len(hypothesis), hits / len(reference)
    return 2 * precision * recall / (precision + recall) if hits else 0.0


def _simple(graph: Graph) -> set[Hashable]:
    return {(e["tokens"], e["label"]) for e in _entities(graph).values()}


def _partial(graph: Graph) -> set[Hashable]:
    return {
        (e["tokens"], e["label"], True) if e["relations"] else (e["tokens"], e["label"])
        for e in _entities(graph).values()
    }


def _complete(graph: Graph) -> set[Hashable]:
    entities = _entities(graph)
    out: set[Hashable] = set()
    for e in entities.values():
        if not e["relations"]:
            out.add((e["tokens"], e["label"]))
        for relation, target in e["relations"]:
            out.add((e["tokens"].lower(), e["label"], relation, entities[str(target)]["tokens"].lower()))
    return out


def _relations(graph: Graph) -> set[Hashable]:
    entities = _entities(graph)
    return {
        ((e["tokens"], e["label"]), (entities[str(t)]["tokens"], entities[str(t)]["label"]), relation)
        for e in entities.values()
        for relation, t in e["relations"]
    }


def radgraph_f1_per_report(pred_graphs: Sequence[Graph], ref_graphs: Sequence[Graph]) -> dict[str, list[float]]:
    """Per-report RadGraph F1 at the three reward levels, and the ``radgraph_combined`` input of RadCliQ.

    Args:
        pred_graphs: Annotations of the generated reports.
        ref_graphs: Annotations of the references, same order.

    Returns:
        ``radgraph_simple``, ``radgraph_partial``, ``radgraph_complete``, ``radgraph_combined``: one value per pair.

    Raises:
        ValueError: the lengths differ or an annotation is malformed (a relation to an unknown entity id, ...).
    """
    if len(pred_graphs) != len(ref_graphs):
        raise ValueError(f"RadGraph F1: {len(pred_graphs)} predicted annotations but {len(ref_graphs)} references")
    out: dict[str, list[float]] = {key: [] for key in (*KEYS, "radgraph_combined")}
    for i, (pred, ref) in enumerate(zip(pred_graphs, ref_graphs, strict=True)):
        try:
            levels: tuple[float, ...] = (0.0, 0.0, 0.0)
            if _entities(pred) and _entities(ref):
                levels = tuple(_f1(f(pred), f(ref)) for f in (_simple, _partial, _complete))
            combined = (_f1(_simple(pred), _simple(ref)) + _f1(_relations(pred), _relations(ref))) / 2
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"RadGraph F1: malformed annotation in pair {i}: {type(e).__name__} {e}") from None
        for key, value in zip(KEYS, levels, strict=True):
            out[key].append(value)
        out["radgraph_combined"].append(combined)
    return out


def radgraph_f1(pred_graphs: Sequence[Graph], ref_graphs: Sequence[Graph]) -> dict[str, float]:
    """Mean RadGraph F1 (``radgraph_simple``, ``radgraph_partial``, ``radgraph_complete``) over report pairs.

    See the module docstring for the three tuple sets. Raises ``ValueError`` on no pairs or malformed annotations.
    """
    if not pred_graphs:
        raise ValueError("RadGraph F1: no annotation pairs to score")
    scores = radgraph_f1_per_report(pred_graphs, ref_graphs)
    return {key: sum(scores[key]) / len(scores[key]) for key in KEYS}


@lru_cache(maxsize=1)
def _radgraph_model(model_type: str, cache_dir: str | None) -> Any:
    from radgraph import RadGraph

    return RadGraph(model_type=model_type, model_cache_dir=cache_dir)


def load_radgraph(model_path: str | None = None) -> Callable[[list[str]], dict[str, Graph]]:
    """Load a RadGraph annotator through the ``radgraph`` package (cached per model).

    Args:
        model_path: ``None`` for the package's ``radgraph`` model (RadGraph v1), a model type of
            :data:`RADGRAPH_MODEL_TYPES` (both looked up in the package's cache, which it fills from the Hugging Face
            repo ``StanfordAIMI/RRG_scorers`` when online), or a local folder holding an extracted model archive
            (``config.json``, ``weights.th``, ``vocabulary/``). A folder named after a model type is read as that
            type; any other name as ``radgraph``. The BERT named in its ``config.json`` must be in the Hugging Face
            cache (or that entry edited to a local folder).

    Returns:
        The package's ``RadGraph`` module: called with texts, it returns ``{"0": graph, "1": graph, ...}``.

    Raises:
        MissingAssetError: the package is not installed, or the model (or its BERT) is not on this machine.
    """
    name = model_path or "radgraph"
    if importlib.util.find_spec("radgraph") is None:
        raise MissingAssetError("RadGraph model", name, "model_path", _INSTALL)
    cache_dir: str | None = None
    model_type = name
    if name not in RADGRAPH_MODEL_TYPES:
        folder = Path(name)
        if not (folder / "config.json").is_file() or not (folder / "weights.th").is_file():
            raise MissingAssetError(
                "RadGraph model",
                name,
                "model_path",
                f"not a folder with config.json and weights.th, nor a model type ({', '.join(RADGRAPH_MODEL_TYPES)})",
            )
        model_type = folder.name if folder.name in RADGRAPH_MODEL_TYPES else "radgraph"
        if folder.name == model_type:
            cache_dir = str(folder.resolve().parent)
        else:  # the package reads <cache_dir>/<model type>/: link the folder under that name
            cache_dir = tempfile.mkdtemp(prefix="radiolm-radgraph-")
            (Path(cache_dir) / model_type).symlink_to(folder.resolve(), target_is_directory=True)
    try:
        return _radgraph_model(model_type, cache_dir)
    except Exception as e:  # the package raises bare Exception when its download fails
        raise MissingAssetError("RadGraph model", name, "model_path", f"{type(e).__name__}: {str(e)[:160]}") from e


def annotate_reports(texts: Sequence[str], model_path: str | None = None) -> list[Graph]:
    """RadGraph annotations of ``texts`` in input order; an empty text, or one the model fails on, gets no entities."""
    annotator = load_radgraph(model_path)
    kept = [i for i, text in enumerate(texts) if text.strip()]
    graphs: list[Graph] = [{"entities": {}} for _ in texts]
    if kept:
        result = annotator([texts[i] for i in kept])
        failed = 0
        for j, i in enumerate(kept):
            graph = result.get(str(j))
            failed += graph is None
            graphs[i] = graph if graph is not None else {"entities": {}}
        if failed:
            log.warning(
                "RadGraph: the model failed on %d of %d reports; they have no entities (F1 0)", failed, len(kept)
            )
    return graphs


def radgraph_scores(
    predictions: Sequence[str], references: Sequence[str], model_path: str | None = None
) -> dict[str, list[float]]:
    """Per-report RadGraph F1 (three levels and ``radgraph_combined``) of texts; see :func:`load_radgraph`."""
    if len(predictions) != len(references):
        raise ValueError(f"RadGraph F1: {len(predictions)} predictions but {len(references)} references")
    graphs = annotate_reports([*predictions, *references], model_path)
    return radgraph_f1_per_report(graphs[: len(predictions)], graphs[len(predictions) :])


def compute_radgraph(predictions: list[str], references: list[str], model_path: str | None = None) -> dict[str, float]:
    """Mean RadGraph F1 of generated reports against references.

    Args:
        predictions: Generated reports.
        references: Reference reports, same order.
        model_path: The RadGraph model (:func:`load_radgraph`); ``None`` is the package's ``radgraph`` model.

    Returns:
        ``radgraph_simple`` (RG_E), ``radgraph_partial`` (RG_ER), ``radgraph_complete`` (RG_ER-bar), as defined in the
        module docstring.

    Raises:
        MissingAssetError: the ``radgraph`` package or the model is not available (the reason says which).
        ValueError: no pairs, or the lengths differ.
    """
    if not predictions:
        raise ValueError("RadGraph F1: no prediction/reference pairs to score")
    scores = radgraph_scores(predictions, references, model_path)
    return {key: sum(scores[key]) / len(scores[key]) for key in KEYS}


# RadCliQ-v1 (Yu et al. 2023, "Evaluating progress in automatic chest X-ray radiology report generation", Patterns).
# Official implementation: rajpurkarlab/CXR-Report-Metric, CXRMetric/run_eval.py, class CompositeMetric: features in
# the column order COLS = [radgraph_combined, bertscore, semb_score, bleu_score] are standardised by a fitted
# StandardScaler, then multiplied by 5 coefficients (the last one the intercept, after a column of ones); scaler and
# coefficients live in the pickle CXRMetric/radcliq-v1.pkl. The numbers below are that pickle's values as transcribed
# in jbdel/RadEval, RadEval/metrics/RadCliQv1/radcliq.py (class CompositeMetric, "inferred from" the run_eval.py
# above; scaler fitted on 160 reports). radiolm could not open the pickle itself to re-check them.
RADCLIQ_V1: dict[str, tuple[float, ...]] = {
    # order: radgraph_combined, bertscore_f1, semb, bleu2
    "mean": (0.53792312, 0.61757256, 0.76479421, 0.44738335),
    "scale": (0.30282584, 0.22430938, 0.25394391, 0.29892717),
    "coef": (-3.77083683e-01, -3.70300100e-01, -2.52616218e-01, 4.31504841e-12),
    "intercept": (2.46655256e-10,),
}


def compute_radcliq(
    bleu2: list[float], bertscore_f1: list[float], semb: list[float], radgraph: list[float]
) -> list[float]:
    """Per-report RadCliQ-v1: ``sum_k coef_k * (x_k - mean_k) / scale_k + intercept`` (:data:`RADCLIQ_V1`).

    Lower is better (RadCliQ estimates the number of clinically significant errors on a standardised scale); Yu et al.
    report the mean over reports. The inputs must be computed as in the official code for the values to mean what
    they meant there:

    Args:
        bleu2: Per-report BLEU-2 of the prediction against its reference (bigram weights 1/2, 1/2).
        bertscore_f1: Per-report BERTScore F1 with ``distilroberta-base`` (bert-score's default layer 5), rescaled
            with bert-score's baseline ``rescale_baseline/en/distilroberta-base.tsv``; not the MiniLM default.
        semb: Per-report cosine similarity of CheXbert ``[CLS]`` embeddings (:meth:`ChexbertLabeler.semb`).
        radgraph: Per-report ``radgraph_combined`` (:func:`radgraph_f1_per_report`) from the RadGraph v1 model.

    Raises:
        ValueError: the lists differ in length or hold a non-finite value.
    """
    columns = (radgraph, bertscore_f1, semb, bleu2)
    names = ("radgraph", "bertscore_f1", "semb", "bleu2")
    if len({len(c) for c in columns}) != 1:
        raise ValueError(
            f"RadCliQ: per-report lists differ in length: {dict(zip(names, map(len, columns), strict=True))}"
        )
    for name, column in zip(names, columns, strict=True):
        bad = [i for i, v in enumerate(column) if not math.isfinite(v)]
        if bad:
            raise ValueError(f"RadCliQ: {name} has non-finite values at reports {bad[:5]}")
    mean, scale, coef = RADCLIQ_V1["mean"], RADCLIQ_V1["scale"], RADCLIQ_V1["coef"]
    intercept = RADCLIQ_V1["intercept"][0]
    return [
        intercept + sum(c * (x - m) / s for c, x, m, s in zip(coef, values, mean, scale, strict=True))
        for values in zip(*columns, strict=True)
    ]
