"""``IUXrayDataModule``: IU-Xray in the R2Gen layout, with report cleaning by name and 1 or 2 views per study.

Where cleaning happens: in :meth:`IUXrayDataModule.setup`, on every split's entries, before any batch is built. So
``ReportBatch.reports`` is cleaned text for training *and* for validation / test, and the metrics compare the
generated text with the cleaned reference, as R2GenGPT does (its ``FieldParser.parse`` cleans the report that is
both target and reference) and R2Gen does (its reference is the decoded cleaned token ids). With
``cleaning: none`` the raw report is target and reference.
"""

from __future__ import annotations

import logging
from typing import Any

from radiolm.data.cleaning import get_cleaner
from radiolm.data.datamodules.r2gen import R2GenDataModule
from radiolm.data.formats.annotation import SPLITS
from radiolm.errors import RadioLMError

__all__ = ["IUXrayDataModule"]

log = logging.getLogger(__name__)


class IUXrayDataModule(R2GenDataModule):
    """IU-Xray studies from ``radiolm data prepare iu-xray`` (or R2Gen's own ``annotation.json``).

    Args:
        annotation_path: The ``annotation.json``; images under ``images/`` next to it unless ``image_root`` is set.
        cleaning: Report cleaner of :mod:`radiolm.data.cleaning` applied to every split's ``report_key`` text:
            ``r2gen_iu`` (R2Gen and R2GenGPT on IU-Xray, the default), ``r2gen_corrected``, ``none``, ...
        max_views: 2 feeds both views (R2GenGPT averages their encodings, paper §3.1); 1 feeds the first image of
            the study (in R2Gen's XML order, usually the frontal view), as the single-view methods do.
        **kwargs: The other :class:`~radiolm.data.datamodules.r2gen.R2GenDataModule` arguments (``batch_size``,
            ``report_key``, ``image_root``, ``labels_path``, ``views_path``, ...).

    Raises:
        RadioLMError: for an unknown ``cleaning`` or a ``max_views`` other than 1 or 2.
    """

    def __init__(
        self,
        annotation_path: str = "data/iu_xray/annotation.json",
        cleaning: str = "r2gen_iu",
        max_views: int = 2,
        **kwargs: Any,
    ) -> None:
        if max_views not in (1, 2):
            raise RadioLMError(f"max_views {max_views}: an IU-Xray study has 2 views; use 1 or 2")
        self.cleaning = cleaning
        self._clean = get_cleaner(cleaning)
        super().__init__(annotation_path=annotation_path, max_views=max_views, **kwargs)

    def setup(self, stage: str | None = None) -> None:
        """Load the splits (base class), then clean each entry's report once."""
        cleaned = bool(self.datasets)
        super().setup(stage)
        if cleaned:
            return
        for split in SPLITS:
            for entry in self.datasets[split].entries:
                entry[self.report_key] = self._clean(entry[self.report_key])
        log.info("radiolm: IU-Xray reports cleaned with %r", self.cleaning)
