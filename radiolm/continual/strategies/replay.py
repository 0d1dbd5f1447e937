"""Table 1's Replay and DER (``../shared/papers/cmrg_llm_continual.md`` §3.2; DER: Buzzega et al. 2020, ref. [6]).

Both are SeqFT (one shared set of parameters, all trained) plus a memory of earlier tasks' training studies:

* the buffer holds at most ``buffer_size`` studies, split evenly over the tasks seen so far; at the end of a stage
  its task's share is drawn at random (a seeded draw) from the stage's training loader, and earlier tasks' shares
  shrink to make room (their first studies are kept);
* every training step draws ``round(ratio * B)`` buffered studies for a batch of ``B`` new ones (``ratio`` is
  buffered studies per new study), grouped by their task, each group encoded with its own domain's path (an X-ray
  study keeps the X-ray path while the CT stage trains).

**Replay** ("fine-tuning with a memory buffer and replay sample from old tasks") adds ``L^LM`` of the buffered
studies: the step's loss is the study-weighted mean ``(B L + m L^LM_buf) / (B + m)`` of the mixed batch.

**DER** adds ``alpha * MSE(z, z_buf)`` between the current and the stored outputs of the buffered studies (DER Eq. 4;
no ``L^LM`` on them, which is DER++). The stored outputs are **the LLM's logits over the report tokens** (every
position that predicts a report token or eos, the full vocabulary), taken with the weights a stage ends with (its
studies enter the buffer then: task boundaries are known here, so the end-of-task variant replaces DER's reservoir
sampling during training). They are kept as the last hidden states the frozen LM head turns into them and turned into
logits by that head when replayed, so the MSE is over the exact logits at a fraction of the memory (``D`` numbers per
token instead of the vocabulary size).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from radiolm.batch import ReportBatch
from radiolm.continual.strategies.base import ContinualModel, SeqFT, move_batch
from radiolm.errors import RadioLMError

__all__ = ["DER", "Replay", "ReplayBuffer", "concat_batches", "split_batch"]


def split_batch(batch: ReportBatch) -> list[ReportBatch]:
    """One single-study :class:`ReportBatch` per study, on the CPU."""
    cpu = move_batch(batch, torch.device("cpu"))
    return [cpu.study(i) for i in range(len(cpu))]


def concat_batches(batches: list[ReportBatch]) -> ReportBatch:
    """Studies of one task as one batch; X-ray views zero-padded to the most views among them."""
    images = view_mask = volumes = None
    if batches[0].images is not None:
        views = max(b.images.shape[1] for b in batches if b.images is not None)
        images = torch.cat([F.pad(b.images, (0, 0) * 3 + (0, views - b.images.shape[1])) for b in batches])  # type: ignore[union-attr,arg-type]
        view_mask = torch.cat([F.pad(b.view_mask, (0, views - b.view_mask.shape[1])) for b in batches])  # type: ignore[union-attr,arg-type]
    if batches[0].volumes is not None:
        volumes = torch.cat([b.volumes for b in batches])  # type: ignore[misc]
    return ReportBatch(
        ids=[i for b in batches for i in b.ids],
        reports=[r for b in batches for r in b.reports],
        labels=torch.cat([b.labels for b in batches]),
        images=images,
        view_mask=view_mask,
        views=[v for b in batches for v in b.views],
        volumes=volumes,
        domain=[d for b in batches for d in b.domain],
        language=[lang for b in batches for lang in b.language],
    )


class ReplayBuffer:
    """Studies of earlier tasks (CPU tensors), at most ``size`` in all, split evenly over the tasks.

    Args:
        size: The most studies it holds.
        seed: Seed of the draws (filling and sampling), so a resumed run rebuilds the same buffer.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        if size < 1:
            raise RadioLMError(f"ReplayBuffer: buffer_size must be at least 1, got {size}")
        self.size, self.seed = size, seed
        self.tasks: dict[str, list[ReportBatch]] = {}
        self.outputs: dict[str, list[Tensor]] = {}  # DER: per study, its stored report-token states
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return sum(len(v) for v in self.tasks.values())

    def fill(self, task: str, stage: int, loader: Iterable[ReportBatch]) -> list[ReportBatch]:
        """Add ``task``'s share, drawn from its training loader, and shrink the earlier shares to fit."""
        share = self.size // (len(self.tasks) + (task not in self.tasks))
        if share < 1:
            raise RadioLMError(
                f"Replay: buffer_size {self.size} cannot hold one study of each of {len(self.tasks) + 1} tasks; "
                "set model.init_args.strategy.init_args.buffer_size to at least the number of tasks"
            )
        for name in self.tasks:
            self.tasks[name] = self.tasks[name][:share]
            if name in self.outputs:
                self.outputs[name] = self.outputs[name][:share]
        picked: list[ReportBatch] = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + stage)  # the loader's shuffle: the same draw when a run is resumed
            for batch in loader:
                picked += split_batch(batch)
                if len(picked) >= share:
                    break
        self.tasks[task] = picked[:share]
        return self.tasks[task]

    def sample(self, count: int) -> dict[str, list[int]]:
        """``count`` buffered studies drawn uniformly without replacement: ``{task: [index, ...]}``."""
        keys = [(task, i) for task, studies in self.tasks.items() for i in range(len(studies))]
        if not keys or count < 1:
            return {}
        order = torch.randperm(len(keys), generator=self.generator)[: min(count, len(keys))].tolist()
        out: dict[str, list[int]] = {}
        for k in order:
            task, i = keys[k]
            out.setdefault(task, []).append(i)
        return out


class Replay(SeqFT):
    """SeqFT with a buffer of earlier studies whose ``L^LM`` joins every step.

    Args:
        buffer_size: The most buffered studies, all tasks together (§3.2 gives no size; 200 by default: set it to
            the memory budget).
        ratio: Buffered studies per new study in a step (0.5: a batch of 4 new studies gets 2 buffered ones).
        seed: Seed of the buffer's draws.
    """

    name: ClassVar[str] = "replay"
    keeps_stage_state: ClassVar[bool] = True

    def __init__(self, buffer_size: int = 200, ratio: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        if ratio <= 0:
            raise RadioLMError(
                f"{type(self).__name__}: ratio must be > 0 (buffered studies per new study), got {ratio}"
            )
        self.ratio = ratio
        self.buffer = ReplayBuffer(buffer_size, seed)

    def replay_count(self, batch_size: int) -> int:
        """Buffered studies mixed into a step of ``batch_size`` new ones."""
        return max(1, math.floor(self.ratio * batch_size + 0.5))

    def replayed(self, model: ContinualModel, batch_size: int) -> list[tuple[str, list[int], ReportBatch]]:
        """This step's buffered studies, per task: ``(task, indices, batch on the model's device)``."""
        if not model.training or not len(self.buffer):
            return []
        device = next(iter(model.parameters())).device
        draw = self.buffer.sample(self.replay_count(batch_size))
        return [
            (task, idx, move_batch(concat_batches([self.buffer.tasks[task][i] for i in idx]), device))
            for task, idx in draw.items()
        ]

    def add_losses(self, model: ContinualModel, batch: ReportBatch, losses: dict[str, Tensor], total: Tensor) -> Tensor:
        groups = self.replayed(model, len(batch))
        if not groups:
            return total
        summed, count = total.new_zeros(()), 0
        for task, idx, studies in groups:
            with _domain(model, task):
                summed = summed + len(idx) * model.lm_loss(studies)
            count += len(idx)
        losses["replay_lm"] = summed / count
        return (len(batch) * total + summed) / (len(batch) + count)

    def end_stage(self, model: ContinualModel, stage: int, loader: Iterable[ReportBatch], device: torch.device) -> None:
        self.buffer.fill(model.names[stage], stage, loader)


class DER(Replay):
    """SeqFT plus DER's logit matching on buffered studies (DER Eq. 4).

    Args:
        buffer_size: As :class:`Replay`.
        ratio: As :class:`Replay`.
        alpha: DER's ``alpha`` (DER §3 tunes it per benchmark; 0.3).
        seed: As :class:`Replay`.
    """

    name: ClassVar[str] = "der"

    def __init__(self, buffer_size: int = 200, ratio: float = 0.5, alpha: float = 0.3, seed: int = 0) -> None:
        super().__init__(buffer_size, ratio, seed)
        self.alpha = alpha

    def add_losses(self, model: ContinualModel, batch: ReportBatch, losses: dict[str, Tensor], total: Tensor) -> Tensor:
        groups = self.replayed(model, len(batch))
        if not groups:
            return total
        head = model.language_model.base.get_output_embeddings()
        errors = []
        for task, idx, studies in groups:
            with _domain(model, task):
                states, _, _ = model.report_states(studies)
            stored = torch.cat([self.buffer.outputs[task][i] for i in idx]).to(states)
            with torch.no_grad():
                target = head(stored).float()
            errors.append((head(states).float() - target).pow(2).flatten())
        losses["der"] = torch.cat(errors).mean()
        return total + self.alpha * losses["der"]

    def end_stage(self, model: ContinualModel, stage: int, loader: Iterable[ReportBatch], device: torch.device) -> None:
        """Buffer the stage's studies with their outputs under the weights the stage ended with (eval mode)."""
        name = model.names[stage]
        studies = self.buffer.fill(name, stage, loader)
        was_training = model.training
        model.eval()
        outputs = []
        with torch.no_grad(), _domain(model, name):
            for study in studies:
                _, _, per_study = model.report_states(move_batch(study, device))
                outputs.append(per_study[0].detach().to("cpu"))
        self.buffer.outputs[name] = outputs
        model.train(was_training)


class _domain:
    """``model.active_domain`` set to ``name`` for a block (buffered studies are encoded with their own path)."""

    def __init__(self, model: ContinualModel, name: str) -> None:
        self.model, self.name, self.before = model, name, model.active_domain

    def __enter__(self) -> None:
        self.model.active_domain = self.name

    def __exit__(self, *exc: object) -> None:
        self.model.active_domain = self.before
