"""Rule-based CheXpert-style labeler: 14 observations per report, 1 / 0 / -1 / blank.

Written for radiolm from scratch (no parser, no download): phrase lists per observation and shared cue patterns
live as text files in ``chexpert_phrases/``; ``docs/labeler.md`` gives the rules, the measured agreement on
``tests/data/chexpert_sentences.tsv`` and the known limitations. In short:

1. The report is lower-cased and split into sentences.
2. Mentions of each observation are found with its phrase lists (``[positive]``, ``[uncertain]``, ``[normal]``);
   a mention inside a longer mention is dropped, as is one inside an ``[exclude]`` phrase.
3. Cues (negation, uncertainty, normality) are found in the sentence; a pseudo-cue ("no change in") cancels the
   cues it overlaps, and of overlapping cues the longest is kept. A cue reaches mentions after it (``_pre``
   sections), before it (``_post``) or both (``_near``: "versus") within a window of words (:data:`_CUE_SECTIONS`),
   never across a terminator ("but", "which", ";", ...); adjectival hedges ("possible") and normality cues also
   stop at a comma. Of the cues that reach a finding mention the nearest decides (negation -> 0, uncertainty -> -1;
   a tie goes to uncertainty); no cue leaves ``[positive]`` at 1 and ``[uncertain]`` at -1. A ``[normal]`` mention
   (an organ) gives 0 when a normality or negation cue reaches it, else nothing.
4. Per report and observation: positive beats uncertain beats negative; no mention is blank (``None``).
   No Finding is 1 when no observation other than Support Devices is 1 or -1, and blank otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from radiolm.data.labels import CHEXPERT_14, NEGATIVE, POSITIVE, UNCERTAIN

__all__ = [
    "PHRASES_DIR",
    "SHORT_NAMES",
    "Label",
    "RuleLabeler",
    "label_report",
    "label_reports",
    "split_sentences",
]

Label = int | None
"""One observation's label: 1 positive, 0 negative, -1 uncertain, ``None`` blank (not mentioned)."""

PHRASES_DIR = Path(__file__).with_name("chexpert_phrases")
"""Folder of the phrase files: one per observation (``cardiomegaly.txt``, ...) and ``cues.txt``."""

SHORT_NAMES: dict[str, str] = dict(
    zip(
        CHEXPERT_14,
        ("ECM", "CM", "LO", "LL", "ED", "CO", "PNA", "ATL", "PTX", "EFF", "PO", "FX", "SD", "NF"),
        strict=True,
    )
)
"""Short codes of the observations, used by the validation file and tables."""

OBSERVATIONS: tuple[str, ...] = CHEXPERT_14[:-1]  # every observation but No Finding has mentions
_NO_FINDING = CHEXPERT_14.index("No Finding")
_NOT_PATHOLOGY = {CHEXPERT_14.index("Support Devices"), _NO_FINDING}
_OPACITY_CHILDREN = tuple(CHEXPERT_14.index(name) for name in ("Edema", "Consolidation", "Atelectasis"))
_LUNG_OPACITY = CHEXPERT_14.index("Lung Opacity")

_MENTION_KINDS = ("positive", "uncertain", "normal")
_SECTIONS = (*_MENTION_KINDS, "exclude")  # the sections of an observation's phrase file
# Cue sections of cues.txt: (kind, direction, most words between cue and mention, what else stops the cue).
# "near" cues reach both ways; adjectival hedges and normality cues stop at a comma (and hedges at "and").
_CUE_SECTIONS: dict[str, tuple[str, str, int, re.Pattern[str] | None]] = {
    "negation_pre": ("negation", "pre", 12, None),
    "negation_post": ("negation", "post", 8, None),
    "uncertainty_pre": ("uncertainty", "pre", 12, None),
    "uncertainty_adjective": ("uncertainty", "pre", 6, re.compile(r",|\band\b")),
    "uncertainty_post": ("uncertainty", "post", 8, None),
    "uncertainty_near": ("uncertainty", "near", 4, None),
    "normal_pre": ("normal", "pre", 4, re.compile(",")),
    "normal_post": ("normal", "post", 8, re.compile(",")),
}
_WORD = re.compile(r"\w+")
_MACRO = re.compile(r"\{([a-z_]+)\}")
_HEADER = re.compile(r"\[(\w+)\]")
_ABBREVIATION = re.compile(r"\b(vs|approx|e\.g|i\.e|dr|st)\.")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\s*\n\s*\n\s*")
# Between two findings offered as alternatives: "or", "and/or" or "/", then at most two modifiers of the second.
_ALTERNATIVE = re.compile(r"\s*(?:(?:,\s*)?(?:and/or|or)\s+|/\s*)(?:[\w-]+\s+){0,2}")


def split_sentences(text: str) -> list[str]:
    """Lower-case ``text`` and split it into sentences with single spaces.

    A sentence ends at ``.``, ``!`` or ``?`` followed by white space (so ``1.5 cm`` and ``vs.`` do not split) or at
    a blank line; a single line break is a space (reports wrap lines inside sentences).
    """
    text = _ABBREVIATION.sub(r"\1", text.lower())
    return [" ".join(part.split()) for part in _SENTENCE_END.split(text) if part.strip()]


@dataclass(frozen=True)
class _Span:
    """A mention (``kind`` positive / uncertain / normal) or a cue (negation / uncertainty / normal, pre / post)."""

    start: int
    end: int
    kind: str
    direction: str = ""
    observation: int = -1
    window: int = 0
    stop: re.Pattern[str] | None = None


def _read_sections(path: Path) -> dict[str, list[str]]:
    """``{section: [pattern, ...]}`` of a phrase file; errors name the file and line."""
    if not path.is_file():
        raise FileNotFoundError(
            f"phrase file {path} is missing; the labeler reads its phrase lists from {path.parent} (an installed "
            "radiolm ships them as package data: radiolm.metrics chexpert_phrases/*.txt), or pass phrases_dir"
        )
    sections: dict[str, list[str]] = {}
    current = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = _HEADER.fullmatch(line)
        if header:
            current = header[1]
            sections.setdefault(current, [])
        elif current is None:
            raise ValueError(f"{path}:{number}: pattern {line!r} comes before any [section] header")
        else:
            sections[current].append(line)
    return sections


def _compile(patterns: list[str], macros: dict[str, str], source: str) -> re.Pattern[str] | None:
    """One alternation of ``patterns`` at word boundaries (longest pattern first), ``None`` when empty."""
    words: list[str] = []
    punctuation: list[str] = []
    for pattern in patterns:
        unknown = sorted(set(_MACRO.findall(pattern)) - set(macros))
        if unknown:
            raise ValueError(f"{source}: pattern {pattern!r} uses unknown macro(s) {unknown}; have {sorted(macros)}")
        expanded = _MACRO.sub(lambda m: macros[m[1]], pattern)
        try:
            re.compile(expanded)
        except re.error as e:
            raise ValueError(f"{source}: bad pattern {pattern!r}: {e}") from None
        # a bare character class of punctuation (the terminator [;:]) is matched as is, the rest at word boundaries
        (punctuation if re.fullmatch(r"\[[^\w\]]+\]", expanded) else words).append(expanded)
    words.sort(key=len, reverse=True)
    alternatives = ([rf"(?<!\w)(?:{'|'.join(words)})(?!\w)"] if words else []) + punctuation
    return re.compile("|".join(alternatives)) if alternatives else None


def _aggregate(values: Sequence[int]) -> Label:
    """Positive beats uncertain beats negative; no value is blank."""
    for label in (POSITIVE, UNCERTAIN, NEGATIVE):
        if label in values:
            return label
    return None


class RuleLabeler:
    """CheXpert-style labeler from phrase lists and cue patterns.

    Args:
        phrases_dir: folder of the phrase files (default :data:`PHRASES_DIR`).
        propagate_opacity: also mark Lung Opacity positive when Edema, Consolidation or Atelectasis is positive
            (the phantom's convention and CheXpert's label hierarchy); off by default, as the CheXpert labeler.
        cache_size: sentences whose labels are kept (report sentences repeat a lot); 0 turns the cache off.

    Example:
        >>> labeler = RuleLabeler()
        >>> labeler(["No pleural effusion or pneumothorax. Mild cardiomegaly."])[0][1]
        1
    """

    def __init__(
        self, phrases_dir: str | Path | None = None, propagate_opacity: bool = False, cache_size: int = 65536
    ) -> None:
        folder = Path(phrases_dir) if phrases_dir is not None else PHRASES_DIR
        self.propagate_opacity = propagate_opacity
        cues = _read_sections(folder / "cues.txt")
        unknown = set(cues) - {*_CUE_SECTIONS, "macros", "pseudo", "terminators"}
        if unknown:
            raise ValueError(f"{folder / 'cues.txt'}: unknown section(s) {sorted(unknown)}; use {list(_CUE_SECTIONS)}")
        macros = dict(_split_macro(line, folder / "cues.txt") for line in cues.get("macros", []))
        self._cues = []
        for section, (kind, direction, window, stop) in _CUE_SECTIONS.items():
            compiled = _compile(cues.get(section, []), macros, f"{folder / 'cues.txt'} [{section}]")
            if compiled is not None:
                self._cues.append((compiled, kind, direction, window, stop))
        self._pseudo = _compile(cues.get("pseudo", []), macros, f"{folder / 'cues.txt'} [pseudo]")
        self._terminators = _compile(cues.get("terminators", []), macros, f"{folder / 'cues.txt'} [terminators]")
        # Per observation and section one pattern; per section one pattern of all observations scans a sentence once,
        # then each match is given to the observations whose own pattern matches its text (_owners).
        self._sections: list[dict[str, re.Pattern[str]]] = []
        everything: dict[str, list[str]] = {kind: [] for kind in _SECTIONS}
        for name in OBSERVATIONS:
            path = folder / (name.lower().replace(" ", "_") + ".txt")
            sections = _read_sections(path)
            unknown = set(sections) - set(_SECTIONS)
            if unknown:
                raise ValueError(f"{path}: unknown section(s) {sorted(unknown)}; use {list(_SECTIONS)}")
            own = {kind: _compile(sections.get(kind, []), macros, f"{path} [{kind}]") for kind in _SECTIONS}
            self._sections.append({kind: rx for kind, rx in own.items() if rx is not None})
            for kind in _SECTIONS:
                everything[kind] += [_MACRO.sub(lambda m: macros[m[1]], p) for p in sections.get(kind, [])]
        self._scans = {kind: _compile(everything[kind], {}, f"{folder} [{kind}]") for kind in _SECTIONS}
        self._owner_cache: dict[tuple[str, str], tuple[int, ...]] = {}
        self._sentence = lru_cache(maxsize=cache_size)(self._label_sentence) if cache_size else self._label_sentence

    def __call__(self, texts: Sequence[str]) -> list[list[Label]]:
        """Labels of each report: 14 values in :data:`~radiolm.data.labels.CHEXPERT_14` order."""
        if isinstance(texts, str):
            raise TypeError("RuleLabeler takes a list of reports; use label(text) for one report")
        return [self.label(text) for text in texts]

    def label(self, text: str) -> list[Label]:
        """Labels of one report (14 values, :data:`~radiolm.data.labels.CHEXPERT_14` order)."""
        values: list[list[int]] = [[] for _ in CHEXPERT_14]
        for sentence in split_sentences(text):
            for observation, value in self._sentence(sentence):
                values[observation].append(value)
        labels = [_aggregate(v) for v in values]
        if self.propagate_opacity and any(labels[i] == POSITIVE for i in _OPACITY_CHILDREN):
            labels[_LUNG_OPACITY] = POSITIVE
        pathology = [label for i, label in enumerate(labels) if i not in _NOT_PATHOLOGY]
        labels[_NO_FINDING] = None if POSITIVE in pathology or UNCERTAIN in pathology else POSITIVE
        return labels

    def explain(self, text: str) -> list[tuple[str, str, str, Label]]:
        """``(observation, mention text, mention kind, value)`` of every mention in ``text``, for inspection."""
        rows = []
        for sentence in split_sentences(text):
            for mention, value in self._mention_values(sentence):
                phrase = sentence[mention.start : mention.end]
                rows.append((OBSERVATIONS[mention.observation], phrase, mention.kind, value))
        return rows

    # -- one sentence -------------------------------------------------------------------------------------------

    def _label_sentence(self, sentence: str) -> tuple[tuple[int, int], ...]:
        """``(observation index, value)`` of every labelled mention of a (lower-case) sentence."""
        return tuple((m.observation, value) for m, value in self._mention_values(sentence) if value is not None)

    def _mention_values(self, sentence: str) -> list[tuple[_Span, Label]]:
        """Every mention of a (lower-case) sentence with its value; alternatives of a positive mention make it -1.

        "Infiltrate or atelectasis", "atelectasis/infiltrate", "scarring or subsegmental atelectasis": two findings
        of different observations offered as alternatives are each uncertain (CheXpert, Irvin et al. 2019 §2.2:
        uncertainty covers a finding the radiologist does not commit to). A negated alternative stays negated
        ("no effusion or pneumothorax"); two names of one observation ("infection/pneumonia") stay positive, and so
        do the items of a list after a pseudo-cue ("no change in pneumothorax or pleural fluid": both present).
        """
        mentions = self._find_mentions(sentence)
        if not mentions:
            return []
        cues, terminators = self._find_cues(sentence), self._terminator_spans(sentence)
        values = [self._value(mention, cues, sentence, terminators) for mention in mentions]
        for i, mention in enumerate(mentions):
            if values[i] == POSITIVE and any(
                other.kind != "normal"
                and other.observation != mention.observation
                and not (self._pseudo and self._pseudo.search(sentence, 0, min(other.start, mention.start)))
                for other in mentions
                if _ALTERNATIVE.fullmatch(sentence, mention.end, other.start)
                or _ALTERNATIVE.fullmatch(sentence, other.end, mention.start)
            ):
                values[i] = UNCERTAIN
        return list(zip(mentions, values, strict=True))

    def _owners(self, kind: str, text: str) -> tuple[int, ...]:
        """Observations whose ``kind`` section matches all of ``text`` (a phrase may belong to two)."""
        key = (kind, text)
        if key not in self._owner_cache:
            if len(self._owner_cache) > 100_000:  # matched phrases are few; this only bounds a pathological input
                self._owner_cache.clear()
            rxs = ((i, sections.get(kind)) for i, sections in enumerate(self._sections))
            self._owner_cache[key] = tuple(i for i, rx in rxs if rx is not None and rx.fullmatch(text))
        return self._owner_cache[key]

    def _find_mentions(self, sentence: str) -> list[_Span]:
        """Mentions of every observation; one inside a longer mention or its observation's exclude phrase is dropped."""
        hidden = []
        if (exclude := self._scans["exclude"]) is not None:
            for m in exclude.finditer(sentence):
                hidden += [(m.start(), m.end(), i) for i in self._owners("exclude", m.group())]
        found = []
        for kind in _MENTION_KINDS:
            if (scan := self._scans[kind]) is None:
                continue
            for m in scan.finditer(sentence):
                for i in self._owners(kind, m.group()):
                    if not any(o == i and start <= m.start() and m.end() <= end for start, end, o in hidden):
                        found.append(_Span(m.start(), m.end(), kind, observation=i))
        return [
            m
            for m in found
            if not any(o.start <= m.start and m.end <= o.end and o.end - o.start > m.end - m.start for o in found)
        ]

    def _find_cues(self, sentence: str) -> list[_Span]:
        """Cues not cancelled by a pseudo-cue; of overlapping cues the longest (ties: all with that span)."""
        found = [
            _Span(m.start(), m.end(), kind, direction, window=window, stop=stop)
            for rx, kind, direction, window, stop in self._cues
            for m in rx.finditer(sentence)
        ]
        if self._pseudo is not None:
            pseudo = [m.span() for m in self._pseudo.finditer(sentence)]
            found = [c for c in found if not any(c.start < end and start < c.end for start, end in pseudo)]
        found.sort(key=lambda c: (c.start - c.end, c.start))
        kept: list[_Span] = []
        for cue in found:
            if all(cue.end <= k.start or k.end <= cue.start or (cue.start, cue.end) == (k.start, k.end) for k in kept):
                kept.append(cue)
        return kept

    def _terminator_spans(self, sentence: str) -> list[tuple[int, int]]:
        return [m.span() for m in self._terminators.finditer(sentence)] if self._terminators else []

    @staticmethod
    def _distance(cue: _Span, mention: _Span, sentence: str, terminators: list[tuple[int, int]]) -> int | None:
        """Words from ``cue`` to ``mention`` plus one (0 for a cue inside the mention), ``None`` out of reach."""
        if cue.start >= mention.start and cue.end <= mention.end:
            return 0
        if cue.direction in ("pre", "near") and cue.start < mention.start:
            start, end = min(cue.end, mention.start), mention.start
        elif cue.direction in ("post", "near") and cue.start >= mention.end:
            start, end = mention.end, cue.start
        else:
            return None
        if any(start <= t_start and t_end <= end for t_start, t_end in terminators):
            return None
        if cue.stop is not None and cue.stop.search(sentence, start, end):
            return None
        words = len(_WORD.findall(sentence, start, end))
        return words + 1 if words <= cue.window else None

    def _value(self, mention: _Span, cues: list[_Span], sentence: str, terminators: list[tuple[int, int]]) -> Label:
        """The label one mention gives: see the module docstring, step 3."""
        if mention.kind == "normal":
            for cue in cues:
                reach = self._distance(cue, mention, sentence, terminators)
                if cue.kind in ("normal", "negation") and reach is not None:
                    return NEGATIVE
            return None
        best: tuple[int, int] | None = None
        for cue in cues:
            if cue.kind == "normal":
                continue
            distance = self._distance(cue, mention, sentence, terminators)
            if distance is not None:
                rank = (distance, 0 if cue.kind == "uncertainty" else 1)
                best = rank if best is None else min(best, rank)
        if best is None:
            return POSITIVE if mention.kind == "positive" else UNCERTAIN
        return UNCERTAIN if best[1] == 0 else NEGATIVE


def _split_macro(line: str, path: Path) -> tuple[str, str]:
    name, sep, value = line.partition("=")
    if not sep or not name.strip().isidentifier():
        raise ValueError(f"{path} [macros]: expected 'name = pattern', got {line!r}")
    return name.strip(), value.strip()


@lru_cache(maxsize=1)
def _default_labeler() -> RuleLabeler:
    return RuleLabeler()


def label_report(text: str) -> list[Label]:
    """CheXpert-14 labels of one report with the default :class:`RuleLabeler` (1 / 0 / -1 / ``None``)."""
    return _default_labeler().label(text)


def label_reports(texts: Sequence[str]) -> list[list[Label]]:
    """CheXpert-14 labels of each report with the default :class:`RuleLabeler`."""
    return _default_labeler()(texts)


# -- validation -------------------------------------------------------------------------------------------------


def read_validation(path: str | Path) -> list[tuple[str, str, dict[str, int]]]:
    """Rows ``(set, sentence, {observation: label})`` of a hand-labelled TSV or JSONL file.

    TSV (``tests/data/chexpert_sentences.tsv``, format in its header comment): columns set, sentence, labels
    (``CM=1 EFF=0``). JSONL (``tests/data/openi_sentences_labelled.jsonl``): one object per line with ``set``,
    ``sentence`` and ``labels`` (``{"CM": 1, "EFF": 0}``); other keys (``report``, ``section``) are kept for the
    reader and ignored here.

    Raises:
        ValueError: naming the file and line for a row without its columns / keys or with an unknown code or value.
    """
    import json

    path = Path(path)
    codes = {code: name for name, code in SHORT_NAMES.items()}
    jsonl = path.suffix == ".jsonl"
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#") or line.startswith("set\t"):
            continue
        if jsonl:
            try:
                row = json.loads(line)
                parts = [row["set"], row["sentence"], " ".join(f"{k}={v}" for k, v in row["labels"].items())]
            except (ValueError, KeyError, TypeError, AttributeError):
                raise ValueError(
                    f"{path}:{number}: expected a JSON object with 'set', 'sentence' and 'labels' ({{CODE: 1|0|-1}})"
                ) from None
        else:
            parts = line.split("\t")
            if len(parts) != 3:
                raise ValueError(f"{path}:{number}: expected 3 tab-separated columns (set, sentence, labels)")
        gold = {}
        for item in parts[2].split():
            code, _, value = item.partition("=")
            if code not in codes or value not in ("1", "0", "-1"):
                raise ValueError(f"{path}:{number}: bad label {item!r}; use CODE=1|0|-1 with CODE in {list(codes)}")
            gold[codes[code]] = int(value)
        rows.append((parts[0], parts[1], gold))
    return rows


def validate(path: str | Path, labeler: RuleLabeler | None = None) -> dict[str, dict]:
    """Agreement of ``labeler`` with a hand-labelled sentence file, per set (``dev``, ``holdout``, ``all``).

    Per observation: ``support`` (sentences whose gold label is not blank), ``accuracy`` (the labeler gives the
    gold value on them) and ``spurious`` (gold blank, labeler not). ``exact_match``: all 13 observations equal,
    blanks included. No Finding is not compared (it follows from the others by rule).
    """
    labeler = labeler or _default_labeler()
    rows = read_validation(path)
    results: dict[str, dict] = {}
    for name in [*sorted({row[0] for row in rows}), "all"]:
        subset = [row for row in rows if name in ("all", row[0])]
        predicted = labeler([sentence for _, sentence, _ in subset])
        pairs = [
            [(gold.get(observation), labels[i]) for i, observation in enumerate(OBSERVATIONS)]
            for (_, _, gold), labels in zip(subset, predicted, strict=True)
        ]
        table = {}
        for i, observation in enumerate(OBSERVATIONS):
            support = [(g, p) for g, p in (row[i] for row in pairs) if g is not None]
            correct = sum(g == p for g, p in support)
            table[observation] = {
                "support": len(support),
                "correct": correct,
                "accuracy": correct / len(support) if support else float("nan"),
                "spurious": sum(g is None and p is not None for g, p in (row[i] for row in pairs)),
            }
        errors = []
        for (_, sentence, _), row in zip(subset, pairs, strict=True):
            wrong = {o: pair for o, pair in zip(OBSERVATIONS, row, strict=True) if pair[0] != pair[1]}
            if wrong:
                errors.append((sentence, wrong))
        exact = len(subset) - len(errors)
        results[name] = {"n": len(subset), "exact_match": exact / len(subset), "table": table, "errors": errors}
    return results


def phantom_agreement(n: int = 500, seed: int = 0, labeler: RuleLabeler | None = None) -> dict[str, Any]:
    """Agreement of ``labeler`` on phantom findings text with the phantom's ``labels.csv`` (blank read as 0).

    Writes a small phantom set (one 32 px view per study) to a temporary folder with
    :func:`radiolm.data.phantom.generate_cxr` and labels each study's ``report`` (the findings section).

    Returns:
        ``{"n", "exact_match", "accuracy": {observation: fraction}}`` over the 14 observations.
    """
    import csv
    import json
    import tempfile

    from radiolm.data.phantom import generate_cxr

    labeler = labeler or _default_labeler()
    with tempfile.TemporaryDirectory() as folder:
        generate_cxr(folder, n=n, seed=seed, views=1, image_size=32, progress=False)
        annotation = json.loads(Path(folder, "annotation.json").read_text())
        with Path(folder, "labels.csv").open() as file:
            gold = {row["id"]: [int(row[name]) for name in CHEXPERT_14] for row in csv.DictReader(file)}
    entries = [entry for split in annotation.values() for entry in split]
    predicted = labeler([entry["report"] for entry in entries])
    pairs = [(gold[e["id"]], [0 if v is None else v for v in p]) for e, p in zip(entries, predicted, strict=True)]
    accuracy = {name: sum(g[i] == p[i] for g, p in pairs) / len(pairs) for i, name in enumerate(CHEXPERT_14)}
    return {"n": len(pairs), "exact_match": sum(g == p for g, p in pairs) / len(pairs), "accuracy": accuracy}


def validation_markdown(results: dict[str, dict]) -> str:
    """Markdown table of :func:`validate`: per observation accuracy (support) per set, then exact match."""
    sets = list(results)
    lines = ["| observation | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    for observation in OBSERVATIONS:
        cells = []
        for name in sets:
            row = results[name]["table"][observation]
            cells.append(f"{row['accuracy']:.3f} ({row['correct']}/{row['support']})" if row["support"] else "-")
        lines.append(f"| {observation} | " + " | ".join(cells) + " |")
    exact = [f"{results[name]['exact_match']:.3f} (n={results[name]['n']})" for name in sets]
    lines.append("| exact match, all 13 | " + " | ".join(exact) + " |")
    return "\n".join(lines)
