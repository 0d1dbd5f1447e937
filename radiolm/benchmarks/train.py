"""``radiolm bench train -c EXP.yaml [--random-weights]``: training throughput of an experiment at its real shapes.

    radiolm bench train -c experiments/demo.yaml --steps 6 --warmup 2
    radiolm bench train -c experiments/r2gengpt_shallow_mimic_cxr.yaml --random-weights --trainer.devices=1
    radiolm bench train -c experiments/dia_llama.yaml --random-weights --trainer.devices=1  # ZeRO-2, as configured

The experiment is built by the real CLI (:mod:`radiolm.benchmarks.experiment`), then ``trainer.fit`` runs
``--warmup`` + ``--steps`` batches, each one forward, backward and optimizer step (``accumulate_grad_batches: 1``),
with the experiment's accelerator, strategy and precision. Printed (and written with ``--out``): samples/s over the
timed batches (each batch timed from its start to its end, CUDA-synchronised; data loading between batches is not
counted), the peak memory, the share of padding in the LLM input, and where the batches came from.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import lightning.pytorch as pl
import torch

from radiolm.benchmarks.experiment import PaddingMeter, batches, build, machine, measured, params, parser, report
from radiolm.benchmarks.experiment import synchronize as _sync
from radiolm.errors import RadioLMError

__all__ = ["StepTimer", "benchmark", "main"]


class StepTimer(pl.Callback):
    """Wall time and size of each training batch (CUDA-synchronised), from batch start to batch end."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.sizes: list[int] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, batch_idx: int) -> None:
        _sync()
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        _sync()
        self.times.append(time.perf_counter() - self._start)
        self.sizes.append(len(batch))


def benchmark(args: argparse.Namespace, cli_args: list[str]) -> dict[str, Any] | None:
    """Run the training benchmark; the figures on global rank 0, ``None`` on the other ranks."""
    timer = StepTimer()
    total = args.warmup + args.steps
    bench = build(cli_args, args.random_weights, {"max_steps": total, "callbacks": [timer]})
    loader, batch_size, data = batches(bench, True, total, args.data)
    meter = PaddingMeter()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with meter.watch(bench.model.language_model):
        bench.trainer.fit(bench.model, train_dataloaders=loader)
    times, sizes = timer.times[args.warmup :], timer.sizes[args.warmup :]
    if not times:
        raise RadioLMError(f"radiolm bench train: only {len(timer.times)} batches ran; lower --warmup ({args.warmup})")
    if bench.trainer.global_rank != 0:
        return None
    return {
        "mode": "train",
        "configs": bench.configs,
        "weights": bench.weights,
        "data": data,
        "machine": machine(bench.trainer),
        "batch_size": batch_size,
        "warmup": args.warmup,
        "samples_per_s": sum(sizes) * bench.trainer.world_size / sum(times),
        **measured(times, meter),
        **params(bench.model),
    }


def main(argv: list[str] | None = None) -> None:
    """``radiolm bench train``: print the figures (and write them with ``--out``)."""
    p = parser("radiolm bench train", __doc__)
    args, cli_args = p.parse_known_args(argv)
    if args.steps < 1 or args.warmup < 0:
        p.error("--steps must be at least 1 and --warmup at least 0")
    result = benchmark(args, cli_args)
    if result is not None:
        report(result, args.out)
