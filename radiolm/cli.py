"""The command line: ``lightning`` / ``radiolm`` / ``python -m radiolm``.

``fit | validate | test | predict`` go to :class:`radiolm.lightning_cli.RadioLMCLI` (LightningCLI in subclass
mode). ``data | baseline | evaluate | label | analyze | table | assets`` are the suite's own commands
(:mod:`radiolm.commands`); they do not import Lightning, so they start in a fraction of the time.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

from radiolm.errors import RadioLMError

__all__ = ["main"]


def __getattr__(name: str) -> Any:
    if name == "RadioLMCLI":  # ``from radiolm.cli import RadioLMCLI`` keeps working, imported on use
        from radiolm.lightning_cli import RadioLMCLI

        return RadioLMCLI
    raise AttributeError(name)


def _is_user_error(error: Exception) -> bool:
    """Ours, or Lightning's misconfiguration (checked only when Lightning was imported): one line, exit 2."""
    if isinstance(error, RadioLMError):
        return True
    lightning_errors = sys.modules.get("lightning.fabric.utilities.exceptions")
    return lightning_errors is not None and isinstance(error, lightning_errors.MisconfigurationException)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``radiolm`` and ``lightning`` scripts."""
    from radiolm.commands import COMMANDS

    # Frozen parts stay in eval mode on purpose (no dropout, fixed BatchNorm statistics).
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] in COMMANDS:
            COMMANDS[args[0]](args[1:])
        else:
            from radiolm.lightning_cli import RadioLMCLI  # Lightning only for the Lightning subcommands

            RadioLMCLI(args=argv)  # None: LightningCLI reads sys.argv itself
    except Exception as e:
        if not _is_user_error(e):
            raise
        print(f"radiolm: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
