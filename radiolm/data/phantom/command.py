"""``radiolm data phantom``: write a phantom data set in the on-disk format of the real one it stands for.

``--kind cxr`` writes chest X-rays in the R2Gen layout (IU-Xray / MIMIC-CXR); ``--kind ct`` writes chest CT volumes
in the CTRG-Chest layout. ``--language zh`` writes Chinese reports (same studies, same labels).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` and write the data set; print its summary as JSON."""
    parser = argparse.ArgumentParser(prog="radiolm data phantom", description="Write a phantom data set.")
    parser.add_argument(
        "--kind", choices=["cxr", "ct"], default="cxr", help="cxr: chest X-rays (R2Gen layout); ct: CTRG layout"
    )
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--n", type=int, default=1000, help="number of studies")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--language", choices=["en", "zh"], default="en", help="report language")
    parser.add_argument("--views", type=int, choices=[1, 2], default=2, help="cxr: 1 (frontal) or 2 views")
    parser.add_argument("--image-size", type=int, default=256, help="cxr: side of the PNGs")
    parser.add_argument(
        "--size", type=int, nargs=3, default=[32, 64, 64], metavar=("D", "H", "W"), help="ct: volume grid"
    )
    parser.add_argument("--split", choices=["dia_llama", "cmrg"], default="dia_llama", help="ct: split file")
    args = parser.parse_args(argv)
    if args.kind == "ct":
        from radiolm.data.phantom.ct import generate_ct

        summary = generate_ct(
            args.out, n=args.n, seed=args.seed, size=tuple(args.size), language=args.language, split=args.split
        )
        meta = {"n": args.n, "seed": args.seed, "size": list(args.size), "language": args.language}
    else:
        from radiolm.data.phantom.cxr import generate_cxr

        summary = generate_cxr(
            args.out, n=args.n, seed=args.seed, views=args.views, image_size=args.image_size, language=args.language
        )
        meta = {"n": args.n, "seed": args.seed, "views": args.views, "image_size": args.image_size}
    (args.out / "phantom.json").write_text(json.dumps(meta))
    print(json.dumps(summary, indent=2, default=str, ensure_ascii=False))
