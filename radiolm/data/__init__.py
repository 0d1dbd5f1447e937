"""Data: files on disk -> :class:`~radiolm.batch.ReportBatch`. Never imports a model (DESIGN.md).

* :mod:`radiolm.data.formats`: reading and writing the on-disk formats (R2Gen ``annotation.json``, labels CSV,
  images, volumes, the CTRG layout and its split files, view labels, entry validation).
* :mod:`radiolm.data.datamodules`: the base :class:`ReportDataModule` and one DataModule per data set.
* :mod:`radiolm.data.builders`: ``radiolm data prepare ...`` for each official download, and the loader benchmark.
* :mod:`radiolm.data.phantom`: the built-in phantom X-rays and CT (``radiolm data phantom``).
* :mod:`radiolm.data.labels` (the CheXpert-14 order), :mod:`radiolm.data.cleaning` (report cleaners) and
  :mod:`radiolm.data.transforms` (image transforms): shared by the subpackages and by the rest of the suite.

The DataModules are re-exported here, so YAML says ``class_path: radiolm.data.IUXrayDataModule``. The re-export is
lazy (PEP 562): importing :mod:`radiolm.data` or one of its light modules does not import Lightning or MONAI, so
``radiolm data ...`` commands start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from radiolm.data.datamodules.base import ReportDataModule
    from radiolm.data.datamodules.continual import ContinualDataModule, ContinualTask
    from radiolm.data.datamodules.ctrg_chest import CTRGChestDataModule
    from radiolm.data.datamodules.iu_xray import IUXrayDataModule
    from radiolm.data.datamodules.mimic_cxr import MIMICCXRDataModule
    from radiolm.data.datamodules.phantom import PhantomCTDataModule, PhantomCXRDataModule
    from radiolm.data.datamodules.r2gen import R2GenDataModule

_EXPORTS = {
    "CTRGChestDataModule": "radiolm.data.datamodules.ctrg_chest",
    "ContinualDataModule": "radiolm.data.datamodules.continual",
    "ContinualTask": "radiolm.data.datamodules.continual",
    "IUXrayDataModule": "radiolm.data.datamodules.iu_xray",
    "MIMICCXRDataModule": "radiolm.data.datamodules.mimic_cxr",
    "PhantomCTDataModule": "radiolm.data.datamodules.phantom",
    "PhantomCXRDataModule": "radiolm.data.datamodules.phantom",
    "R2GenDataModule": "radiolm.data.datamodules.r2gen",
    "ReportDataModule": "radiolm.data.datamodules.base",
}

__all__ = [
    "CTRGChestDataModule",
    "ContinualDataModule",
    "ContinualTask",
    "IUXrayDataModule",
    "MIMICCXRDataModule",
    "PhantomCTDataModule",
    "PhantomCXRDataModule",
    "R2GenDataModule",
    "ReportDataModule",
]


def __getattr__(name: str) -> Any:
    """Import a re-exported class on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
