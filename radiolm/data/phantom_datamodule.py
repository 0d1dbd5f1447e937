"""The phantom chest X-ray data set as a DataModule that builds itself on first use."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from radiolm.data.datamodule import ReportDataModule

__all__ = ["PhantomCXRDataModule"]

log = logging.getLogger(__name__)


class PhantomCXRDataModule(ReportDataModule):
    """Phantom chest X-rays (:mod:`radiolm.data.phantom`) read through the R2Gen reader.

    ``prepare_data`` writes the data set to ``root`` when it is absent or was made with other settings, so that
    ``lightning fit -c experiments/demo.yaml`` works on a fresh clone; the files are the same as
    ``radiolm data phantom --kind cxr --out ROOT --n N --seed S --views V`` writes.

    Args:
        root: Folder of the generated data set.
        n: Number of studies.
        seed: Generator seed (the data set is a deterministic function of ``n``, ``seed``, ``views``, ``image_size``).
        views: 1 (frontal) or 2 (frontal + lateral).
        image_size: Side of the written PNGs.
        **kwargs: :class:`ReportDataModule` arguments (batch size, workers, ...).
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
        from radiolm.data.phantom import generate_cxr

        s = self.settings
        generate_cxr(
            self.root, n=s["n"], seed=s["seed"], views=s["views"], image_size=s["image_size"], language=s["language"]
        )
        meta_path.write_text(json.dumps(self.settings))
