"""``radiolm data phantom``: write a phantom data set in the on-disk format of the real one it stands for."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["phantom_command"]


def phantom_command(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="radiolm data phantom", description="Write a phantom data set.")
    parser.add_argument("--kind", choices=["cxr"], default="cxr", help="cxr: chest X-rays (R2Gen layout)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--n", type=int, default=1000, help="number of studies")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--views", type=int, choices=[1, 2], default=2)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--language", choices=["en"], default="en")
    args = parser.parse_args(argv)
    from radiolm.data.phantom import generate_cxr

    summary = generate_cxr(
        args.out, n=args.n, seed=args.seed, views=args.views, image_size=args.image_size, language=args.language
    )
    (args.out / "phantom.json").write_text(
        json.dumps({"n": args.n, "seed": args.seed, "views": args.views, "image_size": args.image_size})
    )
    print(json.dumps(summary, indent=2, default=str))
