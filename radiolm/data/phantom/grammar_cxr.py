"""Report grammar and CheXpert-14 labels of the phantom chest radiographs.

The grammar is split in two layers so that another language only adds a lexicon:

1. *What is said* is language independent: :func:`write_report` picks statement keys from the
   :class:`~radiolm.data.phantom.specs.StudySpec` (one key per present finding, a random subset of negations of
   absent ones), groups them into sections (devices, heart, lungs, pleura, bones) and shuffles the order
   within each section.
2. *How it is said* lives in a lexicon (``_LEXICONS[language]``): several paraphrase templates per key and the
   words for sides, lobes, zones, amounts and severities.

Hedges are part of the spec (``StudySpec.hedges``), not of the sentence choice, so :func:`spec_labels` knows
them: a hedged finding is labelled ``-1`` (uncertain), as the CheXpert labeler does with "may represent",
"cannot be excluded", "possible".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from radiolm.data.labels import CHEXPERT_14, NEGATIVE, POSITIVE, UNCERTAIN
from radiolm.data.phantom.grammar_zh import ZH_CXR_LEXICON
from radiolm.data.phantom.specs import StudySpec

__all__ = ["HEDGE_WORDS", "LANGUAGES", "NORMAL_IMPRESSION", "check_language", "spec_labels", "write_report"]

_SEVERITY_ADVERB = {"mild": "mildly", "moderate": "moderately", "severe": "severely"}

_EN_WORDS: dict[str, dict[str, str]] = {
    "lobe": {
        "RUL": "right upper lobe",
        "RML": "right middle lobe",
        "RLL": "right lower lobe",
        "LUL": "left upper lobe",
        "LLL": "left lower lobe",
    },
}

_EN_TEMPLATES: dict[str, tuple[str, ...]] = {
    # devices
    "ett": (
        "an endotracheal tube is in place.",
        "endotracheal tube in standard position.",
        "the endotracheal tube terminates in the mid trachea.",
    ),
    "cvc": (
        "a right internal jugular central venous catheter terminates in the superior vena cava.",
        "right-sided central venous catheter with the tip in the superior vena cava.",
        "a right central line is in place.",
    ),
    "pacemaker": (
        "a left chest wall pacemaker is present with its lead in the right ventricle.",
        "left-sided pacemaker with the lead terminating in the right ventricle.",
        "a cardiac pacemaker overlies the left chest.",
    ),
    # heart and mediastinum
    "cardiomegaly": (
        "{cm_sev} cardiomegaly.",
        "the heart is {cm_adv} enlarged.",
        "the cardiac silhouette is {cm_adv} enlarged.",
        "there is {cm_sev} enlargement of the cardiac silhouette.",
    ),
    "heart_normal": ("the heart size is normal.", "heart size is within normal limits.", "normal heart size."),
    "mediastinum_widened": (
        "the mediastinum is widened.",
        "the superior mediastinum is widened.",
        "there is widening of the mediastinal contour.",
    ),
    "mediastinum_normal": ("the mediastinal contours are normal.", "normal mediastinal contours."),
    "cardiomediastinal_normal": (
        "heart size and mediastinal contours are within normal limits.",
        "the cardiomediastinal silhouette is normal.",
        "normal heart size and mediastinal contours.",
    ),
    # lungs
    "consolidation": (
        "{lobe} consolidation.",
        "there is consolidation in the {lobe}.",
        "patchy consolidation is seen in the {lobe}.",
    ),
    "consolidation_hedged": (
        "there is consolidation in the {lobe}, which may represent pneumonia.",
        "{lobe} consolidation, possibly pneumonia.",
        "consolidation in the {lobe}; pneumonia cannot be excluded.",
    ),
    "nodule": (
        "there is a {mm} mm nodule in the {nod_side} {zone} zone.",
        "a {mm} mm pulmonary nodule is seen in the {nod_side} {zone} zone.",
        "{nod_side} {zone} zone nodule measuring {mm} mm.",
    ),
    "nodule_hedged": (
        "possible {mm} mm nodule in the {nod_side} {zone} zone.",
        "a {mm} mm nodule in the {nod_side} {zone} zone cannot be excluded.",
        "questionable {mm} mm nodule in the {nod_side} {zone} zone.",
    ),
    "edema": (
        "{edema_sev} pulmonary edema.",
        "there is {edema_sev} pulmonary edema.",
        "{edema_sev} bilateral perihilar opacities consistent with pulmonary edema.",
    ),
    "edema_hedged": (
        "mild perihilar opacity, which may represent early pulmonary edema.",
        "mild perihilar opacity; pulmonary edema cannot be excluded.",
        "possible mild pulmonary edema.",
    ),
    "kerley": ("Kerley B lines are present at the lung bases.", "there are Kerley B lines."),
    "atelectasis": (
        "plate-like atelectasis at the {atel_side} lung base.",
        "{atel_side} basilar atelectasis.",
        "there is linear atelectasis at the {atel_side} base.",
    ),
    "atelectasis_hedged": (
        "linear opacity at the {atel_side} base, which may represent atelectasis.",
        "{atel_side} basilar opacity, possibly atelectasis.",
        "streaky {atel_side} basilar opacity; atelectasis is possible.",
    ),
    "lungs_clear": ("the lungs are clear.", "lungs are clear bilaterally.", "no focal airspace opacity."),
    "no_consolidation": ("no focal consolidation.", "there is no focal consolidation."),
    "no_edema": ("no pulmonary edema.", "there is no pulmonary edema."),
    "no_nodule": ("no suspicious pulmonary nodule.", "no pulmonary nodules are seen."),
    # pleura
    "effusion": (
        "{eff_amount} {eff_side} pleural effusion.",
        "there is a {eff_amount} {eff_side} pleural effusion.",
        "{eff_side} pleural effusion, {eff_amount} in size.",
    ),
    "effusion_bilateral": (
        "{eff_amount} bilateral pleural effusions.",
        "there are {eff_amount} bilateral pleural effusions.",
        "bilateral pleural effusions, {eff_amount} in size.",
    ),
    "pneumothorax": (
        "{ptx_size} {ptx_side} pneumothorax.",
        "there is a {ptx_size} {ptx_side} pneumothorax.",
        "a {ptx_size} {ptx_side}-sided pneumothorax is present.",
    ),
    "no_effusion_pneumothorax": (
        "no pneumothorax or pleural effusion.",
        "no pleural effusion or pneumothorax.",
        "there is no pleural effusion or pneumothorax.",
    ),
    "no_effusion": ("no pleural effusion.", "there is no pleural effusion."),
    "no_pneumothorax": ("no pneumothorax.", "there is no pneumothorax."),
    # bones
    "fracture": (
        "displaced fracture of the {frac_side} {rib} rib.",
        "there is a fracture of the {frac_side} {rib} rib.",
        "{frac_side} {rib} rib fracture.",
    ),
    "no_fracture": (
        "no acute osseous abnormality.",
        "the osseous structures are intact.",
        "no displaced rib fracture.",
    ),
    # impression
    "imp_normal": (
        "no acute cardiopulmonary process.",
        "no acute cardiopulmonary abnormality.",
        "no acute cardiopulmonary disease.",
    ),
    "imp_devices": ("support devices as described above.", "support devices in place."),
    "imp_pneumothorax": ("{ptx_size} {ptx_side} pneumothorax.",),
    "imp_effusion": ("{eff_amount} {eff_side} pleural effusion.",),
    "imp_effusion_bilateral": ("{eff_amount} bilateral pleural effusions.",),
    "imp_consolidation": ("{lobe} consolidation.",),
    "imp_consolidation_hedged": (
        "{lobe} consolidation, may represent pneumonia.",
        "{lobe} consolidation, possibly pneumonia.",
    ),
    "imp_edema": ("{edema_sev} pulmonary edema.",),
    "imp_edema_hedged": ("possible mild pulmonary edema.",),
    "imp_cardiomegaly": ("{cm_sev} cardiomegaly.",),
    "imp_mediastinum_widened": ("widened mediastinum.",),
    "imp_nodule": ("{mm} mm {nod_side} {zone} zone nodule.",),
    "imp_nodule_hedged": ("possible {mm} mm {nod_side} {zone} zone nodule.",),
    "imp_atelectasis": ("{atel_side} basilar atelectasis.",),
    "imp_atelectasis_hedged": ("{atel_side} basilar opacity, possibly atelectasis.",),
    "imp_fracture": ("{frac_side} {rib} rib fracture.",),
}

_LEXICONS: dict[str, dict[str, Any]] = {
    "en": {"words": _EN_WORDS, "templates": _EN_TEMPLATES},
    "zh": ZH_CXR_LEXICON,
}

LANGUAGES: tuple[str, ...] = tuple(_LEXICONS)
"""Languages :func:`write_report` can write."""

HEDGE_WORDS: tuple[str, ...] = ("may represent", "cannot be excluded", "possible", "possibly", "questionable")
"""Phrases that make a statement uncertain (label ``-1``); every hedged template contains one."""

NORMAL_IMPRESSION = "no acute cardiopulmonary"
"""Prefix (lowercase) shared by every impression of a study without pathology."""

# Order of the impression: most urgent first.
_IMPRESSION_ORDER = (
    "pneumothorax",
    "effusion",
    "consolidation",
    "edema",
    "cardiomegaly",
    "mediastinum_widened",
    "nodule",
    "atelectasis",
    "fracture",
)


def check_language(language: str) -> None:
    """Raise ``ValueError`` unless reports can be written in ``language``."""
    if language not in _LEXICONS:
        raise ValueError(f"phantom reports in language {language!r} are not available (have: {', '.join(LANGUAGES)})")


def _ordinal(number: int) -> str:
    """``4`` -> ``4th``."""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _slots(spec: StudySpec, words: dict[str, dict[str, str]]) -> dict[str, str]:
    """Words that fill the template slots ``{...}`` for the findings present in ``spec``."""
    slots = {
        "cm_sev": spec.cardiomegaly,
        "cm_adv": _SEVERITY_ADVERB.get(spec.cardiomegaly or ""),
        "eff_side": spec.effusion_side,
        "eff_amount": spec.effusion_amount,
        "ptx_side": spec.pneumothorax_side,
        "ptx_size": spec.pneumothorax_size,
        "lobe": words["lobe"].get(spec.consolidation_lobe or ""),
        "mm": None if spec.nodule_mm is None else str(spec.nodule_mm),
        "nod_side": spec.nodule_side,
        "zone": spec.nodule_zone,
        "edema_sev": spec.edema,
        "atel_side": spec.atelectasis_side,
        "frac_side": spec.fracture_side,
        "rib": None if spec.fracture_rib is None else _ordinal(spec.fracture_rib),
    }
    return {key: value for key, value in slots.items() if value is not None}


def _hedged(spec: StudySpec, key: str, hedge: str) -> str:
    """``key`` or its hedged variant when ``hedge`` is in the spec's hedges."""
    return f"{key}_hedged" if hedge in spec.hedges else key


def _heart_keys(spec: StudySpec, rng: np.random.Generator) -> list[str]:
    """Heart and mediastinum statements; normal ones are sometimes left out."""
    if spec.cardiomegaly is None and not spec.mediastinum_widened:
        return ["cardiomediastinal_normal"] if rng.random() < 0.85 else []
    keys = ["cardiomegaly" if spec.cardiomegaly else "heart_normal"]
    keys.append("mediastinum_widened" if spec.mediastinum_widened else "mediastinum_normal")
    return [key for key in keys if key in ("cardiomegaly", "mediastinum_widened") or rng.random() < 0.6]


def _lung_keys(spec: StudySpec, rng: np.random.Generator) -> list[str]:
    """Parenchymal findings, then some negations of absent ones (or that the lungs are clear)."""
    keys = []
    if spec.consolidation_lobe:
        keys.append(_hedged(spec, "consolidation", "pneumonia"))
    if spec.nodule_mm:
        keys.append(_hedged(spec, "nodule", "nodule"))
    if spec.edema:
        keys.append(_hedged(spec, "edema", "edema"))
        if spec.kerley_lines:
            keys.append("kerley")
    if spec.atelectasis_side:
        keys.append(_hedged(spec, "atelectasis", "atelectasis"))
    if not keys and not (spec.effusion_side or spec.pneumothorax_side):
        return ["lungs_clear"] if rng.random() < 0.8 else []
    absent = {"no_consolidation": spec.consolidation_lobe, "no_edema": spec.edema, "no_nodule": spec.nodule_mm}
    return keys + [key for key, present in absent.items() if not present and rng.random() < 0.35]


def _pleura_keys(spec: StudySpec, rng: np.random.Generator) -> list[str]:
    """Effusion and pneumothorax, or their joint negation."""
    keys = []
    if spec.effusion_side:
        keys.append("effusion_bilateral" if spec.effusion_side == "bilateral" else "effusion")
    if spec.pneumothorax_side:
        keys.append("pneumothorax")
    if not keys:
        return ["no_effusion_pneumothorax"] if rng.random() < 0.8 else []
    negation = "no_pneumothorax" if spec.effusion_side else "no_effusion"
    return keys + ([negation] if len(keys) == 1 and rng.random() < 0.6 else [])


def _bone_keys(spec: StudySpec, rng: np.random.Generator) -> list[str]:
    """Rib fracture, or sometimes a normal-bones statement."""
    if spec.fracture_side:
        return ["fracture"]
    return ["no_fracture"] if rng.random() < 0.5 else []


def _impression_keys(spec: StudySpec) -> list[str]:
    """Positive findings, most urgent first, then devices; the normal line when nothing is found."""
    present = spec.present_findings()
    hedge_of = {"consolidation": "pneumonia", "edema": "edema", "nodule": "nodule", "atelectasis": "atelectasis"}
    keys = [_hedged(spec, f"imp_{name}", hedge_of.get(name, "")) for name in _IMPRESSION_ORDER if name in present]
    if spec.effusion_side == "bilateral":
        keys[keys.index("imp_effusion")] = "imp_effusion_bilateral"
    devices = ["imp_devices"] if spec.devices else []
    return keys + devices if keys else [*devices, "imp_normal"]


def _realize(keys: list[str], lexicon: dict[str, dict], slots: dict[str, str], rng: np.random.Generator) -> list[str]:
    """One random paraphrase per key, filled and in sentence case."""
    sentences = []
    for key in keys:
        templates = lexicon["templates"][key]
        text = templates[int(rng.integers(len(templates)))].format_map(slots)
        sentences.append(text[0].upper() + text[1:])
    return sentences


def write_report(spec: StudySpec, rng: np.random.Generator, language: str = "en") -> tuple[str, str]:
    """Write the findings and impression sections of one phantom study.

    Args:
        spec: the sampled study.
        rng: source of the paraphrase choice, sentence order and which absent findings are negated.
        language: report language, ``"en"`` or ``"zh"`` (:mod:`radiolm.data.phantom.grammar_zh`).

    Returns:
        ``(findings, impression)``, each a few sentences in sentence case.

    Raises:
        NotImplementedError: for a language without a lexicon.
    """
    check_language(language)
    lexicon = _LEXICONS[language]
    slots = lexicon.get("slots", _slots)(spec, lexicon["words"])  # zh brings its own words for the slots
    findings = []
    sections = [list(spec.devices), _heart_keys(spec, rng), _lung_keys(spec, rng), _pleura_keys(spec, rng)]
    sections.append(_bone_keys(spec, rng))
    if not any(sections):  # a normal study whose negations were all left out still says something
        sections[2] = ["lungs_clear"]
    for keys in sections:
        findings += _realize([keys[i] for i in rng.permutation(len(keys))], lexicon, slots, rng)
    impression = _realize(_impression_keys(spec), lexicon, slots, rng)
    separator = lexicon.get("separator", " ")  # zh: sentences end in "。" and join without spaces
    return separator.join(findings), separator.join(impression)


def spec_labels(spec: StudySpec) -> list[int]:
    """CheXpert-14 labels of a study, in :data:`~radiolm.data.labels.CHEXPERT_14` order.

    A present finding is ``1``, or ``-1`` when its statement is hedged; every absent finding is ``0`` whether or
    not the report negates it (the phantom is fully known). ``Pneumonia`` is never stated, only hedged
    ("may represent pneumonia" -> ``-1``). ``Pleural Other`` is always ``0``. ``No Finding`` is ``1`` when no
    pathology label is ``1`` or ``-1``; support devices do not count as pathology.

    Args:
        spec: the sampled study.

    Returns:
        14 integers in ``{1, 0, -1}``.
    """
    labels = dict.fromkeys(CHEXPERT_14, NEGATIVE)

    def mark(name: str, hedge: str | None = None) -> None:
        """Set ``name`` positive, or uncertain when ``hedge`` is hedged; positive wins over uncertain."""
        value = UNCERTAIN if hedge in spec.hedges else POSITIVE
        labels[name] = POSITIVE if labels[name] == POSITIVE else value

    if spec.mediastinum_widened:
        mark("Enlarged Cardiomediastinum")
    if spec.cardiomegaly:
        mark("Cardiomegaly")
    if spec.consolidation_lobe:
        mark("Consolidation")
        mark("Lung Opacity")
        if "pneumonia" in spec.hedges:
            mark("Pneumonia", "pneumonia")
    if spec.nodule_mm:
        mark("Lung Lesion", "nodule")
    if spec.edema:
        mark("Edema", "edema")
        mark("Lung Opacity")
    if spec.atelectasis_side:
        mark("Atelectasis", "atelectasis")
        mark("Lung Opacity")
    if spec.pneumothorax_side:
        mark("Pneumothorax")
    if spec.effusion_side:
        mark("Pleural Effusion")
    if spec.fracture_side:
        mark("Fracture")
    if spec.devices:
        mark("Support Devices")
    pathology = [name for name in CHEXPERT_14 if name not in ("Support Devices", "No Finding")]
    if all(labels[name] == NEGATIVE for name in pathology):
        labels["No Finding"] = POSITIVE
    return [labels[name] for name in CHEXPERT_14]
