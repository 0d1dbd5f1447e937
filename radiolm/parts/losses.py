"""The papers' objectives beyond the report's likelihood, one function each (DESIGN.md, "parts/").

Each docstring gives the equation of its paper; shapes are stated at the boundary. The LM loss itself lives in
:meth:`radiolm.parts.language_model.LanguageModel.loss`.
"""

from __future__ import annotations

__all__: list[str] = []
