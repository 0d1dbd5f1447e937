"""Sample studies of an evaluation: the pictures, the generated and the reference report, and their CE labels.

:func:`sample_studies` turns the scored records of a validation or test run (``{"id", "prediction", "reference",
"language"}``, as :class:`~radiolm.methods.base.ReportGenerationModule` keeps them in ``last_records``) into
:class:`SampleStudy` objects that :mod:`radiolm.samples.page` (HTML) and :mod:`radiolm.samples.table` (W&B) show.
The pictures come from the split's dataset by study id (:meth:`~radiolm.data.datamodules.base.ReportDataset.pictures`:
X-ray views or CT slices as stored, before normalisation); the labels from the suite's rule labeler
(:mod:`radiolm.metrics.chexpert_labeler`), which reads English only: a study in another language gets no labels
rather than wrong ones (the labeler would call any Chinese report "No Finding").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from radiolm.data.labels import CHEXPERT_14, POSITIVE
from radiolm.errors import DataError
from radiolm.metrics.chexpert_labeler import Label, label_reports

__all__ = ["LABELED_LANGUAGES", "LABEL_WORDS", "SampleStudy", "label_summary", "sample_studies"]

log = logging.getLogger(__name__)

LABEL_WORDS: dict[Label, str] = {1: "positive", 0: "negative", -1: "uncertain", None: "not mentioned"}
"""How a label value reads on a sample page."""

LABELED_LANGUAGES = ("en",)
"""Report languages the rule labeler reads; other studies are shown with "no labels"."""

Picture = tuple[str, Image.Image]
"""``(caption, image)``: one X-ray view or CT slice."""


@dataclass
class SampleStudy:
    """One study as a person looks at it.

    Attributes:
        id: Study id.
        prediction: The generated report.
        reference: The reference report.
        language: Report language (``en``, ``zh``).
        pictures: ``(caption, 8-bit image)`` per view or slice, at most ``max_side`` pixels on a side.
        prediction_labels: CheXpert-14 labels of the generated report (1 / 0 / -1 / ``None``), or ``None`` when the
            labeler cannot read the language.
        reference_labels: The same for the reference.
    """

    id: str
    prediction: str
    reference: str
    language: str = "en"
    pictures: list[Picture] = field(default_factory=list)
    prediction_labels: list[Label] | None = None
    reference_labels: list[Label] | None = None

    @property
    def labeled(self) -> bool:
        """Whether both reports have labels (the language is one the labeler reads)."""
        return self.prediction_labels is not None and self.reference_labels is not None

    def label_rows(self) -> list[tuple[str, Label, Label, bool]]:
        """``(observation, generated, reference, disagree)`` for each observation either report mentions."""
        if self.prediction_labels is None or self.reference_labels is None:
            return []
        rows = []
        for name, p, r in zip(CHEXPERT_14, self.prediction_labels, self.reference_labels, strict=True):
            if p is not None or r is not None:
                rows.append((name, p, r, (p == POSITIVE) != (r == POSITIVE)))
        return rows

    def disagreements(self) -> list[str]:
        """Observations on which the two reports disagree as clinical efficacy counts them: positive in one and
        not in the other (uncertain counts as negative, the suite's default ``--uncertain negative``)."""
        return [name for name, _, _, disagree in self.label_rows() if disagree]


def _label_text(labels: Sequence[Label] | None) -> str:
    """``"Cardiomegaly: positive; Pneumothorax: negative"`` (mentioned observations only)."""
    if labels is None:
        return "no labels"
    return "; ".join(f"{n}: {LABEL_WORDS[v]}" for n, v in zip(CHEXPERT_14, labels, strict=True) if v is not None)


def label_summary(study: SampleStudy) -> tuple[str, str, str]:
    """(generated labels, reference labels, disagreements) of a study as one line each, for tables."""
    if not study.labeled:
        why = f"no labels ({study.language}: the rule labeler reads English only)"
        return why, why, why
    disagree = ", ".join(study.disagreements()) or "none"
    return _label_text(study.prediction_labels), _label_text(study.reference_labels), disagree


def _shrink(image: Image.Image, max_side: int) -> Image.Image:
    """A copy at most ``max_side`` pixels on a side, 8-bit gray or RGB (what a PNG on a page needs)."""
    image = image.convert("L" if image.mode in ("L", "1", "P", "I", "I;16", "F") else "RGB")
    image.thumbnail((max_side, max_side))
    return image


def sample_studies(
    records: Sequence[dict[str, Any]],
    dataset: Any = None,
    n: int = 3,
    max_side: int = 256,
    labeler: Callable[[Sequence[str]], list[list[Label]]] = label_reports,
) -> list[SampleStudy]:
    """The first ``n`` studies of ``records`` in sorted id order (so epochs show the same studies), with pictures
    and labels.

    Args:
        records: Scored records ``{"id", "prediction", "reference", "language"?}``.
        dataset: The split's :class:`~radiolm.data.datamodules.base.ReportDataset` (its ``index_of`` and
            ``pictures``); ``None`` or a dataset without them: no pictures.
        n: Number of studies.
        max_side: Largest side of each picture in pixels.
        labeler: Reports -> CheXpert-14 labels (default: the suite's rule labeler).
    """
    chosen = sorted(records, key=lambda r: str(r["id"]))[:n]
    studies = [
        SampleStudy(
            id=str(r["id"]),
            prediction=str(r["prediction"]),
            reference=str(r["reference"]),
            language=str(r.get("language") or "en"),
        )
        for r in chosen
    ]
    readable = [s for s in studies if s.language.lower().split("-")[0] in LABELED_LANGUAGES]
    if readable:
        labels = labeler([*(s.prediction for s in readable), *(s.reference for s in readable)])
        for i, study in enumerate(readable):
            study.prediction_labels, study.reference_labels = labels[i], labels[len(readable) + i]
    for study in studies:
        study.pictures = _pictures(dataset, study.id, max_side)
    return studies


def _pictures(dataset: Any, study_id: str, max_side: int) -> list[Picture]:
    """The study's pictures from ``dataset``, shrunk; none (with a warning) when the dataset cannot give them."""
    if dataset is None or not hasattr(dataset, "index_of") or not hasattr(dataset, "pictures"):
        return []
    index = dataset.index_of(study_id)
    if index is None:
        log.warning("radiolm: sample study %s is not in the dataset; its page shows no pictures", study_id)
        return []
    try:
        return [(caption, _shrink(image, max_side)) for caption, image in dataset.pictures(index)]
    except DataError as e:  # a file gone since the run started: the page still shows the text
        log.warning("radiolm: no pictures for sample study %s (%s)", study_id, e)
        return []
