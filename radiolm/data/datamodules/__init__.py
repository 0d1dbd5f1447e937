"""DataModules: a base that owns batching, workers, labels, validation and loaders, and one per data set.

* :class:`ReportDataModule` (:mod:`~radiolm.data.datamodules.base`): the base, with no on-disk format or modality;
  the CLI's subclass mode is over it.
* :class:`R2GenDataModule` (:mod:`~radiolm.data.datamodules.r2gen`): chest X-rays in the R2Gen layout;
  :class:`IUXrayDataModule` and :class:`MIMICCXRDataModule` add report cleaning and their data set's checks.
* :class:`CTRGChestDataModule` (:mod:`~radiolm.data.datamodules.ctrg_chest`): chest CT in the CTRG layout.
* :class:`ContinualDataModule` (:mod:`~radiolm.data.datamodules.continual`): a sequence of tasks, one active at a time.
* :class:`PhantomCXRDataModule` and :class:`PhantomCTDataModule` (:mod:`~radiolm.data.datamodules.phantom`): the
  phantoms, built on first use.
* :mod:`~radiolm.data.datamodules.sampler` (length bucketing) and :mod:`~radiolm.data.datamodules.volume_transforms`
  (CT presets) serve the loaders.

Re-exported lazily (PEP 562): importing the package imports no Lightning.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from radiolm.data.datamodules.base import ReportDataModule, ReportDataset
    from radiolm.data.datamodules.continual import ContinualDataModule, ContinualTask
    from radiolm.data.datamodules.ctrg_chest import CTRGChestDataModule, VolumeStudyDataset
    from radiolm.data.datamodules.iu_xray import IUXrayDataModule
    from radiolm.data.datamodules.mimic_cxr import MIMICCXRDataModule
    from radiolm.data.datamodules.phantom import PhantomCTDataModule, PhantomCXRDataModule
    from radiolm.data.datamodules.r2gen import R2GenDataModule, StudyDataset

_EXPORTS = {
    "CTRGChestDataModule": "ctrg_chest",
    "ContinualDataModule": "continual",
    "ContinualTask": "continual",
    "IUXrayDataModule": "iu_xray",
    "MIMICCXRDataModule": "mimic_cxr",
    "PhantomCTDataModule": "phantom",
    "PhantomCXRDataModule": "phantom",
    "R2GenDataModule": "r2gen",
    "ReportDataModule": "base",
    "ReportDataset": "base",
    "StudyDataset": "r2gen",
    "VolumeStudyDataset": "ctrg_chest",
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
    "ReportDataset",
    "StudyDataset",
    "VolumeStudyDataset",
]


def __getattr__(name: str) -> Any:
    """Import a re-exported name on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
