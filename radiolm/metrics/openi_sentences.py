"""Real report sentences for measuring the rule labeler: a seeded draw from the 3,955 Open-i (IU-Xray) reports.

The labeler's first agreement figure (``tests/data/chexpert_sentences.tsv``) was measured on sentences written
for the suite. :func:`draw_sentences` draws sentences of real radiologists' findings and impressions instead,
from ``NLMCXR_reports.tgz`` (shipped inside the ``torchxrayvision`` wheel as
``torchxrayvision/data/NLMCXR_reports.tgz``); they are then labelled by hand by CheXpert's rules (Irvin et al.
2019, §2.2: mention extraction, negation, uncertainty) into ``tests/data/openi_sentences_labelled.jsonl``, which
:func:`radiolm.metrics.chexpert_labeler.validate` reads like the TSV.

The draw is over *distinct* sentences (compared lower-cased, white space collapsed), so "The lungs are clear."
counts once and no sentence can be in both the dev and the held-out part. Report-wide boilerplate that repeats
is thus under-weighted relative to its frequency, and rare phrasing over-weighted: a harder test than the raw
sentence distribution, by design.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from radiolm.data.builders.iu_xray import read_iu_reports

__all__ = ["SECTIONS", "draw_sentences"]

SECTIONS = ("findings", "impression")
"""The report sections sentences are drawn from, in this order within a report."""

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")  # the labeler's own split (chexpert_labeler.split_sentences)
_WORD = re.compile(r"[a-z]+")  # a sentence needs two words ("Normal." and "XXXX." are left out)


def draw_sentences(reports: str | Path, n: int = 320, seed: int = 0, n_dev: int = 200) -> list[dict[str, object]]:
    """``n`` distinct sentences drawn at random from the findings and impressions of ``reports``.

    Args:
        reports: ``NLMCXR_reports.tgz`` or a folder of its XML files.
        n: How many sentences.
        seed: ``random.Random(seed).sample`` over the distinct sentences in report-number order.
        n_dev: The first ``n_dev`` drawn sentences form the ``dev`` part, the rest ``holdout``.

    Returns:
        ``{"set", "report", "section", "sentence", "labels"}`` per sentence (``report`` is the XML file's number
        of the sentence's first occurrence; ``labels`` is ``{}``, to be filled in by hand).
    """
    seen: dict[str, dict[str, object]] = {}
    for study in read_iu_reports(reports, progress=False):
        for section in SECTIONS:
            for sentence in _SENTENCE_END.split(study.sections.get(section, "")):
                sentence = " ".join(sentence.split())
                key = sentence.lower()
                if len(_WORD.findall(key)) >= 2 and key not in seen:
                    seen[key] = {"report": f"{study.number}.xml", "section": section, "sentence": sentence}
    if n > len(seen):
        raise ValueError(f"{reports}: asked for {n} sentences, the reports hold only {len(seen)} distinct ones")
    drawn = random.Random(seed).sample(list(seen.values()), n)
    return [{"set": "dev" if i < n_dev else "holdout", **row, "labels": {}} for i, row in enumerate(drawn)]
