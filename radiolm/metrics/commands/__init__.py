"""The metric commands: ``radiolm evaluate``, ``radiolm label`` and ``radiolm baseline``, one module each with ``main``.

They are targets of the command table (:data:`radiolm.cli.COMMANDS`) and import nothing heavy at module level.
"""

from __future__ import annotations

import argparse

__all__ = ["add_labeler_options"]


def add_labeler_options(parser: argparse.ArgumentParser) -> None:
    """``--labeler rules|chexbert`` and the CheXbert files, shared by ``evaluate`` and ``label``."""
    parser.add_argument("--labeler", choices=["rules", "chexbert"], default="rules", help="CheXpert-14 labeler")
    parser.add_argument("--chexbert-checkpoint", help="--labeler chexbert: the CheXbert weights (chexbert.pth)")
    parser.add_argument("--chexbert-tokenizer", help="--labeler chexbert: a BERT tokenizer folder")
