"""The ground truth of one phantom chest X-ray study: :class:`StudySpec`.

Sampled by :func:`radiolm.data.phantom.sample_study`, drawn by :mod:`radiolm.data.phantom_render` and described
by :mod:`radiolm.data.report_grammar`. It lives in its own module so that the renderer and the data set writer
(:mod:`radiolm.data.phantom`) can both import it without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StudySpec"]


@dataclass
class StudySpec:
    """The sampled content of one phantom study: the ground truth behind the pixels and the report.

    Sides are the patient's. ``None`` (or empty) means the finding is absent.

    Attributes:
        body_scale: thorax width relative to the average patient.
        ctr: cardiothoracic ratio (heart width / inner thorax width); above 0.5 with cardiomegaly.
        cardiomegaly: ``mild | moderate | severe``.
        mediastinum_widened: widened superior mediastinum (Enlarged Cardiomediastinum).
        effusion_side: ``left | right | bilateral``.
        effusion_amount: ``small | moderate | large``.
        pneumothorax_side: ``left | right``.
        pneumothorax_size: ``small | large``.
        consolidation_lobe: ``RUL | RML | RLL | LUL | LLL``.
        nodule_mm: nodule diameter in mm.
        nodule_side: ``left | right``.
        nodule_zone: ``upper | mid | lower``.
        nodule_x: nodule lateral position in lung widths from the midline.
        nodule_v: nodule height in image widths.
        edema: ``mild | moderate``.
        kerley_lines: Kerley B lines at the lung bases (only with edema).
        atelectasis_side: ``left | right`` (plate-like band at that base).
        fracture_side: ``left | right``.
        fracture_rib: number of the broken posterior rib (4-8).
        devices: subset of ``ett`` (endotracheal tube), ``cvc`` (central venous catheter), ``pacemaker``.
        hedges: statements the report hedges (label ``-1``): ``pneumonia`` (for the consolidation), ``nodule``,
            ``edema``, ``atelectasis``.
    """

    body_scale: float = 1.0
    ctr: float = 0.42
    cardiomegaly: str | None = None
    mediastinum_widened: bool = False
    effusion_side: str | None = None
    effusion_amount: str | None = None
    pneumothorax_side: str | None = None
    pneumothorax_size: str | None = None
    consolidation_lobe: str | None = None
    nodule_mm: int | None = None
    nodule_side: str | None = None
    nodule_zone: str | None = None
    nodule_x: float | None = None
    nodule_v: float | None = None
    edema: str | None = None
    kerley_lines: bool = False
    atelectasis_side: str | None = None
    fracture_side: str | None = None
    fracture_rib: int | None = None
    devices: tuple[str, ...] = ()
    hedges: tuple[str, ...] = ()

    def present_findings(self) -> set[str]:
        """Names of the pathologies this study shows (devices not included)."""
        present = {
            "cardiomegaly": self.cardiomegaly,
            "mediastinum_widened": self.mediastinum_widened,
            "effusion": self.effusion_side,
            "pneumothorax": self.pneumothorax_side,
            "consolidation": self.consolidation_lobe,
            "nodule": self.nodule_mm,
            "edema": self.edema,
            "atelectasis": self.atelectasis_side,
            "fracture": self.fracture_side,
        }
        return {name for name, value in present.items() if value}
