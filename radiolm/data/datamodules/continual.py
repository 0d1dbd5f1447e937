"""ContinualDataModule: a sequence of tasks, each its own DataModule, for continual learning (CMRG-LLM §2.1, §2.2).

One task is active at a time (:meth:`ContinualDataModule.use`); the loaders, ``prepare_data`` and ``setup`` are the
active task's. The sequence driver (:mod:`radiolm.continual`) trains the tasks in order and tests every task seen
so far after each stage. Each task also carries its stage's training length and learning rate: the paper trains
every stage with its own optimizer and schedule, and leaves their values to its (unavailable) supplement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch.utils.data import DataLoader

from radiolm.data.datamodules.base import ReportDataModule
from radiolm.data.transforms import ImageTransformConfig
from radiolm.errors import RadioLMError

__all__ = ["ContinualDataModule", "ContinualTask"]


@dataclass
class ContinualTask:
    """One task of the sequence.

    Attributes:
        name: The task's domain name (the method's domain of the same position must have it).
        data: Its DataModule (``class_path`` / ``init_args``).
        max_epochs: Epochs of its stage.
        lr: Learning rate of its stage (``None``: the optimizer's).
    """

    name: str
    data: ReportDataModule
    max_epochs: int = 1
    lr: float | None = None


class ContinualDataModule(ReportDataModule):
    """The tasks in training order; the loaders are those of the active task.

    Args:
        tasks: The sequence (the paper: XE1 -> XE2 -> XC -> CTC).
        image_transform: Set by the CLI from the model and handed to every task (volumes ignore it). Batch sizes
            and workers are each task's own.
    """

    def __init__(self, tasks: list[ContinualTask], image_transform: ImageTransformConfig | None = None) -> None:
        if not tasks:
            raise RadioLMError("ContinualDataModule: data.init_args.tasks is empty; list the tasks in training order")
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise RadioLMError(f"ContinualDataModule: task names repeat in data.init_args.tasks: {names}")
        self.tasks = list(tasks)
        self.active = 0
        super().__init__(image_transform=image_transform)

    @property
    def image_transform(self) -> ImageTransformConfig:
        return self.tasks[0].data.image_transform

    @image_transform.setter
    def image_transform(self, value: ImageTransformConfig) -> None:
        for task in self.tasks:
            task.data.image_transform = value

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def use(self, index: int) -> ReportDataModule:
        """Make task ``index`` (0-based) the active one and return its DataModule."""
        if not 0 <= index < len(self.tasks):
            raise RadioLMError(f"ContinualDataModule: task {index} is not one of 0..{len(self.tasks) - 1}")
        self.active = index
        return self.current

    @property
    def current(self) -> ReportDataModule:
        """The active task's DataModule."""
        data = self.tasks[self.active].data
        data.trainer = getattr(self, "trainer", None)  # its run-folder files go where this module's would
        return data

    @property
    def source(self) -> Any:
        return self.current.source

    def prepare_data(self) -> None:
        self.current.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        self.current.setup(stage)

    def train_dataloader(self) -> DataLoader:
        return self.current.train_dataloader()

    def val_dataloader(self) -> DataLoader:
        return self.current.val_dataloader()

    def test_dataloader(self) -> DataLoader:
        return self.current.test_dataloader()

    def predict_dataloader(self) -> DataLoader:
        return self.current.predict_dataloader()
