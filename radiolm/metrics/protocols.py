"""Evaluation protocols: every choice behind a paper's numbers, by name (DESIGN.md, "Evaluation protocols").

Each paper computed its table its own way: the labeler, how uncertain labels count, which averages, whether the
references were cut, how the text was normalised, the BERTScore model, the RadGraph level, how Chinese is segmented,
which metrics. An :class:`EvaluationProtocol` fixes all of them. It is the ``evaluation:`` part of every method
(``class_path: radiolm.metrics.protocols.EvaluationProtocol``, ``init_args: {preset: dia_llama}``), so validation,
test and checkpoint selection use it; ``radiolm evaluate --protocol NAME`` and ``radiolm table`` use the same presets.
``docs/protocols.md`` gives, per paper, every choice and where it comes from.

Presets (:data:`PRESETS`); an ``init_args`` key overrides one choice of the preset:

- ``default``: the suite's own protocol for comparing methods with each other (rule labeler, uncertain as negative,
  micro / macro / example-based CE, raw untruncated text, MiniLM BERTScore, RadGraph simple / partial / complete).
- ``r2gengpt``: CheXpert-rule labels, micro P / R / F1 over 14 (§4.2); references cut to 60 LLM tokens as its code
  does (IU-Xray; MIMIC-CXR experiments set ``reference_tokens: 100``).
- ``two_stage``: ViLMedic's F1CheXbert: CheXbert labels, uncertain as positive, micro (and macro) F1 over 14 and 5;
  lower-cased, punctuation-split text.
- ``bidirectional``: the RadCliQ suite: RadGraph ``combined`` F1, BERTScore with ``distilroberta-base`` rescaled
  by bert-score's baseline, RadCliQ-v1.
- ``dia_llama``: CheXbert labels, only "present" is positive, Dia-LLaMA's ``+ 1e-6`` ratios (example-based P / R /
  F1 in its tables).
- ``cmrg``: BLEU-3 / 4, ROUGE-L, CIDEr; Chinese segmented with jieba.

A metric whose model is missing is reported in ``unavailable`` with the option that supplies it, never as 0.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from radiolm.errors import RadioLMError
from radiolm.metrics.clinical import CE_FORMULAS, UNCERTAIN_POLICIES
from radiolm.metrics.evaluate import LABELERS, METRIC_FAMILIES, Evaluation, MetricOptions, evaluate
from radiolm.metrics.nlg import NLGScorer

__all__ = [
    "AVERAGES",
    "CHINESE_SEGMENTATIONS",
    "PRESETS",
    "RADGRAPH_LEVELS",
    "TEXT_NORMALISATIONS",
    "EvaluationProtocol",
    "ProtocolSettings",
    "bertscore_baseline_file",
    "normalise_text",
    "truncate_references",
]

AVERAGES = ("micro", "macro", "example")
"""Clinical-efficacy averages a protocol may report (:mod:`radiolm.metrics.clinical`)."""
TEXT_NORMALISATIONS = ("raw", "vilmedic")
"""``raw``: texts as given; ``vilmedic``: lower-cased, punctuation as separate tokens (ViLMedic's report files)."""
CHINESE_SEGMENTATIONS = ("jieba", "characters")
"""How ``zh`` reports become words: jieba (accurate mode) or one token per character."""
RADGRAPH_LEVELS = ("simple", "partial", "complete", "combined")
"""RadGraph F1 levels (:mod:`radiolm.metrics.radgraph`); ``combined`` is the RadCliQ input."""

Tokenizer = Any
"""A Hugging Face tokenizer (``__call__`` with ``add_special_tokens``, ``decode``)."""


@dataclass(frozen=True)
class ProtocolSettings:
    """Every choice of a protocol (the fields of a preset; :class:`EvaluationProtocol` documents each)."""

    metrics: tuple[str, ...] = ("nlg", "ce")
    keep: tuple[str, ...] | None = None
    labeler: str = "rules"
    chexbert_checkpoint: str | None = None
    chexbert_tokenizer: str | None = None
    uncertain: str = "negative"
    averages: tuple[str, ...] = AVERAGES
    ce_formula: str = "suite"
    reference_tokens: int | None = None
    reference_tokenizer: str | None = None
    text: str = "raw"
    chinese: str = "jieba"
    bertscore_model: str = "minilm-l6"
    bertscore_layers: int | None = None
    bertscore_baseline: str | None = None
    radgraph_model: str | None = None
    radgraph_levels: tuple[str, ...] = ("simple", "partial", "complete")


PRESETS: dict[str, ProtocolSettings] = {
    "default": ProtocolSettings(),
    # R2GenGPT §4.2: CheXpert labeler, P / R / F1 over 14 observations (micro, as the works it follows [4, 3, 22]);
    # its code (models/R2GenGPT.py, validation_step) decodes the reference from input ids cut to max_length LLM tokens
    # (configs: 60 IU-Xray, 100 MIMIC-CXR) and scores with pycocoevalcap on R2Gen-cleaned text (the suite's data).
    "r2gengpt": ProtocolSettings(averages=("micro",), reference_tokens=60),
    # two_stage §4: F1CheXbert; ViLMedic's f1chexbert maps CheXbert's uncertain to positive ("rrg" mode) and reports
    # sklearn's micro (and macro) averages over 14 and the top 5; ViLMedic's MIMIC-CXR report files are lower-cased
    # with punctuation split off.
    "two_stage": ProtocolSettings(
        labeler="chexbert", uncertain="positive", averages=("micro", "macro"), text="vilmedic"
    ),
    # bidirectional §4.1 (RadCliQ, Yu et al. 2023; rajpurkarlab/CXR-Report-Metric): RadGraph combined F1, BERTScore
    # with distilroberta-base (bert-score's layer 5) rescaled by its baseline, CheXbert s_emb, BLEU-2.
    "bidirectional": ProtocolSettings(
        metrics=("nlg", "ce", "bertscore", "radgraph", "radcliq"),
        bertscore_model="distilroberta-base",
        bertscore_baseline="bert-score:distilroberta-base",
        radgraph_levels=("combined",),
    ),
    # dia_llama §3.1 and utils/metrics_clinical.py: CheXbert labels, only "present" (1) is positive, + 1e-6 in every
    # denominator; its tables are the example-based averages (utils/chexbert_ce_eval.py prints all three).
    "dia_llama": ProtocolSettings(labeler="chexbert", ce_formula="epsilon"),
    # cmrg §3.1: BLEU-n, ROUGE, CIDEr (the tables: BLEU-3, BLEU-4, ROUGE, CIDEr); Chinese segmented by jieba [1].
    "cmrg": ProtocolSettings(metrics=("nlg",), keep=("bleu3", "bleu4", "rouge_l", "cider"), chinese="jieba"),
}
"""The named protocols; ``docs/protocols.md`` cites the source of every choice."""

_PUNCTUATION = re.compile(f"([{re.escape(string.punctuation)}])")


def normalise_text(text: str, mode: str = "raw") -> str:
    """``raw``: unchanged; ``vilmedic``: lower case, every punctuation mark a token of its own, single spaces."""
    if mode == "raw":
        return text
    if mode != "vilmedic":
        raise ValueError(f"text={mode!r}; use one of {list(TEXT_NORMALISATIONS)}")
    return " ".join(_PUNCTUATION.sub(r" \1 ", text.lower()).split())


def truncate_references(references: Sequence[str], tokenizer: Tokenizer, max_tokens: int) -> list[str]:
    """Each reference cut to its first ``max_tokens`` tokens (no special tokens) and decoded, as R2GenGPT's code."""
    out = []
    for text in references:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens]
        out.append(tokenizer.decode(ids, skip_special_tokens=True).strip())
    return out


def bertscore_baseline_file(name: str | None) -> str | None:
    """A baseline path, ``bert-score:<model>`` (the file bert-score ships in ``rescale_baseline/en/``), or ``none``
    (``None``: no rescaling; ``none`` lets a YAML switch off a preset's baseline)."""
    if name is None or name.lower() == "none":
        return None
    if not name.startswith("bert-score:"):
        return name
    import bert_score

    path = Path(bert_score.__file__).parent / "rescale_baseline" / "en" / f"{name.split(':', 1)[1]}.tsv"
    if not path.is_file():
        raise RadioLMError(f"bertscore_baseline {name!r}: bert-score has no {path.name}; give a baseline file path")
    return str(path)


def _characters(text: str) -> str:
    """One token per character (white space dropped)."""
    return " ".join(ch for ch in text if not ch.isspace())


def _check(settings: ProtocolSettings, where: str) -> None:
    """Every value of ``settings`` is one the metrics know; a bad one names the key and the choices."""
    choices: dict[str, tuple[str, ...]] = {
        "labeler": LABELERS,
        "uncertain": UNCERTAIN_POLICIES,
        "ce_formula": CE_FORMULAS,
        "text": TEXT_NORMALISATIONS,
        "chinese": CHINESE_SEGMENTATIONS,
    }
    for key, allowed in choices.items():
        if getattr(settings, key) not in allowed:
            raise RadioLMError(f"{where}.{key}: {getattr(settings, key)!r}; use one of {list(allowed)}")
    for key, allowed in (("metrics", METRIC_FAMILIES), ("averages", AVERAGES), ("radgraph_levels", RADGRAPH_LEVELS)):
        bad = [v for v in getattr(settings, key) if v not in allowed]
        if bad or not getattr(settings, key):
            raise RadioLMError(
                f"{where}.{key}: {list(getattr(settings, key))}; use a non-empty list of {list(allowed)}"
            )
    if settings.reference_tokens is not None and settings.reference_tokens < 0:
        raise RadioLMError(f"{where}.reference_tokens: {settings.reference_tokens}; use a token count, 0: untruncated")


class EvaluationProtocol:
    """How generated reports are scored: a named preset, with any of its choices overridden.

    Args:
        preset: A name of :data:`PRESETS` (``default``, ``r2gengpt``, ``two_stage``, ``bidirectional``, ``dia_llama``,
            ``cmrg``).
        metrics: Metric families (``nlg``, ``ce``, ``bertscore``, ``radgraph``, ``radcliq``).
        keep: Metric names reported (``None``: every metric of the families).
        labeler: CheXpert-14 labeler, ``rules`` or ``chexbert``.
        chexbert_checkpoint: ``chexbert.pth`` for the CheXbert labeler.
        chexbert_tokenizer: BERT tokenizer folder for the CheXbert labeler.
        uncertain: An uncertain label (-1) counts as ``negative`` or ``positive``.
        averages: CE averages reported: ``micro`` (also ``f1_cxb_*``), ``macro``, ``example``.
        ce_formula: ``suite`` (zero denominators give 0; an example with no positives scores 1) or ``epsilon``
            (Dia-LLaMA: ``+ 1e-6`` in every denominator, such an example scores 0).
        reference_tokens: Cut each reference to this many tokens before scoring (0: untruncated).
        reference_tokenizer: Tokenizer of that cut (a folder or LLM alias); ``None``: the method's language model.
        text: ``raw`` or ``vilmedic`` (lower-cased, punctuation split) for predictions and references.
        chinese: ``jieba`` or ``characters``: segmentation of ``zh`` reports.
        bertscore_model: BERTScore model (alias, folder or cached hub id).
        bertscore_layers: BERTScore layer (``None``: the model's default).
        bertscore_baseline: Rescaling baseline file, ``bert-score:<model>`` for the one bert-score ships, or ``none``.
        radgraph_model: RadGraph model folder.
        radgraph_levels: RadGraph F1 levels reported (``simple``, ``partial``, ``complete``, ``combined``).
    """

    def __init__(
        self,
        preset: str = "default",
        metrics: list[str] | None = None,
        keep: list[str] | None = None,
        labeler: str | None = None,
        chexbert_checkpoint: str | None = None,
        chexbert_tokenizer: str | None = None,
        uncertain: str | None = None,
        averages: list[str] | None = None,
        ce_formula: str | None = None,
        reference_tokens: int | None = None,
        reference_tokenizer: str | None = None,
        text: str | None = None,
        chinese: str | None = None,
        bertscore_model: str | None = None,
        bertscore_layers: int | None = None,
        bertscore_baseline: str | None = None,
        radgraph_model: str | None = None,
        radgraph_levels: list[str] | None = None,
    ) -> None:
        if preset not in PRESETS:
            raise RadioLMError(f"evaluation preset {preset!r}: unknown; use one of {list(PRESETS)} (docs/protocols.md)")
        # The arguments given (not None) replace the preset's values; lists become tuples (settings are frozen).
        given = {k: v for k, v in locals().items() if k not in ("self", "preset") and v is not None}
        given = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}
        self.name = preset
        self.settings = replace(PRESETS[preset], **given)
        _check(self.settings, "evaluation")

    def __repr__(self) -> str:
        changed = {
            f.name: getattr(self.settings, f.name)
            for f in fields(self.settings)
            if getattr(self.settings, f.name) != getattr(PRESETS[self.name], f.name)
        }
        return f"EvaluationProtocol({self.name!r}{''.join(f', {k}={v!r}' for k, v in changed.items())})"

    @property
    def metrics(self) -> list[str]:
        """The metric families this protocol computes."""
        return list(self.settings.metrics)

    def options(self, nlg_scorer: Any = None) -> MetricOptions:
        """The :class:`~radiolm.metrics.evaluate.MetricOptions` of this protocol."""
        s = self.settings
        return MetricOptions(
            labeler=s.labeler,
            uncertain=s.uncertain,
            chexbert_checkpoint=s.chexbert_checkpoint,
            chexbert_tokenizer=s.chexbert_tokenizer,
            bertscore_model=s.bertscore_model,
            bertscore_layers=s.bertscore_layers,
            bertscore_baseline=bertscore_baseline_file(s.bertscore_baseline),
            radgraph_model=s.radgraph_model,
            nlg_scorer=nlg_scorer,
            ce_formula=s.ce_formula,
            radgraph_levels=s.radgraph_levels,
            protocol=self.name,
        )

    def prepare(self, records: Sequence[dict[str, Any]], tokenizer: Tokenizer | None = None) -> list[dict[str, Any]]:
        """Records as this protocol scores them: normalised text, references cut, Chinese pre-segmented.

        Raises:
            RadioLMError: ``reference_tokens`` is set but there is no tokenizer to cut with.
        """
        s = self.settings
        out = [dict(r) for r in records]
        if s.reference_tokens:
            tokenizer = tokenizer or self._reference_tokenizer()
            references = truncate_references([str(r["reference"]) for r in out], tokenizer, s.reference_tokens)
            for record, reference in zip(out, references, strict=True):
                record["reference"] = reference
        for record in out:
            for key in ("prediction", "reference"):
                record[key] = normalise_text(str(record[key]), s.text)
            if s.chinese == "characters" and str(record.get("language") or "en").lower().startswith("zh"):
                record["prediction"], record["reference"] = (
                    _characters(record[k]) for k in ("prediction", "reference")
                )
                record["language"] = "characters"  # not "zh": scored as given, the tokens are separated already
        return out

    def _reference_tokenizer(self) -> Tokenizer:
        name = self.settings.reference_tokenizer
        if name is None:
            raise RadioLMError(
                f"the {self.name!r} protocol cuts references to {self.settings.reference_tokens} tokens and needs the "
                "tokenizer to cut with: set evaluation.init_args.reference_tokenizer (radiolm evaluate: "
                "--reference-tokenizer DIR), or reference_tokens: 0 to score untruncated references"
            )
        from transformers import AutoTokenizer

        from radiolm.assets import resolve_language_model

        return AutoTokenizer.from_pretrained(resolve_language_model(name))

    def evaluate(
        self,
        records: Sequence[dict[str, Any]],
        bootstrap: int = 0,
        seed: int = 0,
        tokenizer: Tokenizer | None = None,
        nlg_scorer: Any = None,
        metrics: Sequence[str] | None = None,
    ) -> Evaluation:
        """Score records ``{id, prediction, reference[, language]}`` under this protocol.

        Args:
            records: One per study, each id once.
            bootstrap: Bootstrap resamples for 95% intervals (0: none).
            seed: Seed of the resampling.
            tokenizer: The tokenizer that cuts references (the method's LLM); ``None``: ``reference_tokenizer``.
            nlg_scorer: A running NLG scorer to reuse (``None``: the process's).
            metrics: Families to compute instead of the protocol's (the method's ``metrics``).

        Returns:
            The :class:`~radiolm.metrics.evaluate.Evaluation`, with only the metrics the protocol reports and the
            families it could not compute in ``unavailable``.
        """
        families = list(metrics if metrics is not None else self.settings.metrics)
        unavailable: dict[str, str] = {}
        if "ce" in families and self.settings.labeler == "chexbert" and not self.has_chexbert():
            families.remove("ce")
            unavailable["ce"] = (
                f"the {self.name!r} protocol labels with CheXbert: set evaluation.init_args.chexbert_checkpoint "
                "(chexbert.pth) and chexbert_tokenizer (a BERT tokenizer folder) (radiolm evaluate: "
                "--chexbert-checkpoint, --chexbert-tokenizer), or labeler: rules to use the rule labeler"
            )
        prepared = self.prepare(records, tokenizer)
        skip_meteor = not self.reports("meteor")
        if "nlg" in families and nlg_scorer is None and skip_meteor:
            nlg_scorer = NLGScorer(meteor=False)  # METEOR is not reported: no JVM
        if families:
            result = evaluate(prepared, families, self.options(nlg_scorer), bootstrap, seed)
        else:
            result = Evaluation(len(prepared), sum(not str(r["prediction"]).strip() for r in prepared))
            result.options = self.options(nlg_scorer)
        result.unavailable = {**unavailable, **result.unavailable}
        if skip_meteor:
            result.unavailable.pop("meteor", None)
        result.scores = {k: v for k, v in result.scores.items() if self.reports(k)}
        result.intervals = {k: v for k, v in result.intervals.items() if k in result.scores}
        return result

    def has_chexbert(self) -> bool:
        """Whether the CheXbert weights and tokenizer are set (the CheXbert labeler can be built)."""
        return bool(self.settings.chexbert_checkpoint and self.settings.chexbert_tokenizer)

    def reports(self, name: str) -> bool:
        """Whether the metric ``name`` is reported: in ``keep`` (when set) and of a chosen CE average."""
        if self.settings.keep is not None and name not in self.settings.keep:
            return False
        average = _average_of(name)
        return average is None or average in self.settings.averages

    def scores(self, records: Sequence[dict[str, Any]], **kwargs: Any) -> dict[str, float]:
        """:meth:`evaluate` as a flat ``{name: value}``."""
        return self.evaluate(records, **kwargs).flat()


def _average_of(name: str) -> str | None:
    """The CE average of a metric name (``f1_cxb_*`` is micro), or ``None`` for a metric that is not CE."""
    if name.startswith("f1_cxb_") or "_micro_" in name:
        return "micro" if name.startswith(("ce_", "f1_cxb_")) else None
    if name.startswith("ce_"):
        return "macro" if "_macro_" in name else "example" if name.endswith("_example") else None
    return None
