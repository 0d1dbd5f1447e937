"""``radiolm data bench``: DataLoader throughput (studies/s) at the real input sizes, on phantom data.

Two workloads, built once under ``--cache`` and reused:

* ``cxr``: two-view chest X-rays through :class:`~radiolm.data.datamodules.phantom.PhantomCXRDataModule` (PNG
  decode, resize to 224 x 224, ImageNet normalisation), the R2GenGPT input;
* ``ct``: 256 x 256 x 64 volumes (int16 NIfTI) through :class:`~radiolm.data.datamodules.phantom.PhantomCTDataModule`
  with the ``dia_llama`` preset (min-max, resize to 256 x 256 x 64), the Dia-LLaMA input.

For each ``--workers`` setting it times one pass over the training loader (worker start-up included) and prints
studies/s for the whole pass and after the first batch (steady state).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "time_loader"]


def time_loader(loader: Any, max_batches: int) -> dict[str, float]:
    """Iterate ``loader`` (at most ``max_batches``); studies/s overall and after the first batch."""
    start = time.perf_counter()
    first = None
    studies = studies_after_first = 0
    for index, batch in enumerate(loader):
        if index == 0:
            first = time.perf_counter()
        else:
            studies_after_first += len(batch)
        studies += len(batch)
        if index + 1 >= max_batches:
            break
    end = time.perf_counter()
    steady = studies_after_first / (end - first) if first is not None and end > first else float("nan")
    return {
        "studies": studies,
        "seconds": round(end - start, 2),
        "studies_per_s": round(studies / (end - start), 2),
        "steady_studies_per_s": round(steady, 2),
    }


def _cxr_module(cache: Path, n: int, image_size: int, workers: int, batch_size: int) -> Any:
    from radiolm.data.datamodules.phantom import PhantomCXRDataModule
    from radiolm.data.transforms import ImageTransformConfig

    return PhantomCXRDataModule(  # the phantom splits 7:1:2; the train split is timed
        root=str(cache / f"cxr-{image_size}px-n{n}"),
        n=n,
        views=2,
        image_size=image_size,
        batch_size=batch_size,
        num_workers=workers,
        image_transform=ImageTransformConfig(size=224),
    )


def _ct_module(cache: Path, n: int, workers: int, batch_size: int) -> Any:
    from radiolm.data.datamodules.phantom import PhantomCTDataModule

    return PhantomCTDataModule(
        root=str(cache / f"ct-64x256x256-n{n}"),
        n=n,
        size=[64, 256, 256],
        preset="dia_llama",
        volume_size=[64, 256, 256],
        batch_size=batch_size,
        num_workers=workers,
    )


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv``, build (or reuse) the phantom data and print the throughput table."""
    parser = argparse.ArgumentParser(prog="radiolm data bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=["cxr", "ct", "both"], default="both")
    parser.add_argument("--cache", type=Path, default=Path("data/bench"), help="where the phantom data is kept")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="num_workers settings to time")
    parser.add_argument("--n-cxr", type=int, default=200, help="X-ray studies (70 %% are timed: the train split)")
    parser.add_argument("--n-ct", type=int, default=40, help="CT studies (80 %% are timed: the train split)")
    parser.add_argument("--cxr-image-size", type=int, default=512, help="side of the stored PNGs")
    parser.add_argument("--batch-size", type=int, nargs=2, default=[8, 2], metavar=("CXR", "CT"))
    parser.add_argument("--max-batches", type=int, default=1000, help="stop each pass after this many batches")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    import torch

    results = []
    kinds = ["cxr", "ct"] if args.kind == "both" else [args.kind]
    for kind in kinds:
        for workers in args.workers:
            if kind == "cxr":
                dm = _cxr_module(args.cache, args.n_cxr, args.cxr_image_size, workers, args.batch_size[0])
                shape = "2 x 3 x 224 x 224"
            else:
                dm = _ct_module(args.cache, args.n_ct, workers, args.batch_size[1])
                shape = "1 x 64 x 256 x 256"
            dm.prepare_data()
            dm.setup("fit")
            row = {"kind": kind, "input": shape, "num_workers": workers, "torch_threads": torch.get_num_threads()}
            row |= time_loader(dm.train_dataloader(), args.max_batches)
            results.append(row)
            print(json.dumps(row), flush=True)
    print("\n| data | input per study | num_workers | studies | seconds | studies/s | after 1st batch |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['kind']} | {r['input']} | {r['num_workers']} | {r['studies']} | {r['seconds']} | "
            f"{r['studies_per_s']} | {r['steady_studies_per_s']} |"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
