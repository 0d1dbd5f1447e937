"""What ``radiolm bench train`` and ``radiolm bench generate`` share: an experiment built by the real CLI, its
batches, and the meters (time, peak memory, padding share), printed as a small table and written as JSON.

:func:`build` parses ``-c EXP.yaml [-c OVERLAY.yaml] [--trainer.x=...]`` with :class:`~radiolm.lightning_cli.
RadioLMCLI` (so the model, DataModule and precision are exactly what ``radiolm fit`` builds), optionally rewritten
for random weights (:mod:`radiolm.benchmarks.random_weights`), with a trainer for timing: no logger, checkpoint,
validation or config file, every batch one optimizer step (``accumulate_grad_batches: 1``). :func:`batches` gives
the experiment's own loader when its data can be set up, else synthetic batches of its shapes
(:mod:`radiolm.benchmarks.synthetic`), and says which in the output.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from radiolm.errors import RadioLMError
from radiolm.lightning_cli import RadioLMCLI
from radiolm.precision import cpu_has_native_bf16

__all__ = ["Bench", "PaddingMeter", "batches", "build", "measured", "parser", "peak_memory", "report"]

DATA_CHOICES = ("auto", "experiment", "synthetic")


def parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """The options both benchmarks take; anything else (``-c``, ``--trainer.*``, ``--model.*``, ``--data.*``) goes
    to the experiment's LightningCLI parser."""
    p = argparse.ArgumentParser(
        prog=prog,
        description=description,
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Other options go to the experiment's parser: -c EXP.yaml [-c OVERLAY.yaml] [--trainer.devices=1] "
        "[--data.init_args.batch_size=8] ...",
    )
    p.add_argument("--random-weights", action="store_true", help="build every part from its config, random init")
    p.add_argument("--steps", type=int, default=6, help="timed batches (after the warm-up)")
    p.add_argument("--warmup", type=int, default=2, help="batches run first and not timed")
    p.add_argument(
        "--data",
        choices=DATA_CHOICES,
        default="auto",
        help="auto: the experiment's DataModule when its data sets up, else synthetic batches of its shapes",
    )
    p.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    return p


@dataclass
class Bench:
    """An experiment built for a benchmark.

    Attributes:
        model: The method (a :class:`~radiolm.methods.base.ReportGenerationModule`).
        datamodule: Its DataModule, not set up.
        trainer: A Lightning trainer with the experiment's accelerator, devices, strategy and precision.
        configs: The ``-c`` files, in order.
        weights: ``"pretrained"`` or one note per randomised part.
    """

    model: Any
    datamodule: Any
    trainer: Any
    configs: list[str]
    weights: list[str] = field(default_factory=list)


class _BenchCLI(RadioLMCLI):
    """RadioLMCLI that builds without running, randomises the parts when asked, and makes a timing trainer."""

    def __init__(self, args: list[str], random_weights: bool, trainer_kwargs: dict[str, Any]) -> None:
        self.random_weights, self.trainer_kwargs = random_weights, trainer_kwargs
        self.weight_notes: list[str] = []
        super().__init__(args=args, run=False)

    def before_instantiate_classes(self) -> None:
        super().before_instantiate_classes()
        if self.random_weights:
            from radiolm.benchmarks.random_weights import randomize

            self.weight_notes = randomize(self.config)

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """A trainer from the experiment's ``trainer`` section with :attr:`trainer_kwargs` on top (no config
        callbacks, no SaveConfigCallback: a benchmark writes nothing but its figures)."""
        config = {**self._get(self.config_init, "trainer", default={}), **self.trainer_kwargs}
        return self.trainer_class(**config)


def build(cli_args: list[str], random_weights: bool, trainer_kwargs: dict[str, Any]) -> Bench:
    """The experiment that ``cli_args`` (``-c EXP.yaml ...``) describes, with a timing trainer.

    Raises:
        RadioLMError: without a ``-c`` config.
    """
    if not any(a in ("-c", "--config") or a.startswith("--config=") for a in cli_args):
        raise RadioLMError("radiolm bench: name the experiment with -c experiments/<name>.yaml")
    timing = {
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "fast_dev_run": False,  # the tests' overlays set it
        "limit_val_batches": 0,
        "num_sanity_val_steps": 0,
        "accumulate_grad_batches": 1,
        "callbacks": [],  # the experiment's checkpoints and sample writers are not part of the timing
        "max_epochs": -1,
        **trainer_kwargs,
    }
    # LightningCLI warns when it gets args while sys.argv holds others: here they are ours on purpose
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    cli = _BenchCLI(cli_args, random_weights, timing)
    configs = [str(c) for c in (cli.config.get("config") or [])]
    return Bench(cli.model, cli.datamodule, cli.trainer, configs, cli.weight_notes or ["pretrained"])


def batches(bench: Bench, train: bool, n_batches: int, choice: str = "auto") -> tuple[Any, int, str]:
    """A loader for the benchmark, its batch size, and where its batches come from (for the output).

    The experiment's data counts as present when its DataModule prepares and sets up without a
    :class:`~radiolm.errors.RadioLMError` or ``OSError`` (a phantom is written then, as ``fit`` would).

    Args:
        bench: The built experiment.
        train: The training loader (``batch_size``) or the test loader (``eval_batch_size``).
        n_batches: Batches needed (synthetic data has exactly these).
        choice: ``auto`` (the experiment's data when it sets up, else synthetic), ``experiment`` or ``synthetic``.
    """
    dm = bench.datamodule
    size = int(dm.batch_size if train else dm.eval_batch_size)
    reason = ""
    if choice != "synthetic":
        try:
            dm.prepare_data()  # the phantoms are written here on first use
            dm.setup("fit" if train else "test")
            loader = dm.train_dataloader() if train else dm.test_dataloader()
            return loader, size, f"experiment data: {type(dm).__name__} ({dm.source})"
        except (RadioLMError, OSError) as e:
            if choice == "experiment":
                raise
            reason = f"; the experiment's data did not set up: {str(e).splitlines()[0][:160]}"
    from radiolm.benchmarks.synthetic import synthetic_loader

    loader, shapes = synthetic_loader(bench.model, dm, n_batches * size, size)
    return loader, size, f"synthetic: {shapes}{reason}"


class PaddingMeter:
    """Counts the LLM's input positions and how many are padding, from the attention mask of every call of its
    decoder that receives embeddings: training forwards, and the prefill of each generation (transformers passes
    no mask when a batch has no padding: all positions count as real). Generation's decoding steps, which feed one
    token id per sequence, are counted apart (:attr:`decode_steps`)."""

    def __init__(self) -> None:
        self.tokens = 0
        self.padding = 0
        self.rows = 0
        self.prefills = 0
        self.decode_steps = 0

    @contextmanager
    def watch(self, language_model: Any) -> Iterator[PaddingMeter]:
        """Count every call of ``language_model``'s decoder while the block runs."""

        def hook(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
            embeds, mask = kwargs.get("inputs_embeds"), kwargs.get("attention_mask")
            if embeds is None:
                self.decode_steps += 1
                return
            self.prefills += 1
            self.rows += embeds.shape[0]
            self.tokens += embeds.shape[0] * embeds.shape[1]
            if mask is not None and mask.ndim == 2:
                self.padding += int((mask == 0).sum())

        handle = language_model.base.get_decoder().register_forward_pre_hook(hook, with_kwargs=True)
        try:
            yield self
        finally:
            handle.remove()

    @property
    def share(self) -> float:
        """Pad positions / all positions of the LLM input."""
        return self.padding / self.tokens if self.tokens else 0.0

    @property
    def tokens_per_row(self) -> float:
        """Mean real (unpadded) LLM input positions per sequence."""
        return (self.tokens - self.padding) / self.rows if self.rows else 0.0


def peak_memory() -> tuple[float, str]:
    """Peak memory in GiB and what it measures: CUDA ``max_memory_allocated`` when a GPU ran, else the process's
    peak resident set size (``resource.getrusage``; it includes building the model)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**30, "torch.cuda.max_memory_allocated"
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 2**20, "peak RSS of the process (getrusage)"


def measured(times: list[float], meter: PaddingMeter) -> dict[str, Any]:
    """The figures ``train`` and ``generate`` share: batch times, peak memory and the LLM input's padding."""
    memory, kind = peak_memory()
    return {
        "steps_timed": len(times),
        "batch_s_mean": sum(times) / len(times),
        "batch_s_min": min(times),
        "peak_memory_gib": memory,
        "peak_memory_kind": kind,
        "padding_share": meter.share,
        "llm_tokens_per_sample": meter.tokens_per_row,
    }


def synchronize() -> None:
    """Wait for queued CUDA work, so wall times cover it."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def machine(trainer: Any) -> dict[str, Any]:
    """The device the figures belong to: the GPU's name, or the CPU's model name and native-bf16 support."""
    info: dict[str, Any] = {
        "accelerator": type(trainer.accelerator).__name__.replace("Accelerator", "").lower(),
        "devices": trainer.num_devices,
        "strategy": type(trainer.strategy).__name__,
        "precision": str(trainer.precision),
    }
    if info["accelerator"] == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    info["cpu"] = _cpu_name()
    info["cpu_native_bf16"] = cpu_has_native_bf16()
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def params(model: Any) -> dict[str, int]:
    """Trainable and total parameter counts, and the language model's trainable ones (LoRA)."""
    return {
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total_params": sum(p.numel() for p in model.parameters()),
        "llm_trainable_params": sum(p.numel() for p in model.language_model.parameters() if p.requires_grad),
    }


_HEADLINE = {
    "train": ("samples_per_s", "samples/s"),
    "generate": ("reports_per_s", "reports/s"),
}


def report(result: dict[str, Any], out: Path | None) -> None:
    """Print ``result`` as a table (rank 0 only) and write it to ``out`` as JSON."""
    key, unit = _HEADLINE[result["mode"]]
    rows = [
        ("experiment", " + ".join(result["configs"])),
        ("weights", "; ".join(result["weights"])),
        ("data", result["data"]),
        ("device", _device_line(result["machine"])),
        ("batch size", str(result["batch_size"])),
        ("timed", f"{result['steps_timed']} batches after {result['warmup']} warm-up"),
        (unit, f"{result[key]:.3f}"),
        ("s/batch", f"{result['batch_s_mean']:.4f} mean, {result['batch_s_min']:.4f} min"),
        ("peak memory", f"{result['peak_memory_gib']:.2f} GiB ({result['peak_memory_kind']})"),
        ("padding share", f"{result['padding_share']:.3f} of {result['llm_tokens_per_sample']:.1f} LLM tokens/seq"),
    ]
    rows += [(k.replace("_", " "), str(v)) for k, v in result.get("extra", {}).items()]
    width = max(len(k) for k, _ in rows)
    print(f"radiolm bench {result['mode']}")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    sys.stdout.flush()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")


def _device_line(m: dict[str, Any]) -> str:
    where = m.get("gpu") or f"{m['cpu']} (native bf16: {'yes' if m['cpu_native_bf16'] else 'no'})"
    return f"{m['accelerator']} x{m['devices']}: {where}; {m['precision']}; {m['strategy']}"
