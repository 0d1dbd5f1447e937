"""The command line: ``radiolm`` / ``lightning`` / ``python -m radiolm``, from one command table.

:data:`COMMANDS` maps each command name to the ``"module:function"`` that runs it, with a one-line description;
a :class:`Group` nests commands (``radiolm data prepare iu-xray``). ``radiolm --help`` and every group's ``--help``
are written from the table, and a target is imported only when its command runs, so one command's dependencies
(Lightning, MONAI, matplotlib, ...) never slow down or break another. Every target is
``main(argv: list[str] | None = None) -> None`` and gets the arguments after its name, except LightningCLI
(``fit | validate | test | predict``), whose parser owns those subcommands and so gets them too.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

from radiolm.errors import RadioLMError

__all__ = ["COMMANDS", "LIGHTNING", "Command", "Group", "commands", "main", "resolve"]


class Command(NamedTuple):
    """A command: ``target`` is ``"module:function"``, ``help`` its one-line description."""

    target: str
    help: str


class Group(NamedTuple):
    """Commands under one name (``radiolm data ...``); ``help`` is the group's one-line description."""

    help: str
    commands: dict[str, Command | Group]


LIGHTNING = "radiolm.lightning_cli:main"
"""LightningCLI (:class:`radiolm.lightning_cli.RadioLMCLI`): it parses its subcommand itself."""

COMMANDS: dict[str, Command | Group] = {
    "fit": Command(LIGHTNING, "train (-c experiments/<name>.yaml), then test the best checkpoint"),
    "validate": Command(LIGHTNING, "validate a checkpoint (--ckpt_path)"),
    "test": Command(LIGHTNING, "test a checkpoint (--ckpt_path)"),
    "predict": Command(LIGHTNING, "predict with a checkpoint (--ckpt_path)"),
    "data": Group(
        "data sets: the phantom, the official downloads, loader speed, view labels",
        {
            "phantom": Command("radiolm.data.phantom.command:main", "write a phantom data set (X-ray or CT, en or zh)"),
            "prepare": Group(
                "build a data set from its official download",
                {
                    "iu-xray": Command("radiolm.data.builders.iu_xray:main", "IU-Xray (Open-i) in the R2Gen layout"),
                    "mimic-cxr": Command(
                        "radiolm.data.builders.mimic_cxr:main", "MIMIC-CXR (-JPG) in the R2Gen layout"
                    ),
                    "ctrg-chest": Command(
                        "radiolm.data.builders.ctrg_chest:main", "CTRG-Chest-548K in the CTRG layout"
                    ),
                },
            ),
            "bench": Command("radiolm.data.builders.benchmark:main", "DataLoader throughput in studies/s"),
            "views": Command(
                "radiolm.data.builders.views:main", "train the frontal/lateral view classifier, cache its labels"
            ),
        },
    ),
    "analyze": Group(
        "the papers' analyses of a trained run (PNG + JSON)",
        {
            "learning-curves": Command(
                "radiolm.analysis.learning_curves:main", "training loss and a validation metric against steps"
            ),
            "prompt-attention": Command(
                "radiolm.analysis.prompt_attention:main", "attention on the visual prompt per layer (two-stage Fig. 2)"
            ),
            "prompt-similarity": Command(
                "radiolm.analysis.prompt_similarity:main", "similarity of visual prompts by labels (two-stage Fig. B)"
            ),
            "token-confidence": Command(
                "radiolm.analysis.token_confidence:main", "token confidence, true vs false findings (two-stage Fig. E)"
            ),
            "embedding-distance": Command(
                "radiolm.analysis.embedding_distance:main", "visual to word embedding distance (bidirectional Fig. 4)"
            ),
            "per-disease-f1": Command(
                "radiolm.analysis.per_disease_f1:main", "per-disease F1 across configurations (Dia-LLaMA Fig. 2)"
            ),
            "hidden-tsne": Command(
                "radiolm.analysis.hidden_tsne:main",
                "t-SNE of LLM hidden features h^p by disease, runs side by side (CMRG Fig. 2)",
            ),
            "continual-cases": Command(
                "radiolm.analysis.continual_cases:main",
                "one case per domain after the last stage, runs side by side (CMRG Fig. 3)",
            ),
        },
    ),
    "table": Command("radiolm.tables:main", "run a paper's table grid and write it as markdown"),
    "baseline": Command("radiolm.metrics.commands.baseline:main", "score the most common training report"),
    "pretrain": Group(
        "self-supervised starting points for parts the hub would give (offline)",
        {"mae": Command("radiolm.pretrain.mae:main", "MAE pre-training of an experiment's (3D) ViT on its data")},
    ),
    "bench": Group(
        "an experiment's speed at its real shapes: samples/s, reports/s, peak memory, padding share",
        {
            "train": Command(
                "radiolm.benchmarks.train:main", "training samples/s of -c EXP.yaml (--random-weights: no download)"
            ),
            "generate": Command(
                "radiolm.benchmarks.generate:main", "generation reports/s of -c EXP.yaml with its decoding settings"
            ),
            "encoder-probe": Command(
                "radiolm.benchmarks.encoder_probe:main",
                "can the encoder of -c EXP.yaml learn its labels? linear probe, held-out micro F1 per epoch",
            ),
            "dia-llama-step": Command(
                "radiolm.benchmarks.dia_llama_step:main", "bench train on dia_llama.yaml: 7B + 3D ViT, ZeRO-2"
            ),
        },
    ),
    "evaluate": Command("radiolm.metrics.commands.evaluate:main", "score a predictions JSONL"),
    "label": Command(
        "radiolm.metrics.commands.label:main", "CheXpert-14 labels of a report file; the labeler's agreement"
    ),
    "assets": Command("radiolm.assets:main", "prepare the built-in offline models"),
    "checkpoint": Group(
        "a run's checkpoints",
        {
            "export": Command(
                "radiolm.checkpoint.export:main", "trainable weights as safetensors + the run's config (any checkpoint)"
            ),
        },
    ),
}
"""The command table: name -> :class:`Command` or :class:`Group`, in the order ``--help`` lists them."""


def commands(table: dict[str, Command | Group] = COMMANDS, prefix: str = "radiolm") -> dict[str, Command]:
    """Every command of ``table`` by its full name (``"radiolm data prepare iu-xray"``), groups flattened."""
    found: dict[str, Command] = {}
    for name, entry in table.items():
        if isinstance(entry, Group):
            found |= commands(entry.commands, f"{prefix} {name}")
        else:
            found[f"{prefix} {name}"] = entry
    return found


def resolve(target: str) -> Callable[[list[str] | None], None]:
    """The function ``"module:function"`` names, imported now."""
    module_name, function = target.split(":")
    return getattr(importlib.import_module(module_name), function)


DESCRIPTION = (
    "LLM-based radiology report generation. Train and evaluate with LightningCLI:\n"
    "`radiolm fit | validate | test | predict -c experiments/<name>.yaml` (or `lightning fit ...`)."
)


def _help(prog: str, description: str, table: dict[str, Command | Group]) -> str:
    width = max(len(name) for name in table) + 2
    listing = "\n".join(f"  {name:<{width}}{entry.help}" for name, entry in table.items())
    return (
        f"usage: {prog} <command> [options]\n\n{description}\n\ncommands:\n{listing}\n\n"
        f"`{prog} <command> --help` gives a command's options."
    )


def _run(args: list[str], argv: list[str] | None) -> None:
    """Run the command ``args`` names in the table, or print the help of the group it stops at."""
    prog, description, table = "radiolm", DESCRIPTION, COMMANDS
    while args and args[0] not in ("-h", "--help"):
        name, args = args[0], args[1:]
        if name.startswith("-") and table is COMMANDS:  # LightningCLI's own options before the subcommand (-c)
            resolve(LIGHTNING)(argv)
            return
        entry = table.get(name)
        if entry is None:
            raise RadioLMError(f"`{prog} {name}`: unknown command; choose one of {list(table)}")
        if isinstance(entry, Command):
            # LightningCLI parses its subcommand itself; argv None: it reads sys.argv.
            resolve(entry.target)(argv if entry.target == LIGHTNING else args)
            return
        prog, description, table = f"{prog} {name}", f"{prog} {name}: {entry.help}", entry.commands
    print(_help(prog, description, table))


def _is_user_error(error: Exception) -> bool:
    """Ours, or Lightning's misconfiguration (checked only when Lightning was imported): one line, exit 2."""
    if isinstance(error, RadioLMError):
        return True
    lightning_errors = sys.modules.get("lightning.fabric.utilities.exceptions")
    return lightning_errors is not None and isinstance(error, lightning_errors.MisconfigurationException)


def __getattr__(name: str) -> Any:
    if name == "RadioLMCLI":  # ``from radiolm.cli import RadioLMCLI`` keeps working, imported on use
        from radiolm.lightning_cli import RadioLMCLI

        return RadioLMCLI
    raise AttributeError(name)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``radiolm`` and ``lightning`` scripts and of ``python -m radiolm``."""
    # Frozen parts stay in eval mode on purpose (no dropout, fixed BatchNorm statistics).
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    try:
        _run(list(sys.argv[1:] if argv is None else argv), argv)
    except Exception as e:
        if not _is_user_error(e):
            raise
        print(f"radiolm: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
