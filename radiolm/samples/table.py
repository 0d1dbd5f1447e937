"""Sample studies as a W&B table: one row per study, its pictures in a ``wandb.Image`` column.

W&B shows one image per cell, so a study's views (or CT slices) are put side by side into one picture, captioned
with their names. ``wandb`` is imported only when a table is built.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from radiolm.samples.studies import SampleStudy, label_summary

__all__ = ["TABLE_COLUMNS", "montage", "table_rows", "wandb_table"]

TABLE_COLUMNS = ["id", "images", "generated", "reference", "generated labels", "reference labels", "disagree"]
"""Columns of the sample table (``images`` holds a ``wandb.Image``, or ``None`` for a study without pictures)."""


def montage(pictures: list[tuple[str, Image.Image]], gap: int = 4) -> Image.Image | None:
    """The pictures side by side on black, scaled to the height of the tallest; ``None`` for no pictures."""
    if not pictures:
        return None
    height = max(image.height for _, image in pictures)
    scaled = [image.resize((max(1, round(image.width * height / image.height)), height)) for _, image in pictures]
    mode = "RGB" if any(image.mode != "L" for image in scaled) else "L"
    canvas = Image.new(mode, (sum(image.width for image in scaled) + gap * (len(scaled) - 1), height))
    x = 0
    for image in scaled:
        canvas.paste(image.convert(mode), (x, 0))
        x += image.width + gap
    return canvas


def table_rows(studies: list[SampleStudy]) -> list[list[Any]]:
    """Rows in :data:`TABLE_COLUMNS` order, the ``images`` cell a ``wandb.Image`` (or ``None``)."""
    import wandb

    rows: list[list[Any]] = []
    for study in studies:
        picture = montage(study.pictures)
        caption = " | ".join(caption for caption, _ in study.pictures)
        cell = wandb.Image(picture, caption=f"{study.id}: {caption}") if picture is not None else None
        rows.append([study.id, cell, study.prediction, study.reference, *label_summary(study)])
    return rows


def wandb_table(studies: list[SampleStudy]) -> Any:
    """A ``wandb.Table`` of the studies (:data:`TABLE_COLUMNS`)."""
    import wandb

    return wandb.Table(columns=list[str | int](TABLE_COLUMNS), data=table_rows(studies))
