"""The phantom chest CT's CTRG-style reports and CheXpert-14 labels, from its :class:`CTStudySpec`.

CTRG-Chest-548K reports (and the CMRG-LLM paper's CT examples, its Table 3) follow a fixed order: thorax, lung
window (parenchyma), hila and airways, heart and mediastinum, pleura; then an impression that lists the
abnormalities, with a follow-up advice for nodules. :func:`write_ct_report` keeps that order, picks one paraphrase
per statement, shuffles the parenchymal statements and negates some absent findings. As in
:mod:`radiolm.data.phantom.grammar_cxr`, *what is said* (statement keys) is language independent and *how it is
said* is a lexicon: English here, Chinese in :mod:`radiolm.data.phantom.grammar_zh`.

Labels come from the spec, not from the text. CT findings map onto the CheXpert-14 columns as follows:
nodule -> Lung Lesion; consolidation -> Consolidation + Lung Opacity (+ Pneumonia -1 when "may represent
infection"); ground-glass opacity -> Lung Opacity; atelectasis -> Atelectasis + Lung Opacity; effusion -> Pleural
Effusion; pneumothorax -> Pneumothorax; pleural thickening -> Pleural Other; cardiomegaly -> Cardiomegaly.
Emphysema has no CheXpert column: it is described but changes no label (an emphysema-only study is No Finding = 1,
which is also what a CheXpert labeler gives for such a report).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from radiolm.data.labels import CHEXPERT_14, NEGATIVE, POSITIVE, UNCERTAIN
from radiolm.data.phantom.specs import CTStudySpec

__all__ = ["CT_LANGUAGES", "check_ct_language", "ct_spec_labels", "write_ct_report"]


_EN_WORDS: dict[str, dict[str, str]] = {
    "lobe": {
        "RUL": "right upper lobe",
        "RML": "right middle lobe",
        "RLL": "right lower lobe",
        "LUL": "left upper lobe",
        "LLL": "left lower lobe",
    },
    "side": {"left": "left", "right": "right", "bilateral": "bilateral"},
    "lung": {"left": "left lung", "right": "right lung", "bilateral": "both lungs"},
    "amount": {"small": "small", "moderate": "moderate", "large": "large"},
    "severity": {"mild": "mild", "moderate": "moderate", "severe": "severe"},
}

_EN_TEMPLATES: dict[str, tuple[str, ...]] = {
    "thorax": ("the thorax is symmetrical.", "the thoracic cage is symmetrical."),
    # lung window
    "lungs_clear": (
        "the lung window shows clear markings in both lungs with good transparency of the lung fields.",
        "both lungs show clear and natural lung markings.",
        "no abnormal density is seen in either lung.",
    ),
    "emphysema": (
        "{emph_sev} emphysematous changes are seen in both upper lobes.",
        "both upper lobes show {emph_sev} emphysema with increased lucency.",
    ),
    "ground_glass": (
        "patchy ground-glass opacities are seen in both lower lobes.",
        "multiple ground-glass density shadows are scattered in the lower lobes of both lungs.",
    ),
    "consolidation": (
        "patchy consolidation is seen in the {lobe}.",
        "there is a consolidation in the {lobe}.",
        "a patchy high-density shadow with blurred margins is seen in the {lobe}.",
    ),
    "consolidation_hedged": (
        "patchy consolidation is seen in the {lobe}, which may represent infection.",
        "a patchy shadow in the {lobe}; pneumonia cannot be excluded.",
    ),
    "nodule": (
        "a solid nodule is seen in the {nod_lobe}, measuring about {mm} mm.",
        "there is a {mm} mm solid nodule in the {nod_lobe}.",
        "a nodular shadow about {mm} mm in diameter is seen in the {nod_lobe}.",
    ),
    "nodule_hedged": (
        "a questionable {mm} mm nodular density in the {nod_lobe}.",
        "possible {mm} mm nodule in the {nod_lobe}.",
    ),
    "atelectasis": (
        "a strip of atelectasis is seen in the lower lobe of the {atel_lung}.",
        "there is linear atelectasis in the posterior lower lobe of the {atel_lung}.",
    ),
    "atelectasis_hedged": (
        "a linear density in the lower lobe of the {atel_lung}, possibly atelectasis.",
        "a band-like shadow in the lower lobe of the {atel_lung}; atelectasis is possible.",
    ),
    "no_nodule": ("no definite nodule is seen in either lung.", "no pulmonary nodules are seen."),
    "no_consolidation": ("no consolidation is seen.", "there is no pulmonary consolidation."),
    # hila and airways
    "hila_normal": (
        "both hila are not enlarged.",
        "the hila are not enlarged and the trachea and main bronchi are patent.",
        "the trachea and bronchi are patent.",
    ),
    # heart and mediastinum
    "cardiomegaly": (
        "the heart is {cm_sev}ly enlarged.",
        "{cm_sev} cardiomegaly.",
        "the cardiac shadow is {cm_sev}ly enlarged.",
    ),
    "heart_normal": (
        "the heart and great vessels are normal in shape.",
        "the heart shadow and great vessels are normal.",
    ),
    "mediastinum_normal": (
        "no mass or enlarged lymph nodes are seen in the mediastinum.",
        "no enlarged mediastinal lymph nodes.",
    ),
    # pleura
    "effusion": (
        "{eff_amount} {eff_side} pleural effusion.",
        "there is a {eff_amount} {eff_side} pleural effusion.",
        "a {eff_amount} amount of fluid is seen in the {eff_side} pleural cavity.",
    ),
    "effusion_bilateral": (
        "{eff_amount} bilateral pleural effusions.",
        "there are {eff_amount} pleural effusions on both sides.",
    ),
    "pneumothorax": (
        "{ptx_size} {ptx_side} pneumothorax.",
        "there is a {ptx_size} {ptx_side} pneumothorax with compressed lung tissue.",
    ),
    "pleural_thickening": (
        "{thick_side} pleural thickening.",
        "the {thick_side} pleura is thickened.",
    ),
    "pleural_thickening_bilateral": ("bilateral pleural thickening.", "the pleura is thickened on both sides."),
    "no_pleural": (
        "no pleural effusion or pleural thickening.",
        "there is no pleural effusion or thickening.",
        "no pleural effusion.",
    ),
    "no_pneumothorax": ("no pneumothorax.", "there is no pneumothorax."),
    # impression
    "imp_normal": (
        "no obvious abnormality on chest CT.",
        "no active lesion in either lung.",
        "no abnormality of the chest.",
    ),
    "imp_pneumothorax": ("{ptx_size} {ptx_side} pneumothorax.",),
    "imp_effusion": ("{eff_amount} {eff_side} pleural effusion.",),
    "imp_effusion_bilateral": ("{eff_amount} bilateral pleural effusions.",),
    "imp_consolidation": ("consolidation in the {lobe}.",),
    "imp_consolidation_hedged": (
        "{lobe} consolidation, may represent infection; review after treatment.",
        "{lobe} consolidation, possibly pneumonia.",
    ),
    "imp_nodule": ("{mm} mm nodule in the {nod_lobe}; follow-up is recommended.", "{nod_lobe} nodule."),
    "imp_nodule_hedged": ("possible small nodule in the {nod_lobe}; follow-up is recommended.",),
    "imp_ground_glass": ("ground-glass opacities in both lower lobes.",),
    "imp_emphysema": ("{emph_sev} emphysema.",),
    "imp_atelectasis": ("atelectasis in the lower lobe of the {atel_lung}.",),
    "imp_atelectasis_hedged": ("linear density in the {atel_lung}, possibly atelectasis.",),
    "imp_cardiomegaly": ("cardiomegaly.", "enlarged heart."),
    "imp_pleural_thickening": ("{thick_side} pleural thickening.",),
    "imp_pleural_thickening_bilateral": ("bilateral pleural thickening.",),
}


def _zh_lexicon() -> dict[str, Any]:
    from radiolm.data.phantom.grammar_zh import ZH_CT_LEXICON

    return ZH_CT_LEXICON


_LEXICONS: dict[str, Callable[[], dict[str, Any]]] = {
    "en": lambda: {"words": _EN_WORDS, "templates": _EN_TEMPLATES, "separator": " "},
    "zh": _zh_lexicon,
}

CT_LANGUAGES: tuple[str, ...] = tuple(_LEXICONS)
"""Languages :func:`write_ct_report` can write."""

# Impression order: most urgent first.
_IMPRESSION_ORDER = (
    "pneumothorax",
    "effusion",
    "consolidation",
    "nodule",
    "ground_glass",
    "emphysema",
    "atelectasis",
    "cardiomegaly",
    "pleural_thickening",
)
_HEDGE_OF = {"consolidation": "pneumonia", "nodule": "nodule", "atelectasis": "atelectasis"}


def _slots(spec: CTStudySpec, words: dict[str, dict[str, str]]) -> dict[str, str]:
    """Words for the template slots ``{...}`` of the findings present in ``spec``."""
    slots = {
        "lobe": words["lobe"].get(spec.consolidation_lobe or ""),
        "nod_lobe": words["lobe"].get(spec.nodule_lobe or ""),
        "mm": None if spec.nodule_mm is None else str(spec.nodule_mm),
        "eff_side": words["side"].get(spec.effusion_side or ""),
        "eff_amount": words["amount"].get(spec.effusion_amount or ""),
        "ptx_side": words["side"].get(spec.pneumothorax_side or ""),
        "ptx_size": words["amount"].get(spec.pneumothorax_size or ""),
        "cm_sev": words["severity"].get(spec.cardiomegaly or ""),
        "emph_sev": words["severity"].get(spec.emphysema or ""),
        "atel_lung": words["lung"].get(spec.atelectasis_side or ""),
        "thick_side": words["side"].get(spec.pleural_thickening_side or ""),
    }
    return {key: value for key, value in slots.items() if value is not None}


def _hedged(spec: CTStudySpec, name: str, key: str) -> str:
    """``key`` or its ``_hedged`` variant when the finding ``name`` is hedged."""
    return f"{key}_hedged" if _HEDGE_OF.get(name) in spec.hedges else key


def _lung_keys(spec: CTStudySpec, rng: np.random.Generator) -> list[str]:
    """Parenchymal statements (shuffled later), or the clear-lungs line; some negations of absent findings."""
    keys = [
        _hedged(spec, name, name)
        for name in ("emphysema", "ground_glass", "consolidation", "nodule", "atelectasis")
        if name in spec.present_findings()
    ]
    if not keys:
        return ["lungs_clear"] + (["no_nodule"] if rng.random() < 0.4 else [])
    absent = {"no_nodule": spec.nodule_mm, "no_consolidation": spec.consolidation_lobe}
    return keys + [key for key, present in absent.items() if not present and rng.random() < 0.3]


def _heart_keys(spec: CTStudySpec, rng: np.random.Generator) -> list[str]:
    """Heart and mediastinum; normal statements are sometimes left out."""
    heart = ["cardiomegaly"] if spec.cardiomegaly else (["heart_normal"] if rng.random() < 0.85 else [])
    return heart + (["mediastinum_normal"] if rng.random() < 0.7 else [])


def _pleura_keys(spec: CTStudySpec, rng: np.random.Generator) -> list[str]:
    """Effusion, pneumothorax, thickening; or the joint negation."""
    keys = []
    if spec.effusion_side:
        keys.append("effusion_bilateral" if spec.effusion_side == "bilateral" else "effusion")
    if spec.pneumothorax_side:
        keys.append("pneumothorax")
    if spec.pleural_thickening_side:
        bilateral = spec.pleural_thickening_side == "bilateral"
        keys.append("pleural_thickening_bilateral" if bilateral else "pleural_thickening")
    if not keys:
        return ["no_pleural"] if rng.random() < 0.85 else []
    return keys + (["no_pneumothorax"] if not spec.pneumothorax_side and rng.random() < 0.4 else [])


def _impression_keys(spec: CTStudySpec) -> list[str]:
    """Present findings, most urgent first; the normal line when there is none."""
    present = spec.present_findings()
    keys = [_hedged(spec, name, f"imp_{name}") for name in _IMPRESSION_ORDER if name in present]
    bilateral = {"imp_effusion": spec.effusion_side, "imp_pleural_thickening": spec.pleural_thickening_side}
    keys = [f"{key}_bilateral" if bilateral.get(key) == "bilateral" else key for key in keys]
    return keys or ["imp_normal"]


def _realize(keys: list[str], lexicon: dict[str, Any], slots: dict[str, str], rng: np.random.Generator) -> list[str]:
    """One random paraphrase per key, filled, in sentence case."""
    sentences = []
    for key in keys:
        templates = lexicon["templates"][key]
        text = templates[int(rng.integers(len(templates)))].format_map(slots)
        sentences.append(text[0].upper() + text[1:])
    return sentences


def check_ct_language(language: str) -> None:
    """Raise ``ValueError`` unless CT reports can be written in ``language``."""
    if language not in _LEXICONS:
        raise ValueError(f"CT phantom reports in language {language!r}: choose one of {', '.join(CT_LANGUAGES)}")


def write_ct_report(spec: CTStudySpec, rng: np.random.Generator, language: str = "en") -> tuple[str, str]:
    """Write the findings and impression of one phantom CT study.

    Args:
        spec: the sampled study.
        rng: source of paraphrases, the order of the parenchymal statements and which normal lines appear.
        language: ``en`` or ``zh``; the same ``rng`` state gives the same statements in both languages.

    Returns:
        ``(finding, impression)``.
    """
    check_ct_language(language)
    lexicon = _LEXICONS[language]()
    slots = _slots(spec, lexicon["words"])
    lungs = _lung_keys(spec, rng)
    lungs = [lungs[i] for i in rng.permutation(len(lungs))]
    thorax = ["thorax"] if rng.random() < 0.7 else []
    hila = ["hila_normal"] if rng.random() < 0.75 else []
    keys = thorax + lungs + hila + _heart_keys(spec, rng) + _pleura_keys(spec, rng)
    finding = _realize(keys, lexicon, slots, rng)
    impression = _realize(_impression_keys(spec), lexicon, slots, rng)
    separator = lexicon["separator"]
    return separator.join(finding), separator.join(impression)


def ct_spec_labels(spec: CTStudySpec) -> list[int]:
    """CheXpert-14 labels of a CT study (module docstring: the mapping), in :data:`CHEXPERT_14` order.

    A present finding is ``1``, or ``-1`` when hedged; absent findings are ``0``; No Finding is ``1`` when no
    pathology label is ``1`` or ``-1``.
    """
    labels = dict.fromkeys(CHEXPERT_14, NEGATIVE)

    def mark(name: str, hedge: str | None = None) -> None:
        value = UNCERTAIN if hedge in spec.hedges else POSITIVE
        labels[name] = POSITIVE if labels[name] == POSITIVE else value

    if spec.cardiomegaly:
        mark("Cardiomegaly")
    if spec.consolidation_lobe:
        mark("Consolidation")
        mark("Lung Opacity")
        if "pneumonia" in spec.hedges:
            mark("Pneumonia", "pneumonia")
    if spec.nodule_mm:
        mark("Lung Lesion", "nodule")
    if spec.ground_glass:
        mark("Lung Opacity")
    if spec.atelectasis_side:
        mark("Atelectasis", "atelectasis")
        mark("Lung Opacity")
    if spec.effusion_side:
        mark("Pleural Effusion")
    if spec.pneumothorax_side:
        mark("Pneumothorax")
    if spec.pleural_thickening_side:
        mark("Pleural Other")
    pathology = [name for name in CHEXPERT_14 if name not in ("Support Devices", "No Finding")]
    if all(labels[name] == NEGATIVE for name in pathology):
        labels["No Finding"] = POSITIVE
    return [labels[name] for name in CHEXPERT_14]
