"""The built-in phantom: synthetic chest X-rays and CT volumes whose content decides the report (docs/phantom.md).

* :mod:`~radiolm.data.phantom.specs`: the ground truth of a study (:class:`StudySpec`, :class:`CTStudySpec`);
* :mod:`~radiolm.data.phantom.cxr` / :mod:`~radiolm.data.phantom.ct`: sampling a study and writing a data set
  (:func:`generate_cxr` in the R2Gen layout, :func:`generate_ct` in the CTRG layout);
* :mod:`~radiolm.data.phantom.cxr_render` / :mod:`~radiolm.data.phantom.ct_render`: drawing a study;
* :mod:`~radiolm.data.phantom.grammar_cxr`, :mod:`~radiolm.data.phantom.grammar_ct`,
  :mod:`~radiolm.data.phantom.grammar_zh`: the English X-ray and CT report grammars and the Chinese lexicons;
* :mod:`~radiolm.data.phantom.command`: ``radiolm data phantom``.

The public functions are re-exported lazily (PEP 562): ``from radiolm.data.phantom import generate_cxr``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from radiolm.data.phantom.ct import generate_ct, sample_ct_study
    from radiolm.data.phantom.ct_render import render_ct
    from radiolm.data.phantom.cxr import generate_cxr, sample_study
    from radiolm.data.phantom.cxr_render import render_frontal, render_lateral
    from radiolm.data.phantom.grammar_ct import ct_spec_labels, write_ct_report
    from radiolm.data.phantom.grammar_cxr import spec_labels, write_report
    from radiolm.data.phantom.specs import CTStudySpec, StudySpec

_EXPORTS = {
    "CTStudySpec": "specs",
    "StudySpec": "specs",
    "ct_spec_labels": "grammar_ct",
    "generate_ct": "ct",
    "generate_cxr": "cxr",
    "render_ct": "ct_render",
    "render_frontal": "cxr_render",
    "render_lateral": "cxr_render",
    "sample_ct_study": "ct",
    "sample_study": "cxr",
    "spec_labels": "grammar_cxr",
    "write_ct_report": "grammar_ct",
    "write_report": "grammar_cxr",
}

__all__ = [
    "CTStudySpec",
    "StudySpec",
    "ct_spec_labels",
    "generate_ct",
    "generate_cxr",
    "render_ct",
    "render_frontal",
    "render_lateral",
    "sample_ct_study",
    "sample_study",
    "spec_labels",
    "write_ct_report",
    "write_report",
]


def __getattr__(name: str) -> Any:
    """Import a re-exported name on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
