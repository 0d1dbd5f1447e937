"""The sequence driver: what ``fit`` runs when the data is a :class:`~radiolm.data.ContinualDataModule`.

For each stage ``t`` in order (CMRG-LLM §2.2, §3.1):

1. the method is put in stage ``t`` (:meth:`ContinualMethod.set_stage`: what trains, which domain is active), with
   the weights the previous stage ended with;
2. a fresh Trainer (from the run's trainer config, the task's ``max_epochs``, its checkpoints in
   ``stage-<t>-<name>/checkpoints``) fits the task, with a new optimizer and schedule (the task's ``lr``);
3. the best checkpoint of the stage (else its last weights, saved as ``stage-<t>-<name>/final.ckpt``) is loaded,
   and the method's strategy keeps what it needs of the stage (:meth:`ContinualMethod.end_stage`: a replay buffer,
   EWC's Fisher, Per-task FT's weights) from the stage's training loader;
4. every task ``s <= t`` is tested with its own domain's parameters, into ``stage-<t>-<name>/test-<s>-<name>/``;
5. ``continual-state.json`` and the matrix ``continual-matrix.{json,md,png}`` are written in the run folder.

Resume: ``fit --ckpt_path <run folder>`` continues that run: finished stages are skipped (their weights come from
the recorded checkpoint), and a stage with a ``last.ckpt`` resumes from it, optimizer and loops included. A
strategy's end-of-stage state (:attr:`ContinualMethod.keeps_stage_state`) is rebuilt first: each finished stage's
checkpoint is loaded and :meth:`ContinualMethod.end_stage` runs again on its task (seeded draws: the same state).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import lightning.pytorch as pl

from radiolm.checkpoint.read import read_trainable_weights
from radiolm.continual.matrix import ScoreMatrix
from radiolm.data.datamodules.continual import ContinualDataModule
from radiolm.errors import RadioLMError
from radiolm.methods.base import ReportGenerationModule

__all__ = ["STATE_FILE", "ContinualMethod", "SequenceState", "run_sequence"]

log = logging.getLogger(__name__)

STATE_FILE = "continual-state.json"


class ContinualMethod(Protocol):
    """What the driver needs of a method (:class:`radiolm.methods.CMRGLLM` has it)."""

    names: list[str]
    keeps_stage_state: bool

    def set_stage(self, stage: int, begins: bool = True) -> None: ...

    def use_domain(self, name: str) -> None: ...

    def end_stage(self, stage: int, loader: Any, device: Any = None) -> None: ...


@dataclass
class SequenceState:
    """``continual-state.json``: the stages done and the checkpoint each ended with.

    Attributes:
        tasks: Task names in order.
        checkpoints: Per finished stage, the checkpoint its weights were taken from.
    """

    tasks: list[str]
    checkpoints: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return len(self.checkpoints)

    @classmethod
    def read(cls, run_dir: Path, tasks: list[str]) -> SequenceState:
        path = run_dir / STATE_FILE
        if not path.is_file():
            return cls(tasks)
        state = json.loads(path.read_text())
        if state["tasks"] != tasks:
            raise RadioLMError(
                f"{path}: this run trained the tasks {state['tasks']}, the config lists {tasks}; resume with the "
                "config the run started with, or start a new run (no --ckpt_path)"
            )
        return cls(tasks, list(state["checkpoints"]))

    def write(self, run_dir: Path) -> None:
        (run_dir / STATE_FILE).write_text(json.dumps({"tasks": self.tasks, "checkpoints": self.checkpoints}, indent=2))


def check_method(model: ReportGenerationModule, data: ContinualDataModule) -> ContinualMethod:
    """The model as a :class:`ContinualMethod` whose domains are the data's tasks, or a clear error."""
    names = getattr(model, "names", None)
    if not (callable(getattr(model, "set_stage", None)) and callable(getattr(model, "use_domain", None))):
        raise RadioLMError(
            f"{type(model).__name__} is not a continual method (no set_stage / use_domain); a ContinualDataModule "
            "needs one, e.g. radiolm.methods.CMRGLLM"
        )
    if names != data.names:
        raise RadioLMError(
            f"the model's domains {names} and the data's tasks {data.names} differ; model.init_args.domains and "
            "data.init_args.tasks must list the same names in the same order"
        )
    return model  # type: ignore[return-value]


def run_sequence(
    model: ReportGenerationModule,
    data: ContinualDataModule,
    run_dir: Path,
    make_trainer: Callable[[int, Path], pl.Trainer],
    make_tester: Callable[[Path], pl.Trainer],
) -> ScoreMatrix:
    """Train the stages not done yet in ``run_dir`` and test every seen task after each.

    Args:
        model: A :class:`ContinualMethod` module.
        data: The tasks.
        run_dir: The run folder (state, matrix, one folder per stage).
        make_trainer: ``(max_epochs, stage folder) -> Trainer`` for a stage's fit.
        make_tester: ``test folder -> Trainer`` for one test of one task.

    Returns:
        The score matrix (also written to ``run_dir``).
    """
    method = check_method(model, data)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = SequenceState.read(run_dir, data.names)
    matrix_path = run_dir / "continual-matrix.json"
    matrix = ScoreMatrix(data.names)
    if state.done and matrix_path.is_file():
        matrix = ScoreMatrix.from_json(json.loads(matrix_path.read_text()))
    if state.done and getattr(method, "keeps_stage_state", False):
        for s, path in enumerate(state.checkpoints):  # the strategy's state of each finished stage, again
            method.set_stage(s, begins=False)
            load_weights(model, Path(path))
            _end_stage(method, data, s, None)
    if state.done:
        load_weights(model, Path(state.checkpoints[-1]))
        log.info("radiolm: resuming %s after stage %d of %d", run_dir, state.done, len(data.tasks))
    for t, task in enumerate(data.tasks):
        if t < state.done:
            continue
        stage_dir = run_dir / f"stage-{t + 1}-{task.name}"
        last = stage_dir / "checkpoints" / "last.ckpt"
        resume = last.is_file()
        method.set_stage(t, begins=not resume)
        data.use(t)
        trainer = make_trainer(task.max_epochs, stage_dir)
        log.info("radiolm: stage %d/%d (%s)%s", t + 1, len(data.tasks), task.name, " resumed" if resume else "")
        with stage_lr(model, task.lr):
            trainer.fit(model, datamodule=data, ckpt_path=str(last) if resume else None)
        if trainer.interrupted:
            return matrix
        checkpoint = _best(trainer)
        if checkpoint is None:
            checkpoint = stage_dir / "final.ckpt"
            trainer.save_checkpoint(checkpoint, weights_only=True)
        else:
            load_weights(model, checkpoint)
        _end_stage(method, data, t, trainer.strategy.root_device)
        for s in range(t + 1):
            data.use(s)
            method.use_domain(data.names[s])
            results = make_tester(stage_dir / f"test-{s + 1}-{data.names[s]}").test(
                model, datamodule=data, verbose=False
            )
            scores = {k.removeprefix("test/"): float(v) for k, v in (results[0] if results else {}).items()}
            matrix.set(s, t, scores)
        method.use_domain(data.names[t])
        state.checkpoints.append(str(checkpoint))
        state.write(run_dir)
        paths = matrix.write(run_dir)
        log.info("radiolm: stage %d done; wrote %s", t + 1, ", ".join(str(p) for p in paths))
    return matrix


def _end_stage(method: ContinualMethod, data: ContinualDataModule, stage: int, device: Any) -> None:
    """The method's end of ``stage``, with the stage's training loader (set up when a resumed run needs it)."""
    if not callable(getattr(method, "end_stage", None)):
        return
    task = data.use(stage)
    if not getattr(task, "datasets", None):
        data.prepare_data()
        data.setup("fit")
    method.end_stage(stage, data.train_dataloader(), device)


def load_weights(model: ReportGenerationModule, path: Path) -> None:
    """The weights of a stage's checkpoint (every parameter outside the LLM) into ``model``; the rest stays."""
    weights, own = read_trainable_weights(path).state_dict, model.state_dict()
    unknown = sorted(set(weights) - set(own))
    if unknown:
        raise RadioLMError(f"{path}: weights {unknown[:3]} are not in the model; was it written by this experiment?")
    model.load_state_dict({**own, **weights})


def _best(trainer: pl.Trainer) -> Path | None:
    callback = trainer.checkpoint_callback
    best = getattr(callback, "best_model_path", "") or getattr(callback, "last_model_path", "")
    return Path(best) if best and Path(best).exists() else None


@contextmanager
def stage_lr(model: ReportGenerationModule, lr: float | None) -> Iterator[None]:
    """The stage's optimizer with learning rate ``lr`` (``None``: the configured one)."""
    if lr is None:
        yield
        return
    factory = model.optimizer_factory

    def with_lr(params: Any) -> Any:
        # ``configure_optimizers`` then multiplies each group by its ``schedule.lr_scale``
        optimizer = factory(params)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return optimizer

    model.optimizer_factory = with_lr
    try:
        yield
    finally:
        model.optimizer_factory = factory
