"""Length bucketing: every study once per epoch, batches of similar length, a seeded new order per epoch, and the
per-rank split Lightning sets up under DDP."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from lightning.fabric.utilities.data import _replace_dunder_methods
from lightning.pytorch.trainer.states import RunningStage
from lightning.pytorch.utilities.data import _update_dataloader
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler
from torch.utils.data.distributed import DistributedSampler

from radiolm.data.datamodules.r2gen import R2GenDataModule
from radiolm.data.datamodules.sampler import BucketBatchSampler, rank_batches, report_lengths
from radiolm.data.transforms import ImageTransformConfig

EXPERIMENTS: list[Path] = []  # no experiment YAMLs here

LENGTHS = torch.randint(1, 200, (203,), generator=torch.Generator().manual_seed(0)).tolist()


def spread(batches: list[list[int]]) -> float:
    """Mean over batches of (longest - shortest) length: the padding a batch carries."""
    return sum(max(LENGTHS[i] for i in b) - min(LENGTHS[i] for i in b) for b in batches) / len(batches)


def test_every_index_once_and_similar_lengths() -> None:
    sampler = BucketBatchSampler(SequentialSampler(LENGTHS), 8, lengths=LENGTHS, batches_per_bucket=4, seed=1)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(203))
    assert len(batches) == len(sampler) == 26  # 6 buckets of 32 -> 24 batches, the last 11 -> 8 + 3
    assert sorted(len(b) for b in batches)[:2] == [3, 8]
    shuffled = RandomSampler(LENGTHS, generator=torch.Generator().manual_seed(1))
    random_batches = [list(b) for b in BatchSampler(shuffled, 8, False)]
    assert round(spread(random_batches), 1) == 160.0  # shuffled batching: nearly the whole range in every batch
    assert round(spread(batches), 1) == 23.9  # 4-batch buckets: about a 32-study slice of the sorted lengths
    tight = BucketBatchSampler(SequentialSampler(LENGTHS), 8, lengths=LENGTHS, batches_per_bucket=1, seed=1)
    assert round(spread(list(tight)), 1) == 6.3


def test_seeded_order_changes_per_epoch() -> None:
    def make(seed: int) -> BucketBatchSampler:
        return BucketBatchSampler(SequentialSampler(LENGTHS), 8, lengths=LENGTHS, batches_per_bucket=4, seed=seed)

    sampler = make(0)
    first, second = list(sampler), list(sampler)  # one process: each iteration is the next epoch
    assert first != second and sorted(map(sorted, first)) != sorted(map(sorted, second))
    assert list(make(0)) == first  # same seed, same epoch -> same batches
    again = make(0)
    again.set_epoch(1)
    assert list(again) == second
    assert list(make(5)) != first


def test_rank_split() -> None:
    ranks = [rank_batches(LENGTHS, 8, num_replicas=2, rank=r, epoch=3, batches_per_bucket=4) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 13  # every rank runs the same number of steps
    seen = [i for batches in ranks for b in batches for i in b]
    assert len(seen) == 204 and set(seen) == set(range(203))  # DistributedSampler repeats one index to pad
    assert len({i for b in ranks[0] for i in b} & {i for b in ranks[1] for i in b}) == 1  # only the padding index
    assert round(spread(ranks[0]), 1) == 47.0  # still bucketed on each rank (a rank's buckets span more)


def test_lightning_injects_the_distributed_sampler() -> None:
    """What Lightning does to a training loader under DDP: re-create the batch sampler around a DistributedSampler."""
    with _replace_dunder_methods(BatchSampler):
        sampler = BucketBatchSampler(RandomSampler(LENGTHS), 8, lengths=LENGTHS, batches_per_bucket=4, seed=0)
    loader = DataLoader(list(range(len(LENGTHS))), batch_sampler=sampler)  # items are their own index
    for rank in (0, 1):
        share = DistributedSampler(LENGTHS, num_replicas=2, rank=rank, shuffle=True, seed=0)  # type: ignore[arg-type]
        share.set_epoch(3)  # Lightning calls set_epoch on batch_sampler.sampler every epoch
        updated = _update_dataloader(loader, share, mode=RunningStage.TRAINING)
        assert isinstance(updated.batch_sampler, BucketBatchSampler) and updated.batch_sampler.sampler is share
        assert [list(map(int, b)) for b in updated] == rank_batches(
            LENGTHS, 8, num_replicas=2, rank=rank, epoch=3, batches_per_bucket=4
        )


def test_datamodule_bucketing(phantom_root: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(phantom_root, tmp_path / "set"))
    dm = R2GenDataModule(
        str(root / "annotation.json"), batch_size=4, num_workers=0, bucketing=True, bucket_batches=1,
        image_transform=ImageTransformConfig(16), report_key="impression",
    )  # fmt: skip
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader.batch_sampler, BucketBatchSampler)
    entries = dm.datasets["train"].entries
    lengths = dict(zip([e["id"] for e in entries], report_lengths([e["impression"] for e in entries]), strict=True))
    batches = list(loader)
    assert [len(b.ids) for b in sorted(batches, key=lambda b: len(b.ids))] == [1, 4, 4, 4, 4]
    ordered = sorted(lengths.values())
    for batch in batches:  # with one batch per bucket, each batch is a run of the sorted lengths
        got = sorted(lengths[i] for i in batch.ids)
        assert any(ordered[k : k + len(got)] == got for k in range(len(ordered)))
