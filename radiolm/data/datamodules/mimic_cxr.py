"""MIMIC-CXR as a DataModule: the builder's ``annotation.json`` or R2Gen's distributed one, read as they are."""

from __future__ import annotations

import logging
from typing import Any

from radiolm.data.datamodules.base import Entries
from radiolm.data.datamodules.r2gen import R2GenDataModule
from radiolm.data.formats.annotation import find_subject_leakage
from radiolm.errors import DataError

__all__ = ["MIMICCXRDataModule"]

log = logging.getLogger(__name__)


class MIMICCXRDataModule(R2GenDataModule):
    """MIMIC-CXR studies (or images) from an R2Gen ``annotation.json``, checked for patient leakage and cleaned.

    Reads the file ``radiolm data prepare mimic-cxr`` writes (one entry per study, ``image_path`` relative to the
    MIMIC-CXR-JPG ``files/`` folder) and the one distributed with R2Gen (one entry per image, id = ``dicom_id``),
    unchanged. Before the entry checks of :class:`R2GenDataModule` it

    1. stops when a ``subject_id`` occurs in two splits (patient leakage). This is an error even with
       ``skip_invalid``: dropping entries would silently change the benchmark split; rebuild the annotation from the
       official split file instead (docs/data_validation.md);
    2. cleans every report with ``cleaning`` (:mod:`radiolm.data.cleaning`): ``r2gen_mimic`` is R2Gen's cleaner,
       which R2Gen and R2GenGPT applied to targets and references alike; ``none`` keeps the text. A report that
       cleaning empties is an invalid entry (an error, or dropped with ``skip_invalid``).

    Args:
        annotation_path: The ``annotation.json``.
        cleaning: Name of the report cleaner (``none``, ``r2gen_mimic``, ``r2gengpt_mimic``, ...).
        **kwargs: :class:`R2GenDataModule` arguments (``image_root``, ``max_views``, ``views_path``, ...).
    """

    def __init__(
        self, annotation_path: str = "data/mimic_cxr/annotation.json", cleaning: str = "none", **kwargs: Any
    ) -> None:
        super().__init__(annotation_path=annotation_path, **kwargs)
        from radiolm.data.cleaning import get_cleaner  # lazy: data/ modules load only what a run uses

        self.cleaning = cleaning
        self.cleaner = get_cleaner(cleaning)  # fails at construction on an unknown name

    def prepare_entries(self, annotation: Entries) -> Entries:
        leaks = find_subject_leakage(annotation)
        if leaks:
            shown = ", ".join(f"subject {s} in {splits}" for s, splits in list(leaks.items())[:5])
            raise DataError(
                f"{self.annotation_path}: patient leakage: {len(leaks)} subject_id(s) occur in more than one split "
                f"({shown}). Rebuild it with `radiolm data prepare mimic-cxr` from the official "
                "mimic-cxr-2.0.0-split.csv.gz (skip_invalid does not drop these: it would change the split)."
            )
        if not any("subject_id" in e for entries in annotation.values() for e in entries):
            log.info("radiolm: %s has no subject_id; the patient leakage check is skipped", self.annotation_path)
        if self.cleaning != "none":
            for entries in annotation.values():
                for entry in entries:
                    entry[self.report_key] = self.cleaner(entry[self.report_key])
        return annotation
