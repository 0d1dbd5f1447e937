"""Targets made of report sections with their headers: CMRG-LLM's "impression + findings" rule (§3.1, Fig. 3).

CMRG-LLM §3.1: "For all datasets, we filter data containing both impression and findings sections, and predict
both sections", and Fig. 3 shows the targets as ``impression : ... findings : ...`` (English, after R2GenGPT's
MIMIC-CXR cleaning) and ``影像学印象：... 影像学所见：...`` (Chinese). A DataModule with ``sections: [impression,
findings]`` builds each study's target from those sections in that order, each after its header in the study's
language (:data:`SECTION_HEADERS`), and leaves out the studies that lack one of them: a drop on purpose, counted
and logged per split. Cleaning (where the DataModule has it) then applies to the composed text, headers included.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from radiolm.errors import DataError

__all__ = ["SECTION_HEADERS", "check_sections", "compose_sections", "keep_sectioned"]

log = logging.getLogger(__name__)

SECTION_HEADERS: dict[str, dict[str, str]] = {
    "en": {"impression": "Impression:", "findings": "Findings:"},
    "zh": {"impression": "影像学印象：", "findings": "影像学所见："},  # Fig. 3's Chinese headers
}
"""Header of each section per report language (``zh-*`` reads ``zh``)."""


def _language(language: str) -> str:
    return "zh" if str(language).lower().startswith("zh") else str(language).lower()


def check_sections(sections: Sequence[str], language: str, key: str = "data.init_args.sections") -> None:
    """A clear error, naming the config key, for an unknown section or a language without headers.

    Raises:
        DataError: ``sections`` is empty, repeats or names a section without a header, or ``language`` has none.
    """
    headers = SECTION_HEADERS.get(_language(language))
    if headers is None:
        raise DataError(f"{key}: no section headers for language {language!r}; the suite has {list(SECTION_HEADERS)}")
    unknown = [s for s in sections if s not in headers]
    if not sections or unknown or len(set(sections)) != len(sections):
        raise DataError(
            f"{key}: {list(sections)} is not a list of distinct sections among {list(headers)} "
            "(CMRG-LLM §3.1: [impression, findings])"
        )


def compose_sections(
    texts: Mapping[str, str | None], sections: Sequence[str], language: str, headers: bool = True
) -> str | None:
    """The target of one study: each of ``sections`` in order, after its header; ``None`` when one is empty.

    Args:
        texts: Section name -> its text (missing or blank: the study lacks it).
        sections: The sections of the target, in order (``[impression, findings]``, Fig. 3).
        language: The report's language (``en``, ``zh``): the headers and the separator (a space; none in Chinese).
        headers: Write the headers (Fig. 3); ``False`` joins the bare sections.
    """
    parts = [str(texts.get(s) or "").strip() for s in sections]
    if not all(parts):
        return None
    lang = _language(language)
    if headers:
        parts = [
            f"{SECTION_HEADERS[lang][s]}{'' if lang == 'zh' else ' '}{p}" for s, p in zip(sections, parts, strict=True)
        ]
    return ("" if lang == "zh" else " ").join(parts)


def keep_sectioned(
    entries: dict[str, list[dict[str, Any]]],
    sections: Sequence[str],
    language: str,
    headers: bool,
    report_key: str,
    source: Path,
) -> dict[str, list[dict[str, Any]]]:
    """Entries whose ``report_key`` becomes the composed target; those lacking a section are left out, counted
    and logged. An entry's own ``language`` wins over ``language``; its sections are its keys of the same name."""
    kept: dict[str, list[dict[str, Any]]] = {}
    dropped: dict[str, int] = {}
    for split, rows in entries.items():
        kept[split] = []
        for entry in rows:
            text = compose_sections(entry, sections, entry.get("language") or language, headers)
            if text is None:
                dropped[split] = dropped.get(split, 0) + 1
                continue
            kept[split].append({**entry, report_key: text})
    if entries and all(not rows for rows in kept.values()) and any(entries.values()):
        raise DataError(
            f"{source}: no study has all of the sections {list(sections)} (keys of each entry); build the data with "
            "its builder, which writes findings and impression, or drop data.init_args.sections"
        )
    if any(dropped.values()):
        log.info(
            "radiolm: %s: studies without all of %s left out (sections, CMRG-LLM §3.1): %s; kept %s",
            source,
            list(sections),
            dropped,
            {s: len(r) for s, r in kept.items()},
        )
    return kept
