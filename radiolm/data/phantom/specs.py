"""The ground truth of one phantom study: :class:`StudySpec` (chest X-ray) and :class:`CTStudySpec` (chest CT).

A spec is sampled by :func:`~radiolm.data.phantom.cxr.sample_study` / :func:`~radiolm.data.phantom.ct.sample_ct_study`,
drawn by :mod:`radiolm.data.phantom.cxr_render` / :mod:`radiolm.data.phantom.ct_render` and described by
:mod:`radiolm.data.phantom.grammar_cxr` / :mod:`radiolm.data.phantom.grammar_ct`. The specs live in their own module,
which imports nothing of the phantom, so that samplers, renderers, grammars and writers all import them without a
cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LOBES", "CTStudySpec", "StudySpec"]


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


LOBES: tuple[str, ...] = ("RUL", "RML", "RLL", "LUL", "LLL")


@dataclass
class CTStudySpec:
    """The sampled content of one phantom CT study. Sides are the patient's; ``None`` means absent.

    Attributes:
        body_scale: body cross-section relative to the average patient.
        heart_scale: heart radius relative to normal (normal 0.9-1.1; cardiomegaly 1.3-1.6).
        cardiomegaly: ``mild | moderate | severe``.
        effusion_side: ``left | right | bilateral``; ``effusion_amount``: ``small | moderate | large``.
        pneumothorax_side: ``left | right``; ``pneumothorax_size``: ``small | large``.
        consolidation_lobe: one of ``RUL RML RLL LUL LLL``.
        nodule_mm: nodule diameter in mm; ``nodule_lobe``: its lobe; ``nodule_center``: ``(z, v, u)``, the height
            in [0, 1] of the field of view and the position in that lung's cross-section, anterior-posterior ``v``
            and medial-lateral ``u`` in [-1, 1] (:mod:`radiolm.data.phantom.ct_render`).
        emphysema: ``mild | severe`` (centrilobular, upper lobes; no CheXpert column).
        ground_glass: bilateral patchy ground-glass opacity in the lower lobes.
        atelectasis_side: ``left | right`` (band in the posterior lower lobe).
        pleural_thickening_side: ``left | right | bilateral``.
        hedges: statements the report hedges (label ``-1``): ``pneumonia`` (consolidation as possible infection),
            ``nodule``, ``atelectasis``.
    """

    body_scale: float = 1.0
    heart_scale: float = 1.0
    cardiomegaly: str | None = None
    effusion_side: str | None = None
    effusion_amount: str | None = None
    pneumothorax_side: str | None = None
    pneumothorax_size: str | None = None
    consolidation_lobe: str | None = None
    nodule_mm: int | None = None
    nodule_lobe: str | None = None
    nodule_center: tuple[float, float, float] | None = None
    emphysema: str | None = None
    ground_glass: bool = False
    atelectasis_side: str | None = None
    pleural_thickening_side: str | None = None
    hedges: tuple[str, ...] = ()

    def present_findings(self) -> set[str]:
        """Names of the findings this study shows."""
        present = {
            "cardiomegaly": self.cardiomegaly,
            "effusion": self.effusion_side,
            "pneumothorax": self.pneumothorax_side,
            "consolidation": self.consolidation_lobe,
            "nodule": self.nodule_mm,
            "emphysema": self.emphysema,
            "ground_glass": self.ground_glass,
            "atelectasis": self.atelectasis_side,
            "pleural_thickening": self.pleural_thickening_side,
        }
        return {name for name, value in present.items() if value}
