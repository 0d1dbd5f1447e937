"""A finished continual run (CMRG-LLM §2.2, §3.1) as the analyses read it: its tasks, stages and test predictions.

``lightning fit`` with a :class:`~radiolm.data.ContinualDataModule` (:mod:`radiolm.continual.sequence`) leaves in
the run folder ``continual-state.json`` (the task names, and the checkpoint each finished stage ended with) and, per
stage ``t`` and seen task ``s``, ``stage-<t>-<task t>/test-<s>-<task s>/predictions-test-<epoch>.jsonl``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from radiolm.continual.sequence import STATE_FILE
from radiolm.errors import RadioLMError

__all__ = ["ContinualRun", "parse_named_run", "read_continual_run"]


@dataclass
class ContinualRun:
    """The stages a continual run has finished.

    Attributes:
        run_dir: The run folder.
        tasks: Task names in training order.
        checkpoints: Per finished stage, the checkpoint its weights were taken from (as recorded).
    """

    run_dir: Path
    tasks: list[str]
    checkpoints: list[str]

    @property
    def done(self) -> int:
        """Stages finished."""
        return len(self.checkpoints)

    def stage(self, stage: int | None) -> int:
        """``stage`` (1-based) checked against the stages done; ``None``: the last one done."""
        stage = self.done if stage is None else stage
        if not 1 <= stage <= self.done:
            raise RadioLMError(
                f"{self.run_dir / STATE_FILE}: stage {stage} is not finished (stages done: 1..{self.done} of "
                f"{self.tasks}); pass --stage between 1 and {self.done}, or let the run finish"
            )
        return stage

    def stage_dir(self, stage: int) -> Path:
        """``stage-<t>-<task>`` of stage ``stage`` (1-based)."""
        return self.run_dir / f"stage-{stage}-{self.tasks[stage - 1]}"

    def checkpoint(self, stage: int) -> Path:
        """The checkpoint stage ``stage`` (1-based) ended with; a recorded relative path that no longer resolves
        from here is looked up under the run folder (from its ``stage-...`` part on)."""
        recorded = Path(self.checkpoints[self.stage(stage) - 1])
        if recorded.exists():
            return recorded
        parts = recorded.parts
        starts = [i for i, part in enumerate(parts) if part.startswith("stage-")]
        moved = self.run_dir.joinpath(*parts[starts[-1] :]) if starts else None
        if moved is not None and moved.exists():
            return moved
        raise RadioLMError(
            f"{self.run_dir / STATE_FILE}: the checkpoint of stage {stage}, {recorded}, is missing (also under "
            f"{self.run_dir}); analyse the run in the folder that trained it, or pass another --stage"
        )

    def predictions(self, stage: int, task: int, split: str = "test") -> Path:
        """The newest ``predictions-<split>-*.jsonl`` of task ``task`` tested after stage ``stage`` (both 1-based)."""
        stage = self.stage(stage)
        if not 1 <= task <= stage:
            raise RadioLMError(f"{self.run_dir}: task {task} is not tested after stage {stage} (only tasks 1..{stage})")
        folder = self.stage_dir(stage) / f"test-{task}-{self.tasks[task - 1]}"
        files = sorted(folder.glob(f"predictions-{split}-*.jsonl"), key=lambda p: (p.stat().st_mtime, p.name))
        if not files:
            raise RadioLMError(
                f"{folder}: no predictions-{split}-*.jsonl; the sequence driver writes them when it tests every seen "
                "task after a stage (resume the run with --ckpt_path <run folder> to finish the stage)"
            )
        return files[-1]


def read_continual_run(run_dir: Path) -> ContinualRun:
    """The run's ``continual-state.json``, or a clear error when ``run_dir`` is not a continual run folder."""
    path = Path(run_dir) / STATE_FILE
    if not path.is_file():
        raise RadioLMError(
            f"{path}: missing; --run must be the folder of a continual run (`lightning fit -c "
            "experiments/cmrg_llm_phantom.yaml` writes runs/cmrg_llm_phantom/version_N/continual-state.json)"
        )
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        tasks, checkpoints = list(state["tasks"]), [str(c) for c in state["checkpoints"]]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise RadioLMError(
            f"{path}: not a continual state file ({type(e).__name__}: {e}); it needs tasks and checkpoints"
        ) from None
    if not checkpoints:
        raise RadioLMError(f"{path}: no stage is finished yet; train at least the first stage")
    return ContinualRun(Path(run_dir), tasks, checkpoints)


def parse_named_run(value: str) -> tuple[str, Path]:
    """``NAME=DIR`` (or ``DIR``: named by nothing, ``""``) of a ``--run`` argument."""
    name, sep, folder = value.partition("=")
    if not sep:
        return "", Path(value)
    return name, Path(folder)
