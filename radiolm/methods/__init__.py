"""One LightningModule per paper on a shared base; YAML names them ``radiolm.methods.<Name>``.

Names are imported on first use (PEP 562), so importing one method never loads another's dependencies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from radiolm.methods.base import ReportGenerationModule
    from radiolm.methods.bidirectional import Bidirectional
    from radiolm.methods.cmrg_llm import CMRGLLM, CMRGDomain
    from radiolm.methods.dia_llama import DiaLLaMA
    from radiolm.methods.optim import LRSchedule
    from radiolm.methods.r2gengpt import R2GenGPT
    from radiolm.methods.two_stage import TwoStageFinetune

# public name -> the module that defines it
_MODULES = {
    "Bidirectional": "bidirectional",
    "CMRGDomain": "cmrg_llm",
    "CMRGLLM": "cmrg_llm",
    "DiaLLaMA": "dia_llama",
    "LRSchedule": "optim",
    "R2GenGPT": "r2gengpt",
    "ReportGenerationModule": "base",
    "TwoStageFinetune": "two_stage",
}

__all__ = [  # noqa: RUF022  plain sorted (tests/test_public_names.py); ruff would put CMRGLLM first
    "Bidirectional",
    "CMRGDomain",
    "CMRGLLM",
    "DiaLLaMA",
    "LRSchedule",
    "R2GenGPT",
    "ReportGenerationModule",
    "TwoStageFinetune",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
