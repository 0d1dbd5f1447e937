"""The phantom data sets as DataModules that build themselves on first use: X-ray and CT side by side.

``prepare_data`` writes the data set to ``root`` when it is absent or was made with other settings, so that
``lightning fit -c experiments/demo.yaml`` works on a fresh clone. The files are those of ``radiolm data phantom``
(:mod:`radiolm.data.phantom`), and they are read like the real data sets they stand for: the X-rays by
:class:`~radiolm.data.datamodules.r2gen.R2GenDataModule`, the CT by
:class:`~radiolm.data.datamodules.ctrg_chest.CTRGChestDataModule`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from radiolm.data.datamodules.ctrg_chest import CTRGChestDataModule
from radiolm.data.datamodules.r2gen import R2GenDataModule

__all__ = ["PhantomCTDataModule", "PhantomCXRDataModule"]

log = logging.getLogger(__name__)


class PhantomCXRDataModule(R2GenDataModule):
    """Phantom chest X-rays (:func:`radiolm.data.phantom.generate_cxr`) read through the R2Gen reader.

    The files are the same as ``radiolm data phantom --kind cxr --out ROOT --n N --seed S --views V`` writes.

    Args:
        root: Folder of the generated data set.
        n: Number of studies.
        seed: Generator seed (the data set is a deterministic function of ``n``, ``seed``, ``views``, ``image_size``).
        views: 1 (frontal) or 2 (frontal + lateral).
        image_size: Side of the written PNGs.
        **kwargs: :class:`R2GenDataModule` arguments (batch size, workers, ...).
    """

    def __init__(
        self,
        root: str = "data/phantom-cxr",
        n: int = 1000,
        seed: int = 0,
        views: int = 2,
        image_size: int = 256,
        **kwargs: Any,
    ) -> None:
        super().__init__(annotation_path=str(Path(root) / "annotation.json"), **kwargs)
        self.root = Path(root)
        # The report language is the base class's ``language`` (en | zh): the phantom writes reports in it.
        self.settings: dict[str, Any] = {
            "n": n,
            "seed": seed,
            "views": views,
            "image_size": image_size,
            "language": self.language,
        }

    def prepare_data(self) -> None:
        meta_path = self.root / "phantom.json"
        if meta_path.is_file() and self.annotation_path.is_file():
            made = json.loads(meta_path.read_text())
            made.setdefault("language", "en")  # data sets written before Chinese reports existed
            if all(made.get(k) == v for k, v in self.settings.items()):
                return
            log.warning("radiolm: %s was made with %s; regenerating with %s", self.root, made, self.settings)
        from radiolm.data.phantom.cxr import generate_cxr

        s = self.settings
        generate_cxr(
            self.root, n=s["n"], seed=s["seed"], views=s["views"], image_size=s["image_size"], language=s["language"]
        )
        meta_path.write_text(json.dumps(self.settings))


class PhantomCTDataModule(CTRGChestDataModule):
    """The phantom chest CT (:func:`radiolm.data.phantom.generate_ct`) read through the CTRG reader.

    The files are those of ``radiolm data phantom --kind ct --out ROOT --n N --seed S --size D H W --language L``.

    Args:
        root: folder of the generated data set.
        n: number of studies.
        seed: generator seed (also the default split seed).
        size: volume grid ``[D, H, W]`` written to disk.
        volume_size: model input ``[D, H, W]``; default ``size`` (the preset's intensity mapping, no resize).
        split_seed: seed of the split; default ``seed``.
        **kwargs: :class:`CTRGChestDataModule` arguments.
    """

    def __init__(
        self,
        root: str = "data/phantom-ct",
        n: int = 200,
        seed: int = 0,
        size: list[int] | None = None,
        volume_size: list[int] | None = None,
        split_seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        size = list(size or [32, 64, 64])
        volume_size = list(volume_size or size)
        split_seed = seed if split_seed is None else split_seed
        super().__init__(root=root, volume_size=volume_size, split_seed=split_seed, **kwargs)
        self.n, self.seed, self.size = n, seed, size
        self.settings = {"n": n, "seed": seed, "size": size, "language": self.language}

    def prepare_data(self) -> None:
        meta_path = self.root / "phantom.json"
        if meta_path.is_file() and self.reports_path.is_file():
            made = json.loads(meta_path.read_text())
            if all(made.get(k) == v for k, v in self.settings.items()):
                return super().prepare_data()
            log.warning("radiolm: %s was made with %s; regenerating with %s", self.root, made, self.settings)
        from radiolm.data.phantom.ct import generate_ct

        generate_ct(self.root, n=self.n, seed=self.seed, size=self.size, language=self.language, split=self.split)
        meta_path.write_text(json.dumps(self.settings))
        super().prepare_data()
