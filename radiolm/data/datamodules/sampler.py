"""Length bucketing: batches of reports of similar length, so that padding to the longest costs little.

Training pads each batch to its longest sequence (DESIGN.md), so a batch that mixes a 10-word and a 150-word report
spends most of its compute on padding. :class:`BucketBatchSampler` sorts the studies by report length (in words),
cuts the sorted order into buckets of ``batches_per_bucket`` batches, shuffles the studies inside each bucket, cuts
each bucket into batches and shuffles the order of all batches. Every epoch draws a new order from ``seed`` and the
epoch number; every study appears exactly once per epoch and the last batch of a bucket may be short (no
``drop_last``).

Distributed training: the class follows the signature of :class:`torch.utils.data.BatchSampler` (``sampler,
batch_size, drop_last``), so Lightning, which replaces the sampler of every training loader under DDP, re-creates it
around a :class:`~torch.utils.data.distributed.DistributedSampler`: each rank then buckets its own share of the
studies (the same number on every rank, as DistributedSampler pads), and every rank runs the same number of steps.
:func:`rank_batches` is that split, usable without Lightning.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import BatchSampler, Sampler
from torch.utils.data.distributed import DistributedSampler

__all__ = ["BucketBatchSampler", "rank_batches", "report_lengths"]


def report_lengths(reports: Sequence[str]) -> list[int]:
    """Length of each report in whitespace-separated words (the unit does not need the model's tokenizer)."""
    return [len(report.split()) for report in reports]


class BucketBatchSampler(BatchSampler):
    """Batches of indices whose ``lengths`` are close; a new shuffle every epoch.

    Args:
        sampler: Yields the dataset indices this process may use: a ``SequentialSampler`` / ``RandomSampler`` over
            the whole dataset in one process, a ``DistributedSampler`` (this rank's share) under DDP. Only the set
            of indices matters; their order is redrawn here.
        batch_size: Studies per batch.
        drop_last: Must be false: every study is seen every epoch.
        lengths: Length of every dataset item (index -> words), e.g. :func:`report_lengths`.
        batches_per_bucket: Batches per bucket. Larger buckets mix more (more randomness across epochs), smaller
            ones pad less; 1 gives the tightest batches.
        seed: Seed of the shuffles; epoch ``e`` uses ``seed + e``.

    Yields:
        Lists of ``batch_size`` (the last of a bucket possibly fewer) dataset indices.
    """

    def __init__(
        self,
        sampler: Sampler[int],
        batch_size: int,
        drop_last: bool = False,
        *,
        lengths: Sequence[int],
        batches_per_bucket: int = 10,
        seed: int = 0,
    ) -> None:
        if batch_size < 1 or batches_per_bucket < 1:
            raise ValueError(f"batch_size ({batch_size}) and batches_per_bucket ({batches_per_bucket}) must be >= 1")
        if drop_last:
            raise ValueError("BucketBatchSampler keeps every study (drop_last=False)")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last
        self.lengths = list(lengths)
        self.batches_per_bucket, self.seed = batches_per_bucket, seed
        self._epoch: int | None = None
        self._iterations = 0

    def set_epoch(self, epoch: int) -> None:
        """Fix the epoch of the next shuffle (and pass it to a distributed sampler)."""
        self._epoch = epoch
        if isinstance(self.sampler, DistributedSampler):
            self.sampler.set_epoch(epoch)

    def current_epoch(self) -> int:
        """The epoch of the next shuffle: the last :meth:`set_epoch`, else the distributed sampler's (Lightning
        calls ``set_epoch`` on it), else the number of epochs iterated so far."""
        if self._epoch is not None:
            return self._epoch
        if isinstance(self.sampler, DistributedSampler):
            return self.sampler.epoch
        return self._iterations

    def batches(self, epoch: int) -> list[list[int]]:
        """The batches of ``epoch``, in the order they are yielded."""
        indices = sorted(self.sampler)  # the set of indices (with DDP's padding repeats); the order is redrawn
        generator = torch.Generator().manual_seed(self.seed + epoch)
        # a random tie-break so that equal lengths do not always end up in the same bucket
        tie = torch.rand(len(indices), generator=generator).tolist()
        order = sorted(range(len(indices)), key=lambda i: (self.lengths[indices[i]], tie[i]))
        bucket = self.batch_size * self.batches_per_bucket
        batches: list[list[int]] = []
        for start in range(0, len(order), bucket):
            members = [indices[i] for i in order[start : start + bucket]]
            shuffled = [members[i] for i in torch.randperm(len(members), generator=generator).tolist()]
            batches += [shuffled[j : j + self.batch_size] for j in range(0, len(shuffled), self.batch_size)]
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

    def __iter__(self) -> Iterator[list[int]]:
        epoch = self.current_epoch()
        self._iterations += 1
        yield from self.batches(epoch)

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        bucket = self.batch_size * self.batches_per_bucket
        full, rest = divmod(n, bucket)
        return full * self.batches_per_bucket + math.ceil(rest / self.batch_size)


def rank_batches(
    lengths: Sequence[int],
    batch_size: int,
    *,
    num_replicas: int,
    rank: int,
    epoch: int = 0,
    seed: int = 0,
    batches_per_bucket: int = 10,
) -> list[list[int]]:
    """The batches rank ``rank`` of ``num_replicas`` runs in ``epoch``: what Lightning's DDP set-up yields.

    The dataset is split by a shuffled :class:`DistributedSampler` (seed ``seed``; padded so that every rank gets
    ``ceil(N / num_replicas)`` indices), and each rank buckets its share with :class:`BucketBatchSampler`.
    """
    share: DistributedSampler[int] = DistributedSampler(
        range(len(lengths)),  # type: ignore[arg-type]  # only its length is used
        num_replicas=num_replicas,
        rank=rank,
        shuffle=True,
        seed=seed,
    )
    sampler = BucketBatchSampler(share, batch_size, lengths=lengths, batches_per_bucket=batches_per_bucket, seed=seed)
    sampler.set_epoch(epoch)
    return list(sampler)
