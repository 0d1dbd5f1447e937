"""``radiolm bench generate -c EXP.yaml [--random-weights]``: report generation speed of an experiment.

    radiolm bench generate -c experiments/demo.yaml --steps 4 --warmup 1
    radiolm bench generate -c experiments/r2gengpt_shallow_mimic_cxr.yaml --random-weights --trainer.devices=1

The experiment is built by the real CLI (:mod:`radiolm.benchmarks.experiment`) and its ``generate`` (encode, prompt,
beam search with the experiment's ``decoding``) runs on ``--warmup`` + ``--steps`` test batches of
``eval_batch_size`` studies, on the trainer's device under its precision (autocast for ``*-mixed``). Printed (and
written with ``--out``): reports/s over the timed batches, new tokens per report, the peak memory, the share of
padding in the LLM input (the left-padded prompts), and where the batches came from. With random weights a
report rarely ends before ``max_new_tokens``: the figure is that of the longest reports. Each batch
runs as many decoding steps as its longest report has tokens; the output gives their mean.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device

from radiolm.benchmarks.experiment import PaddingMeter, batches, build, machine, measured, params, parser, report
from radiolm.benchmarks.experiment import synchronize as _sync

__all__ = ["benchmark", "main"]


def _repeat(loader: Iterable[Any], n: int) -> Iterator[Any]:
    """``n`` batches, going over ``loader`` again when it ends first."""
    return itertools.islice(itertools.chain.from_iterable(itertools.repeat(loader)), n)


def benchmark(args: argparse.Namespace, cli_args: list[str]) -> dict[str, Any]:
    """Run the generation benchmark (one device) and return the figures."""
    bench = build(cli_args, args.random_weights, {})
    loader, batch_size, data = batches(bench, False, args.warmup + args.steps, args.data)
    trainer, model = bench.trainer, bench.model
    device = trainer.strategy.root_device
    model = trainer.precision_plugin.convert_module(model).to(device).eval()
    times: list[float] = []
    sizes: list[int] = []
    meter = PaddingMeter()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with meter.watch(model.language_model), torch.no_grad(), trainer.precision_plugin.forward_context():
        for i, batch in enumerate(_repeat(loader, args.warmup + args.steps)):
            batch = move_data_to_device(batch, device)
            _sync()
            start = time.perf_counter()
            texts = model.generate(batch)
            _sync()
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
                sizes.append(len(texts))
    decoding = model.decoding
    steps = 1 + meter.decode_steps / max(1, meter.prefills)  # the prefill gives the first new token
    return {
        "mode": "generate",
        "configs": bench.configs,
        "weights": bench.weights,
        "data": data,
        "machine": machine(trainer),
        "batch_size": batch_size,
        "warmup": args.warmup,
        "reports_per_s": sum(sizes) / sum(times),
        **measured(times, meter),
        "decoding_steps_per_batch": steps,
        "extra": {
            "decoding": f"beams {decoding.num_beams}, new tokens {decoding.min_new_tokens}-{decoding.max_new_tokens}",
            "decoding steps/batch": f"{steps:.1f} (the longest report of a batch sets them)",
        },
        **params(model),
    }


def main(argv: list[str] | None = None) -> None:
    """``radiolm bench generate``: print the figures (and write them with ``--out``)."""
    p = parser("radiolm bench generate", __doc__)
    args, cli_args = p.parse_known_args(argv)
    if args.steps < 1 or args.warmup < 0:
        p.error("--steps must be at least 1 and --warmup at least 0")
    report(benchmark(args, cli_args), args.out)
