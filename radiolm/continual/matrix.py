"""The continual score matrix ``v_{s,t}``: task ``s`` tested after stage ``t`` (CMRG-LLM §3.1).

``v_t = 1/t sum_{s <= t} v_{s,t}`` is what the paper reports (Tables 1, 2) for BLEU-3, BLEU-4, ROUGE-L and CIDEr.
Backward transfer ``BWT = 1/(T-1) sum_{s<T} (v_{s,T} - v_{s,s})`` and average forgetting
``F = 1/(T-1) sum_{s<T} max_{s<=t<T} (v_{s,t} - v_{s,T})`` (Lopez-Paz & Ranzato 2017; Chaudhry et al. 2018) over the
stages done so far are extras, marked "not in the paper" wherever they are written.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MATRIX_METRICS", "ScoreMatrix"]

MATRIX_METRICS = ("bleu3", "bleu4", "rouge_l", "cider")
"""§3.1: BLEU-3, BLEU-4, ROUGE-L and CIDEr (Tables 1 and 2)."""

NOT_IN_PAPER = "not in the paper"


@dataclass
class ScoreMatrix:
    """Scores of every (tested task, stage) pair.

    Attributes:
        tasks: Task names in training order.
        scores: ``metric -> [s][t]``, ``None`` where not tested (``s > t``, or a stage not done yet).
    """

    tasks: list[str]
    scores: dict[str, list[list[float | None]]] = field(default_factory=dict)

    def set(self, task: int, stage: int, metrics: dict[str, float]) -> None:
        """Record the test scores of task ``task`` after stage ``stage`` (both 0-based; ``task <= stage``)."""
        if task > stage:
            raise ValueError(f"task {task} cannot be tested after stage {stage}: it has not been seen")
        n = len(self.tasks)
        for name, value in metrics.items():
            rows = self.scores.setdefault(name, [[None] * n for _ in range(n)])
            rows[task][stage] = float(value)

    @property
    def stages_done(self) -> int:
        """Stages whose column is complete for the first metric (0 when nothing was tested)."""
        if not self.scores:
            return 0
        rows = next(iter(self.scores.values()))
        done = 0
        for t in range(len(self.tasks)):
            if any(rows[s][t] is None for s in range(t + 1)):
                break
            done = t + 1
        return done

    def average(self, metric: str) -> list[float | None]:
        """``v_t`` per stage (§3.1); ``None`` for stages not done."""
        rows = self.scores[metric]
        out: list[float | None] = []
        for t in range(len(self.tasks)):
            column = [rows[s][t] for s in range(t + 1)]
            out.append(None if any(v is None for v in column) else sum(v for v in column if v is not None) / (t + 1))
        return out

    def backward_transfer(self, metric: str) -> float | None:
        """BWT after the last stage done (not in the paper); ``None`` before two stages."""
        last = self.stages_done - 1
        if last < 1:
            return None
        rows = self.scores[metric]
        return sum(_f(rows[s][last]) - _f(rows[s][s]) for s in range(last)) / last

    def forgetting(self, metric: str) -> float | None:
        """Average forgetting after the last stage done (not in the paper); ``None`` before two stages."""
        last = self.stages_done - 1
        if last < 1:
            return None
        rows = self.scores[metric]
        return sum(max(_f(rows[s][t]) for t in range(s, last)) - _f(rows[s][last]) for s in range(last)) / last

    # -- files ------------------------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        metrics = [m for m in MATRIX_METRICS if m in self.scores] or list(self.scores)
        return {
            "tasks": self.tasks,
            "stages_done": self.stages_done,
            "layout": "scores[metric][s][t]: task s (row) tested after training stage t (column); null: not tested",
            "scores": self.scores,
            "average": {m: self.average(m) for m in self.scores},
            NOT_IN_PAPER: {
                "backward_transfer": {m: self.backward_transfer(m) for m in metrics},
                "forgetting": {m: self.forgetting(m) for m in metrics},
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScoreMatrix:
        return cls(list(data["tasks"]), {k: [list(r) for r in v] for k, v in data["scores"].items()})

    def markdown(self) -> str:
        """One table per metric: rows the tested task, columns the stage after which it was tested, then ``v_t``."""
        lines = ["# Continual score matrix", ""]
        lines.append("`v[s, t]`: task s tested after training stage t (CMRG-LLM §3.1); `v_t`: the mean over s <= t.")
        for metric in [m for m in MATRIX_METRICS if m in self.scores] or list(self.scores):
            rows = self.scores[metric]
            lines += ["", f"## {metric}", ""]
            lines.append(
                "| task \\ after stage | " + " | ".join(f"{t + 1}: {n}" for t, n in enumerate(self.tasks)) + " |"
            )
            lines.append("|---" * (len(self.tasks) + 1) + "|")
            for s, name in enumerate(self.tasks):
                lines.append(
                    f"| {s + 1}: {name} | " + " | ".join(_cell(rows[s][t]) for t in range(len(self.tasks))) + " |"
                )
            lines.append("| **v_t** | " + " | ".join(_cell(v) for v in self.average(metric)) + " |")
            bwt, forget = self.backward_transfer(metric), self.forgetting(metric)
            lines += ["", f"Backward transfer {_cell(bwt)}, forgetting {_cell(forget)} ({NOT_IN_PAPER})."]
        return "\n".join(lines) + "\n"

    def write(self, folder: Path) -> list[Path]:
        """``continual-matrix.json``, ``.md`` and the heat map ``.png`` in ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / "continual-matrix.json", folder / "continual-matrix.md", folder / "continual-matrix.png"]
        paths[0].write_text(json.dumps(self.to_json(), indent=2))
        paths[1].write_text(self.markdown())
        self.plot(paths[2])
        return paths

    def plot(self, path: Path) -> None:
        """A heat map per metric (rows: tested task, columns: stage); untested cells blank."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        metrics = [m for m in MATRIX_METRICS if m in self.scores] or list(self.scores)
        n = len(self.tasks)
        fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(3.2 * max(1, len(metrics)), 3.2), squeeze=False)
        for ax, metric in zip(axes[0], metrics, strict=False):
            values = np.array([[math.nan if v is None else v for v in row] for row in self.scores[metric]])
            ax.imshow(np.ma.masked_invalid(values), cmap="viridis")
            for s in range(n):
                for t in range(n):
                    if not math.isnan(values[s, t]):
                        ax.text(t, s, f"{values[s, t]:.3f}", ha="center", va="center", color="w", fontsize=8)
            ax.set_xticks(range(n), [f"after {name}" for name in self.tasks], rotation=45, ha="right", fontsize=8)
            ax.set_yticks(range(n), self.tasks, fontsize=8)
            ax.set_title(metric)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)


def _f(value: float | None) -> float:
    assert value is not None
    return value


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
