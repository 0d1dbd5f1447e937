"""Chinese lexicons of the phantom report grammars: chest X-ray (:data:`ZH_CXR_LEXICON`) and CT
(:data:`ZH_CT_LEXICON`).

The statement keys, their order and the labels come from the language-independent grammars
(:mod:`radiolm.data.phantom.grammar_cxr`, :mod:`radiolm.data.phantom.grammar_ct`); this module only says how each
statement is written in Chinese, in the style of Chinese clinical reports (CTRG-Chest-548K's released example:
"胸廓对称，肺窗示双肺纹理清晰，走行自然，肺野透光度良好……双肺门不大。心影及心脏大血管形态正常，纵隔内未见明显肿块及
肿大淋巴结。无胸腔积液及胸膜增厚。"). Sentences end with "。" and are joined without spaces. Hedges use the usual
Chinese report words: "可能", "不除外", "可疑", "似见", "考虑". Given the same generator state, a study gets the same
statements (and so the same labels) in English and in Chinese.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from radiolm.data.phantom.specs import StudySpec

__all__ = ["ZH_CT_LEXICON", "ZH_CXR_LEXICON", "ZH_HEDGE_WORDS", "zh_cxr_slots"]

ZH_HEDGE_WORDS: tuple[str, ...] = ("可能", "不除外", "可疑", "似见", "考虑")
"""Words that make a Chinese statement uncertain; every hedged template contains one."""

_SIDE = {"left": "左侧", "right": "右侧", "bilateral": "双侧"}
_AMOUNT = {"small": "少量", "moderate": "中等量", "large": "大量"}
_SEVERITY = {"mild": "轻度", "moderate": "中度", "severe": "重度"}
_LOBE = {"RUL": "右肺上叶", "RML": "右肺中叶", "RLL": "右肺下叶", "LUL": "左肺上叶", "LLL": "左肺下叶"}

# ---------------------------------------------------------------------------------------------------------------
# Chest X-ray

_CXR_WORDS: dict[str, dict[str, str]] = {
    "lobe": _LOBE,
    "side": _SIDE,
    "amount": _AMOUNT,
    "severity": _SEVERITY,
    "lung": {"left": "左肺", "right": "右肺"},
    "base": {"left": "左", "right": "右"},
    "zone": {"upper": "上", "mid": "中", "lower": "下"},
}


def zh_cxr_slots(spec: StudySpec, words: dict[str, dict[str, str]]) -> dict[str, str]:
    """Chinese words for the slots of :mod:`radiolm.data.phantom.grammar_cxr`'s templates (present findings only)."""
    slots = {
        "cm_sev": words["severity"].get(spec.cardiomegaly or ""),
        "cm_adv": words["severity"].get(spec.cardiomegaly or ""),
        "eff_side": words["side"].get(spec.effusion_side or ""),
        "eff_amount": words["amount"].get(spec.effusion_amount or ""),
        "ptx_side": words["side"].get(spec.pneumothorax_side or ""),
        "ptx_size": words["amount"].get(spec.pneumothorax_size or ""),
        "lobe": words["lobe"].get(spec.consolidation_lobe or ""),
        "mm": None if spec.nodule_mm is None else str(spec.nodule_mm),
        "nod_side": words["lung"].get(spec.nodule_side or ""),
        "zone": words["zone"].get(spec.nodule_zone or ""),
        "edema_sev": words["severity"].get(spec.edema or ""),
        "atel_side": words["base"].get(spec.atelectasis_side or ""),
        "frac_side": words["side"].get(spec.fracture_side or ""),
        "rib": None if spec.fracture_rib is None else str(spec.fracture_rib),
    }
    return {key: value for key, value in slots.items() if value is not None}


_CXR_TEMPLATES: dict[str, tuple[str, ...]] = {
    # devices
    "ett": ("气管插管在位。", "气管插管位置正常。", "气管插管末端位于气管中段。"),
    "cvc": (
        "右侧颈内静脉置管，末端位于上腔静脉。",
        "右侧中心静脉导管在位，尖端位于上腔静脉。",
        "右侧中心静脉置管在位。",
    ),
    "pacemaker": (
        "左胸壁见起搏器影，导线末端位于右心室。",
        "左侧心脏起搏器植入术后，电极位于右心室。",
        "左胸部见心脏起搏器影。",
    ),
    # heart and mediastinum
    "cardiomegaly": ("心影{cm_sev}增大。", "{cm_sev}心脏增大。", "心脏{cm_adv}增大。", "心影呈{cm_sev}增大改变。"),
    "heart_normal": ("心影大小正常。", "心脏大小在正常范围内。", "心影不大。"),
    "mediastinum_widened": ("纵隔增宽。", "上纵隔增宽。", "纵隔影增宽。"),
    "mediastinum_normal": ("纵隔轮廓正常。", "纵隔居中，轮廓正常。"),
    "cardiomediastinal_normal": ("心影及纵隔轮廓在正常范围内。", "心脏纵隔影未见异常。", "心影大小及纵隔轮廓正常。"),
    # lungs
    "consolidation": ("{lobe}见实变影。", "{lobe}可见斑片状实变。", "{lobe}实变。"),
    "consolidation_hedged": (
        "{lobe}见实变影，考虑肺炎可能。",
        "{lobe}实变，不除外肺炎。",
        "{lobe}见斑片状实变影，肺炎可能。",
    ),
    "nodule": (
        "{nod_side}{zone}野见一大小约{mm}mm结节影。",
        "{nod_side}{zone}野可见{mm}mm结节。",
        "{nod_side}{zone}野结节，直径约{mm}mm。",
    ),
    "nodule_hedged": (
        "{nod_side}{zone}野可疑{mm}mm结节影。",
        "{nod_side}{zone}野{mm}mm结节影不除外。",
        "{nod_side}{zone}野似见{mm}mm结节。",
    ),
    "edema": ("{edema_sev}肺水肿。", "双肺{edema_sev}肺水肿。", "双肺门周围{edema_sev}模糊影，符合肺水肿。"),
    "edema_hedged": (
        "双肺门周围轻度模糊影，早期肺水肿可能。",
        "双肺门周围轻度模糊影，不除外肺水肿。",
        "可疑轻度肺水肿。",
    ),
    "kerley": ("双肺底见Kerley B线。", "可见Kerley B线。"),
    "atelectasis": ("{atel_side}肺底盘状肺不张。", "{atel_side}下肺肺不张。", "{atel_side}肺底见线状肺不张。"),
    "atelectasis_hedged": (
        "{atel_side}肺底线状影，肺不张可能。",
        "{atel_side}肺底条索影，考虑肺不张可能。",
        "{atel_side}下肺条片影，不除外肺不张。",
    ),
    "lungs_clear": ("双肺纹理清晰，未见明确实变影。", "双肺野清晰。", "双肺未见明显实质性病变。"),
    "no_consolidation": ("未见明确实变影。", "双肺未见实变。"),
    "no_edema": ("未见肺水肿。", "无肺水肿征象。"),
    "no_nodule": ("未见明确肺结节。", "双肺未见结节影。"),
    # pleura
    "effusion": (
        "{eff_side}{eff_amount}胸腔积液。",
        "{eff_side}胸腔见{eff_amount}积液。",
        "{eff_side}肋膈角变钝，提示{eff_amount}胸腔积液。",
    ),
    "effusion_bilateral": ("双侧{eff_amount}胸腔积液。", "双侧胸腔见{eff_amount}积液。"),
    "pneumothorax": (
        "{ptx_side}{ptx_size}气胸。",
        "{ptx_side}见{ptx_size}气胸。",
        "{ptx_side}胸腔见{ptx_size}气胸影。",
    ),
    "no_effusion_pneumothorax": ("双侧胸腔未见积液及气胸。", "无胸腔积液及气胸。", "未见胸腔积液或气胸。"),
    "no_effusion": ("双侧胸腔未见积液。", "无胸腔积液。"),
    "no_pneumothorax": ("未见气胸。", "无气胸。"),
    # bones
    "fracture": (
        "{frac_side}第{rib}后肋骨折，断端移位。",
        "{frac_side}第{rib}肋骨骨折。",
        "{frac_side}第{rib}后肋见骨折线。",
    ),
    "no_fracture": ("骨性胸廓未见明显异常。", "所见骨质结构完整。", "未见肋骨骨折。"),
    # impression
    "imp_normal": ("心肺未见明显异常。", "心肺膈未见异常。", "胸部未见明显急性病变。"),
    "imp_devices": ("支持装置如上所述。", "支持装置在位。"),
    "imp_pneumothorax": ("{ptx_side}{ptx_size}气胸。",),
    "imp_effusion": ("{eff_side}{eff_amount}胸腔积液。",),
    "imp_effusion_bilateral": ("双侧{eff_amount}胸腔积液。",),
    "imp_consolidation": ("{lobe}实变。",),
    "imp_consolidation_hedged": ("{lobe}实变，考虑肺炎可能。", "{lobe}实变，不除外肺炎。"),
    "imp_edema": ("{edema_sev}肺水肿。",),
    "imp_edema_hedged": ("可疑轻度肺水肿。",),
    "imp_cardiomegaly": ("{cm_sev}心影增大。",),
    "imp_mediastinum_widened": ("纵隔增宽。",),
    "imp_nodule": ("{nod_side}{zone}野{mm}mm结节。",),
    "imp_nodule_hedged": ("{nod_side}{zone}野可疑{mm}mm结节。",),
    "imp_atelectasis": ("{atel_side}肺底肺不张。",),
    "imp_atelectasis_hedged": ("{atel_side}肺底模糊影，肺不张可能。",),
    "imp_fracture": ("{frac_side}第{rib}肋骨骨折。",),
}

ZH_CXR_LEXICON: dict[str, Any] = {
    "words": _CXR_WORDS,
    "templates": _CXR_TEMPLATES,
    "slots": zh_cxr_slots,
    "separator": "",
}
"""The Chinese chest X-ray lexicon: words, templates (same keys as English), slot filler, sentence separator."""

# ---------------------------------------------------------------------------------------------------------------
# Chest CT

_CT_WORDS: dict[str, dict[str, str]] = {
    "lobe": _LOBE,
    "side": _SIDE,
    "lung": {"left": "左肺", "right": "右肺", "bilateral": "双肺"},
    "amount": _AMOUNT,
    "severity": _SEVERITY,
}

_CT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "thorax": ("胸廓对称。", "胸廓两侧对称。"),
    # lung window
    "lungs_clear": (
        "肺窗示双肺纹理清晰，走行自然，肺野透光度良好。",
        "双肺纹理清晰，未见明确实变影。",
        "双肺未见异常密度影。",
    ),
    "emphysema": ("双肺上叶见{emph_sev}肺气肿改变。", "双肺上叶透光度增高，呈{emph_sev}肺气肿表现。"),
    "ground_glass": ("双肺下叶见斑片状磨玻璃密度影。", "双肺下叶散在多发磨玻璃影。"),
    "consolidation": ("{lobe}见斑片状实变影。", "{lobe}可见实变。", "{lobe}见斑片状高密度影，边缘模糊。"),
    "consolidation_hedged": ("{lobe}见斑片状模糊影，考虑感染可能。", "{lobe}见片状影，不除外肺炎。"),
    "nodule": (
        "{nod_lobe}见一实性结节，大小约{mm}mm。",
        "{nod_lobe}可见直径约{mm}mm实性结节。",
        "{nod_lobe}见结节影，直径约{mm}mm。",
    ),
    "nodule_hedged": ("{nod_lobe}可疑{mm}mm结节样密度影。", "{nod_lobe}似见{mm}mm小结节。"),
    "atelectasis": ("{atel_lung}下叶见条片状肺不张。", "{atel_lung}下叶后部见线状肺不张。"),
    "atelectasis_hedged": ("{atel_lung}下叶见条索状密度影，肺不张可能。", "{atel_lung}下叶带状影，不除外肺不张。"),
    "no_nodule": ("双肺未见明确结节。", "未见肺结节。"),
    "no_consolidation": ("未见实变影。", "双肺未见实变。"),
    # hila and airways
    "hila_normal": ("双肺门不大。", "双肺门不大，气管及主支气管通畅。", "气管及支气管通畅。"),
    # heart and mediastinum
    "cardiomegaly": ("心影{cm_sev}增大。", "{cm_sev}心脏增大。", "心脏{cm_sev}增大。"),
    "heart_normal": ("心影及心脏大血管形态正常。", "心脏及大血管形态未见异常。"),
    "mediastinum_normal": ("纵隔内未见明显肿块及肿大淋巴结。", "纵隔未见肿大淋巴结。"),
    # pleura
    "effusion": (
        "{eff_side}{eff_amount}胸腔积液。",
        "{eff_side}胸腔见{eff_amount}积液。",
        "{eff_side}胸腔内见{eff_amount}液性密度影。",
    ),
    "effusion_bilateral": ("双侧{eff_amount}胸腔积液。", "双侧胸腔见{eff_amount}积液。"),
    "pneumothorax": ("{ptx_side}{ptx_size}气胸。", "{ptx_side}见{ptx_size}气胸，肺组织受压。"),
    "pleural_thickening": ("{thick_side}胸膜增厚。", "{thick_side}胸膜局限性增厚。"),
    "pleural_thickening_bilateral": ("双侧胸膜增厚。", "两侧胸膜增厚。"),
    "no_pleural": ("无胸腔积液及胸膜增厚。", "双侧胸腔未见积液，胸膜无增厚。", "无胸腔积液。"),
    "no_pneumothorax": ("未见气胸。", "无气胸。"),
    # impression
    "imp_normal": ("胸部CT平扫未见明显异常。", "双肺未见活动性病变。", "胸部未见异常。"),
    "imp_pneumothorax": ("{ptx_side}{ptx_size}气胸。",),
    "imp_effusion": ("{eff_side}{eff_amount}胸腔积液。",),
    "imp_effusion_bilateral": ("双侧{eff_amount}胸腔积液。",),
    "imp_consolidation": ("{lobe}实变。",),
    "imp_consolidation_hedged": ("{lobe}感染可能，建议治疗后复查。", "{lobe}实变，考虑肺炎可能。"),
    "imp_nodule": ("{nod_lobe}结节，建议随访复查。", "{nod_lobe}实性结节。"),
    "imp_nodule_hedged": ("{nod_lobe}可疑小结节，建议随访复查。",),
    "imp_ground_glass": ("双肺下叶磨玻璃影。",),
    "imp_emphysema": ("{emph_sev}肺气肿。",),
    "imp_atelectasis": ("{atel_lung}下叶肺不张。",),
    "imp_atelectasis_hedged": ("{atel_lung}下叶条索影，肺不张可能。",),
    "imp_cardiomegaly": ("心影增大。", "心脏增大。"),
    "imp_pleural_thickening": ("{thick_side}胸膜增厚。",),
    "imp_pleural_thickening_bilateral": ("双侧胸膜增厚。",),
}

ZH_CT_LEXICON: dict[str, Any] = {"words": _CT_WORDS, "templates": _CT_TEMPLATES, "separator": ""}
"""The Chinese chest CT lexicon (same keys as :mod:`radiolm.data.phantom.grammar_ct`'s English one)."""
