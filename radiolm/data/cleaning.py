"""Report cleaning by name: the R2Gen / R2GenGPT cleaners, byte for byte, and a corrected one.

R2Gen (Chen et al. 2020, ``modules/tokenizers.py``) cleans every report before tokenising it, and R2GenGPT
(``dataset/data_helper.py``) reuses those cleaners for its targets *and* references, so the published scores of
both compare cleaned text. The cleaners here reproduce theirs exactly, quirks included:

* numbering: ``"1. "`` is deleted anywhere (also inside ``"11. "``), ``" 2. "`` .. ``" 5. "`` become ``". "``;
* runs of dots, spaces (MIMIC) and underscores (MIMIC) are shortened by a *fixed* number of pairwise replaces, so a
  long enough run survives in part;
* sentences are split at ``". "``; each loses ``" / \\ '`` and the characters of the regex class
  ``[.,?;*!%^&_+():-\\[\\]{}]``. In that class ``:-\\[`` is a *range* (``:`` to ``[``), so it deletes
  ``: ; < = > ? @ [`` and ``A``-``Z`` but never ``-``. (Text is lower-cased first, so ``A``-``Z`` only matter for
  characters that lower-case to themselves; the class is pinned by the tests all the same.);
* ``if sent_cleaner(sent) != []`` compares a string with a list and is always true, so empty sentences stay and
  show up as ``" .  . "``;
* sentences are joined with ``" . "`` and the text ends in ``" ."``.

R2GenGPT's MIMIC-CXR cleaner differs from R2Gen's in two places: ``":"`` becomes ``" :"`` before the split, and its
class ``[.,?;*!%^&_+()\\[\\]{}]`` has no range (``:`` ``-`` ``<`` ``=`` ``>`` ``@`` survive). Its IU-Xray cleaner is
R2Gen's.

``r2gen_corrected`` is what the R2Gen code evidently meant, offered as an option (no paper's numbers were computed
with it): newlines to spaces and runs of ``_`` / spaces / dots collapsed completely; a list number (``1.`` to ``99.``
at the start or after a space) becomes a sentence break, so ``"11. "`` is no longer cut to ``"1"``; ``/`` and ``\\``
become spaces (``"atelectasis/scar"`` stays two words) and quotes are deleted; the character class is taken
literally (``:`` and ``-`` deleted; ``<``, ``=``, ``>``, ``@`` kept) except that a decimal point stays
(``"2.5 cm"``, not ``"25 cm"``); whitespace inside a sentence is collapsed and
empty sentences are dropped (an empty report stays ``""``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from radiolm.errors import RadioLMError

__all__ = [
    "CLEANERS",
    "R2GENGPT_MIMIC_CHARS",
    "R2GEN_CHARS",
    "clean_none",
    "clean_r2gen_corrected",
    "clean_r2gen_iu",
    "clean_r2gen_mimic",
    "clean_r2gengpt_mimic",
    "get_cleaner",
]

# R2Gen's sentence class, as compiled from its source string (``\[`` and ``\]`` reach ``re`` as escapes).
# ``:-\[`` is the range U+003A..U+005B: ``:;<=>?@``, ``A``-``Z`` and ``[``.
R2GEN_CHARS = re.compile(r"[.,?;*!%^&_+():-\[\]{}]")
# R2GenGPT's MIMIC-CXR sentence class (``dataset/data_helper.py``): no ``:`` and no range.
R2GENGPT_MIMIC_CHARS = re.compile(r"[.,?;*!%^&_+()\[\]{}]")
# The class R2Gen's author listed, taken literally (``r2gen_corrected``), but a dot between digits is kept.
_LITERAL_CHARS = re.compile(r"[,?;*!%^&_+():\-\[\]{}]|(?<!\d)\.|\.(?!\d)")
# Removed from every sentence before the class (all cleaners but ``none``).
_QUOTES = ('"', "/", "\\", "'")


def _replace_times(text: str, old: str, new: str, times: int) -> str:
    """``text.replace(old, new)`` applied ``times`` times in a row (R2Gen's chains of identical replaces)."""
    for _ in range(times):
        text = text.replace(old, new)
    return text


def _drop_numbering(text: str) -> str:
    """R2Gen's list-number removal, in its order: ``"1. "`` deleted, ``". n. "`` then ``" n. "`` -> ``". "``."""
    text = text.replace("1. ", "")
    for n in range(2, 6):
        text = text.replace(f". {n}. ", ". ")
    for n in range(2, 6):
        text = text.replace(f" {n}. ", ". ")
    return text


def _sentence(sentence: str, chars: re.Pattern[str]) -> str:
    """R2Gen's ``sent_cleaner``: drop quotes and slashes, strip, lower-case, delete ``chars`` (no second strip)."""
    for quote in _QUOTES:
        sentence = sentence.replace(quote, "")
    return chars.sub("", sentence.strip().lower())


def _join(sentences: Iterable[str]) -> str:
    """Sentences joined as R2Gen does: ``"a . b ."`` (an empty list gives ``" ."``)."""
    return " . ".join(sentences) + " ."


def _mimic_normalise(text: str) -> str:
    """R2Gen's MIMIC-CXR pre-split steps: newlines, 7x ``__``, 6x double space, 8x ``..``, numbering."""
    text = text.replace("\n", " ")
    text = _replace_times(text, "__", "_", 7)
    text = _replace_times(text, "  ", " ", 6)
    text = _replace_times(text, "..", ".", 8)
    return _drop_numbering(text)


def clean_none(report: str) -> str:
    """The report as written."""
    return report


def clean_r2gen_iu(report: str) -> str:
    """R2Gen's ``clean_report_iu_xray`` (also R2GenGPT's IU-Xray cleaner): 3x ``..``, numbering, split, class.

    Example: ``"Heart size normal. 2. No effusion.."`` -> ``"heart size normal . no effusion ."``.
    """
    text = _drop_numbering(_replace_times(report, "..", ".", 3))
    return _join(_sentence(s, R2GEN_CHARS) for s in text.strip().lower().split(". "))


def clean_r2gen_mimic(report: str) -> str:
    """R2Gen's ``clean_report_mimic_cxr``: newlines, ``_`` / space / dot runs, numbering, split, class."""
    text = _mimic_normalise(report)
    return _join(_sentence(s, R2GEN_CHARS) for s in text.strip().lower().split(". "))


def clean_r2gengpt_mimic(report: str) -> str:
    """R2GenGPT's MIMIC-CXR cleaner: R2Gen's, with ``":"`` -> ``" :"`` and a class without ``: - < = > @``."""
    text = _mimic_normalise(report).replace(":", " :")
    return _join(_sentence(s, R2GENGPT_MIMIC_CHARS) for s in text.strip().lower().split(". "))


def clean_r2gen_corrected(report: str) -> str:
    """R2Gen's cleaner as intended (see the module docstring); not byte-compatible with any published code.

    Example: ``"1. PICC  tip: SVC.. 11. <5 mm nodule/scar, x-ray"`` ->
    ``"picc tip svc . <5 mm nodule scar xray ."``.
    """
    text = re.sub(r"(?:^|(?<=\s))\d{1,2}\.\s", ". ", report.replace("\n", " "))
    text = re.sub(r"_{2,}", "_", text)
    text = re.sub(r"\.{2,}", ".", re.sub(r"\s{2,}", " ", text))
    text = text.replace("/", " ").replace("\\", " ").replace('"', "").replace("'", "")
    sentences = (_LITERAL_CHARS.sub("", s) for s in text.strip().lower().split(". "))
    kept = [clean for clean in (" ".join(s.split()) for s in sentences) if clean]
    return _join(kept) if kept else ""


CLEANERS: dict[str, Callable[[str], str]] = {
    "none": clean_none,
    "r2gen_iu": clean_r2gen_iu,
    "r2gen_mimic": clean_r2gen_mimic,
    "r2gengpt_iu": clean_r2gen_iu,  # R2GenGPT copies R2Gen's IU-Xray cleaner unchanged
    "r2gengpt_mimic": clean_r2gengpt_mimic,
    "r2gen_corrected": clean_r2gen_corrected,
}


def get_cleaner(name: str) -> Callable[[str], str]:
    """The cleaner called ``name``.

    Raises:
        RadioLMError: for an unknown name, listing the known ones.
    """
    if name not in CLEANERS:
        raise RadioLMError(f"cleaning {name!r}: unknown report cleaner; choose one of {sorted(CLEANERS)}")
    return CLEANERS[name]
