"""CheXpert-14 observations: the one fixed label order of the suite.

Every ``labels`` tensor (``ReportBatch.labels``, ``labels.csv`` files, metrics) uses this order.
Values: ``1`` positive, ``0`` negative, ``-1`` uncertain / unknown.
"""

from __future__ import annotations

__all__ = ["CHEXPERT_5", "CHEXPERT_14", "NEGATIVE", "POSITIVE", "UNCERTAIN", "label_index"]

# Order of the CheXpert labeler and CheXbert (Irvin et al. 2019; Smit et al. 2020).
CHEXPERT_14: tuple[str, ...] = (
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
    "No Finding",
)

# The five common observations of the CheXpert competition (used by F1-CXB-5 and friends).
CHEXPERT_5: tuple[str, ...] = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")

POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1


def label_index(name: str) -> int:
    """Position of an observation in :data:`CHEXPERT_14`.

    Raises:
        KeyError: with the list of valid names when ``name`` is not a CheXpert-14 observation.
    """
    try:
        return CHEXPERT_14.index(name)
    except ValueError:
        raise KeyError(f"unknown CheXpert observation {name!r}; expected one of {', '.join(CHEXPERT_14)}") from None
