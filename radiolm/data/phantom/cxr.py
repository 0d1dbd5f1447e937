"""Phantom chest radiographs whose pixels decide the report: the suite's CPU end-to-end benchmark.

One study is a :class:`StudySpec` (patient size, heart size and the findings, from :mod:`radiolm.data.phantom.specs`),
sampled by :func:`sample_study`. :func:`render_frontal` and :func:`render_lateral` (from
:mod:`radiolm.data.phantom.cxr_render`) draw it, :func:`write_report` (from :mod:`radiolm.data.phantom.grammar_cxr`)
describes it and :func:`spec_labels` gives its CheXpert-14 labels.
:func:`generate_cxr` writes a data set in the R2Gen IU-Xray on-disk format. See ``docs/phantom.md``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from radiolm.data.formats.labels_csv import write_labels_csv
from radiolm.data.labels import CHEXPERT_14
from radiolm.data.phantom.cxr_render import _LOBE_FRONTAL, render_frontal, render_lateral
from radiolm.data.phantom.grammar_cxr import check_language, spec_labels, write_report
from radiolm.data.phantom.specs import StudySpec

__all__ = ["generate_cxr", "sample_study"]

# Probability that a study has each finding; findings are sampled independently (about 35 % of studies have
# no pathology). Devices are sampled one by one.
_PREVALENCE = {
    "cardiomegaly": 0.20,
    "mediastinum_widened": 0.05,
    "effusion": 0.15,
    "pneumothorax": 0.07,
    "consolidation": 0.12,
    "nodule": 0.10,
    "edema": 0.10,
    "atelectasis": 0.12,
    "fracture": 0.06,
    "ett": 0.08,
    "cvc": 0.12,
    "pacemaker": 0.06,
}
_CTR = {None: (0.38, 0.46), "mild": (0.53, 0.57), "moderate": (0.58, 0.62), "severe": (0.63, 0.67)}
_ZONE_HEIGHT = {"upper": (0.25, 0.32), "mid": (0.41, 0.49), "lower": (0.55, 0.60)}


def _pick(rng: np.random.Generator, options: tuple[str, ...], p: tuple[float, ...] | None = None) -> str:
    """One of ``options`` (with probabilities ``p``)."""
    return str(options[rng.choice(len(options), p=p)])


def _has(rng: np.random.Generator, finding: str) -> bool:
    """Whether a study has ``finding``, with its prevalence."""
    return bool(rng.random() < _PREVALENCE[finding])


def sample_study(rng: np.random.Generator) -> StudySpec:
    """Sample one study: every finding independently with its prevalence, then its details and hedges.

    Args:
        rng: the study's generator; the same state gives the same spec.

    Returns:
        The sampled :class:`StudySpec` (floats rounded to 3 decimals, so the JSON copy is exact).
    """
    spec = StudySpec(body_scale=round(float(rng.uniform(0.9, 1.06)), 3))
    hedges = []
    if _has(rng, "cardiomegaly"):
        spec.cardiomegaly = _pick(rng, ("mild", "moderate", "severe"), (0.5, 0.3, 0.2))
    spec.ctr = round(float(rng.uniform(*_CTR[spec.cardiomegaly])), 3)
    spec.mediastinum_widened = _has(rng, "mediastinum_widened")
    if _has(rng, "effusion"):
        spec.effusion_side = _pick(rng, ("left", "right", "bilateral"), (0.35, 0.35, 0.3))
        spec.effusion_amount = _pick(rng, ("small", "moderate", "large"), (0.45, 0.35, 0.2))
    if _has(rng, "pneumothorax"):
        spec.pneumothorax_side = _pick(rng, ("left", "right"))
        spec.pneumothorax_size = _pick(rng, ("small", "large"), (0.6, 0.4))
    if _has(rng, "consolidation"):
        spec.consolidation_lobe = _pick(rng, tuple(_LOBE_FRONTAL))
        if rng.random() < 0.5:
            hedges.append("pneumonia")
    if _has(rng, "nodule"):
        spec.nodule_mm = int(rng.integers(8, 31))
        spec.nodule_side = _pick(rng, ("left", "right"))
        spec.nodule_zone = _pick(rng, tuple(_ZONE_HEIGHT))
        spec.nodule_x = round(float(rng.uniform(0.45, 0.75)), 3)
        spec.nodule_v = round(float(rng.uniform(*_ZONE_HEIGHT[spec.nodule_zone])), 3)
        if spec.nodule_mm < 12 and rng.random() < 0.4:
            hedges.append("nodule")
    if _has(rng, "edema"):
        spec.edema = _pick(rng, ("mild", "moderate"), (0.6, 0.4))
        spec.kerley_lines = bool(rng.random() < 0.5)
        if spec.edema == "mild" and rng.random() < 0.4:
            hedges.append("edema")
    if _has(rng, "atelectasis"):
        spec.atelectasis_side = _pick(rng, ("left", "right"))
        if rng.random() < 0.3:
            hedges.append("atelectasis")
    if _has(rng, "fracture"):
        spec.fracture_side = _pick(rng, ("left", "right"))
        spec.fracture_rib = int(rng.integers(4, 9))
    spec.devices = tuple(device for device in ("ett", "cvc", "pacemaker") if _has(rng, device))
    spec.hedges = tuple(hedges)
    return spec


# ----------------------------------------------------------------------------------------------------------------
# Data set writer

_VIEWS = ("frontal", "lateral")


def _check_arguments(
    n: int, seed: int, views: int, image_size: int, split: tuple[float, float, float], language: str
) -> None:
    """Raise a clear error for a bad argument of :func:`generate_cxr` before anything is written."""
    if n < 1:
        raise ValueError(f"n={n}: the phantom data set needs at least one study")
    if seed < 0:
        raise ValueError(f"seed={seed}: use a non-negative integer seed")
    if views not in (1, 2):
        raise ValueError(f"views={views}: use 1 (frontal) or 2 (frontal + lateral)")
    if image_size < 32:
        raise ValueError(f"image_size={image_size}: use at least 32 pixels")
    if len(split) != 3 or min(split) < 0 or abs(sum(split) - 1.0) > 1e-6:
        raise ValueError(f"split={split}: give three non-negative fractions (train, val, test) that sum to 1")
    check_language(language)


def _prepare(out: Path) -> None:
    """Empty ``out`` of a previous phantom data set (any other content is an error) and mark it as one.

    ``phantom.jsonl`` is written first (empty) so that an interrupted run is still recognised and replaced.
    """
    if out.exists() and any(out.iterdir()):
        if not (out / "phantom.jsonl").is_file():
            raise FileExistsError(
                f"{out} is not empty and holds no phantom data set (no phantom.jsonl); choose an empty or new folder"
            )
        shutil.rmtree(out / "images", ignore_errors=True)
        for name in ("annotation.json", "labels.csv"):
            (out / name).unlink(missing_ok=True)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "phantom.jsonl").write_text("")


def _assign_splits(keys: np.ndarray, split: tuple[float, float, float]) -> list[str]:
    """Exact split sizes; the studies with the smallest keys go to test, the next ones to val.

    Each study's key comes from its own generator, so growing ``n`` moves few studies between splits.
    """
    n = len(keys)
    sizes = [round(n * fraction) for fraction in split[1:]]
    sizes = [max(size, 1) if fraction > 0 and n >= 3 else size for size, fraction in zip(sizes, split[1:], strict=True)]
    names = np.array(["train"] * n, dtype=object)
    order = np.argsort(keys, kind="stable")
    names[order[: sizes[1]]] = "test"
    names[order[sizes[1] : sizes[1] + sizes[0]]] = "val"
    return [str(name) for name in names]


def _findings(spec: StudySpec) -> set[str]:
    """Names of the findings present in a study, devices included (for the summary counts)."""
    return spec.present_findings() | set(spec.devices)


def _write_study(
    study_id: str, seed: int, index: int, views: int, size: int, language: str, images: Path
) -> tuple[StudySpec, dict, float]:
    """Sample, draw and describe study ``index``; return its spec, annotation entry and split key.

    Every study has its own seed sequence ``(seed, index)``, split into independent streams for the split key,
    the spec, each view and the report, so ``n`` and ``views`` change nothing in the other streams.
    """
    streams = np.random.SeedSequence(seed, spawn_key=(index,)).spawn(5)
    split_rng, spec_rng, frontal_rng, lateral_rng, report_rng = (np.random.default_rng(s) for s in streams)
    spec = sample_study(spec_rng)
    renderers = ((render_frontal, frontal_rng), (render_lateral, lateral_rng))[:views]
    (images / study_id).mkdir(exist_ok=True)
    for view, (render, rng) in enumerate(renderers):
        Image.fromarray(render(spec, rng, size)).save(images / study_id / f"{view}.png", compress_level=1)
    findings, impression = write_report(spec, report_rng, language)
    entry = {
        "id": study_id,
        "report": findings,
        "findings": findings,
        "impression": impression,
        "image_path": [f"{study_id}/{view}.png" for view in range(views)],
        "views": list(_VIEWS[:views]),
    }
    return spec, entry, float(split_rng.random())


def _write_tables(out: Path, specs: list[StudySpec], entries: list[dict], splits: list[str]) -> list[list[int]]:
    """Write ``annotation.json``, ``labels.csv`` and ``phantom.jsonl``; return the labels."""
    annotation: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    for entry, name in zip(entries, splits, strict=True):
        annotation[name].append({**entry, "split": name})
    (out / "annotation.json").write_text(json.dumps(annotation, indent=1) + "\n")
    labels = [spec_labels(spec) for spec in specs]
    write_labels_csv(out / "labels.csv", ((entry["id"], row) for entry, row in zip(entries, labels, strict=True)))
    with (out / "phantom.jsonl").open("w") as file:
        for entry, spec in zip(entries, specs, strict=True):
            file.write(json.dumps({"id": entry["id"], **asdict(spec)}) + "\n")
    return labels


def _summary(out: Path, specs: list[StudySpec], splits: list[str], labels: list[list[int]]) -> dict:
    """Counts per split, per finding and per CheXpert observation."""
    counts = np.array(labels)
    present = [_findings(spec) for spec in specs]
    findings = {name: sum(name in p for p in present) for name in _PREVALENCE}
    return {
        "out": str(out),
        "n": {name: splits.count(name) for name in ("train", "val", "test")},
        "findings": {**findings, "normal": int((counts[:, -1] == 1).sum())},
        "labels": {
            name: {"positive": int((counts[:, i] == 1).sum()), "uncertain": int((counts[:, i] == -1).sum())}
            for i, name in enumerate(CHEXPERT_14)
        },
    }


def generate_cxr(
    out: str | Path,
    n: int,
    seed: int = 0,
    views: int = 2,
    image_size: int = 256,
    split: tuple[float, float, float] = (0.7, 0.1, 0.2),
    language: str = "en",
    progress: bool = True,
) -> dict:
    """Write a phantom chest X-ray data set in the R2Gen on-disk format.

    Files under ``out``: ``annotation.json`` (``{"train": [...], "val": [...], "test": [...]}``, R2Gen IU-Xray
    style, ``report`` is the findings section), ``images/<id>/0.png`` (frontal) and ``1.png`` (lateral),
    ``labels.csv`` (CheXpert-14) and ``phantom.jsonl`` (the :class:`StudySpec` of every study). The same arguments
    give byte-identical files, and the first ``k`` studies of ``n > k`` equal those of ``n = k``.

    Args:
        out: output folder: new, empty, or a previous phantom data set (which is replaced).
        n: number of studies.
        seed: non-negative base seed.
        views: 1 (frontal) or 2 (frontal + lateral).
        image_size: square image size in pixels.
        split: train, val, test fractions; split sizes are rounded, val and test get at least one study when
            their fraction is positive and ``n >= 3``.
        language: report language; only ``"en"`` so far.
        progress: show a tqdm bar when tqdm is installed.

    Returns:
        ``{"out": str, "n": {split: count}, "findings": {finding: count, "normal": count}, "labels":
        {observation: {"positive": count, "uncertain": count}}}``; ``normal`` counts studies with No Finding.

    Raises:
        ValueError: for a bad argument.
        NotImplementedError: for a language other than ``"en"``.
        FileExistsError: when ``out`` holds something other than a phantom data set.
    """
    _check_arguments(n, seed, views, image_size, split, language)
    out = Path(out)
    _prepare(out)
    specs, entries, keys = [], [], []
    for index in tqdm(range(n), desc="phantom CXR", unit="study", disable=not progress):
        study_id = f"phantom_{index:05d}"
        spec, entry, key = _write_study(study_id, seed, index, views, image_size, language, out / "images")
        specs.append(spec)
        entries.append(entry)
        keys.append(key)
    splits = _assign_splits(np.array(keys), split)
    labels = _write_tables(out, specs, entries, splits)
    return _summary(out, specs, splits, labels)
