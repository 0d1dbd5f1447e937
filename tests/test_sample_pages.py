"""Sample pages: the studies picked and labelled, the self-contained HTML page (parsed, and rendered by a headless
browser where one is installed), the W&B table rows, and the pictures datasets give (X-ray views, CT slices)."""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from radiolm.data.datamodules.phantom import PhantomCTDataModule, PhantomCXRDataModule
from radiolm.samples import SampleStudy, page_name, render_page, sample_studies, write_page
from radiolm.samples.table import TABLE_COLUMNS, montage, table_rows

HOSTILE = 'Small <script>alert("x")</script> effusion & "quotes".'


class PageParser(HTMLParser):
    """What a browser would see: tags, image sources, text per study section, anything fetched from outside."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.external: list[str] = []
        self.sections: dict[str, list[str]] = {}
        self.disagree_rows = 0
        self._section: str | None = None
        self._in_disagree = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "section":
            self._section = a["id"]
            self.sections[str(a["id"])] = []
        if tag == "img":
            self.images.append(a)
        if tag == "tr" and a.get("class") == "disagree":
            self.disagree_rows += 1
        for key in ("src", "href"):
            if a.get(key) and not str(a[key]).startswith("data:"):
                self.external.append(str(a[key]))

    def handle_data(self, data: str) -> None:
        if self._section is not None:
            self.sections[self._section].append(data)

    def text(self, section: str) -> str:
        return " ".join(self.sections[section])


def parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    return parser


def decode_png(src: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    data = base64.b64decode(src[len(prefix) :])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.fixture()
def cxr(phantom_root: Path) -> PhantomCXRDataModule:
    dm = PhantomCXRDataModule(root=str(phantom_root), n=24, image_size=64, num_workers=0, validate_images=False)
    dm.setup("test")
    return dm


def records_of(dm: Any, split: str = "test") -> list[dict[str, Any]]:
    """Records as the module keeps them; the first study (by id) gets a hostile, mislabelled prediction."""
    dataset = dm.datasets[split]
    records = [
        {"id": e["id"], "prediction": "No acute cardiopulmonary process.", "reference": r, "language": "en"}
        for e, r in zip(dataset.entries, dataset.reports(), strict=True)
    ]
    first = min(records, key=lambda r: r["id"])
    first["prediction"] = HOSTILE
    return list(reversed(records))  # not in id order: the page sorts


def test_sample_studies_pick_sorted_ids_with_views_and_labels(cxr: PhantomCXRDataModule) -> None:
    records = records_of(cxr)
    studies = sample_studies(records, cxr.datasets["test"], n=2, max_side=48)
    assert [s.id for s in studies] == sorted(r["id"] for r in records)[:2]
    first = studies[0]
    assert [caption for caption, _ in first.pictures] == ["frontal", "lateral"]
    assert all(max(image.size) <= 48 and image.mode == "L" for _, image in first.pictures)
    # the raw stored pixels, shrunk (not the normalised model input): the same as the file, resized
    dataset = cxr.datasets["test"]
    stored = Image.open(cxr.image_root / dataset.entries[dataset.index_of(first.id)]["image_path"][0]).convert("L")
    shown = np.asarray(first.pictures[0][1], float)
    assert np.abs(shown - np.asarray(stored.resize((48, 48)), float)).mean() < 8
    assert first.prediction_labels is not None and first.reference_labels is not None
    assert first.prediction_labels[9] == 1  # "Small ... effusion": Pleural Effusion positive
    assert "Pleural Effusion" in first.disagreements() or first.reference_labels[9] == 1


def test_chinese_reports_get_no_labels() -> None:
    calls: list[list[str]] = []

    def labeler(texts: Any) -> list[list[Any]]:
        calls.append(list(texts))
        return [[None] * 13 + [1] for _ in texts]

    records = [
        {"id": "b", "prediction": "心影增大。", "reference": "心影正常。", "language": "zh"},
        {"id": "a", "prediction": "Cardiomegaly.", "reference": "Normal heart.", "language": "en"},
    ]
    studies = sample_studies(records, None, n=2, labeler=labeler)
    assert calls == [["Cardiomegaly.", "Normal heart."]]  # the English study only
    zh = studies[1]
    assert zh.id == "b" and not zh.labeled and zh.label_rows() == [] and zh.pictures == []
    parsed = parse(render_page(studies, "t"))
    assert "no labels (zh" in parsed.text("b") and "No Finding" not in parsed.text("b")
    assert 'lang="zh"' in render_page(studies, "t")


def test_page_is_self_contained_escaped_and_shows_images_and_reports(cxr: PhantomCXRDataModule, tmp_path: Path) -> None:
    records = records_of(cxr)
    studies = sample_studies(records, cxr.datasets["test"], n=3)
    path = write_page(tmp_path / page_name("test", 1), studies, "runs/demo/version_0: test samples, epoch 1")
    assert path.name == "samples-test-1.html"
    html = path.read_text(encoding="utf-8")
    parsed = parse(html)
    assert "script" not in parsed.tags and not parsed.external  # escaped text; nothing fetched
    assert "&lt;script&gt;" in html and "&amp;" in html
    assert len(parsed.images) == 6  # 3 studies x 2 views
    for img in parsed.images:
        image = decode_png(str(img["src"]))
        assert image.size == (64, 64) and np.asarray(image).std() > 5  # a picture, not a blank
    for study in studies:
        text = parsed.text(study.id)
        assert study.prediction in text and study.reference in text  # both reports, unescaped by the parser
    assert parsed.disagree_rows == sum(len(s.disagreements()) for s in studies) > 0


def test_wandb_rows_put_the_views_side_by_side(cxr: PhantomCXRDataModule) -> None:
    import wandb

    studies = sample_studies(records_of(cxr), cxr.datasets["test"], n=2)
    rows = table_rows(studies)
    assert len(rows) == 2 and all(len(row) == len(TABLE_COLUMNS) for row in rows)
    assert isinstance(rows[0][1], wandb.Image) and "frontal | lateral" in rows[0][1]._caption
    assert rows[0][2] == HOSTILE and rows[0][3] == studies[0].reference
    strip = montage(studies[0].pictures, gap=4)
    assert strip is not None and strip.size == (64 + 4 + 64, 64)
    assert table_rows([SampleStudy("x", "p", "r", "zh")])[0][1] is None


def test_ct_pictures_are_axial_slices_as_stored(tmp_path: Path) -> None:
    dm = PhantomCTDataModule(root=str(tmp_path / "ct"), n=6, size=[8, 32, 32], num_workers=0)
    dm.prepare_data()
    dm.setup("test")
    dataset = dm.datasets["test"]
    pictures = dataset.pictures(0)
    assert [c for c, _ in pictures] == ["axial 3/8", "axial 4/8", "axial 6/8", "axial 7/8"]
    assert all(image.size == (32, 32) and image.mode == "L" for _, image in pictures)
    assert min(np.asarray(image).min() for _, image in pictures) < 30  # air is dark, body bright (min-max)
    assert max(np.asarray(image).max() for _, image in pictures) > 200
    study = sample_studies([{"id": dataset.entries[0]["id"], "prediction": "p", "reference": "r"}], dataset, n=1)[0]
    assert len(study.pictures) == 4 and len(parse(render_page([study], "ct")).images) == 4


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no headless browser (apt-get install chromium)")
def test_page_renders_in_a_headless_browser(cxr: PhantomCXRDataModule, tmp_path: Path) -> None:
    """Chromium opens the file (no server), draws the pictures (dark X-ray pixels on the white page) and the text."""
    path = write_page(tmp_path / "samples-test-0.html", sample_studies(records_of(cxr), cxr.datasets["test"], n=2), "t")
    shot = tmp_path / "shot.png"
    args = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={shot}",
            "--window-size=900,700", path.as_uri()]  # fmt: skip
    subprocess.run(args, check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (700, 900)
    mid_gray = ((pixels > 60) & (pixels < 200)).sum(axis=1) > 100  # rows through X-ray tissue
    runs = np.split(np.arange(len(mid_gray)), np.nonzero(np.diff(mid_gray))[0] + 1)
    block = max((r for r in runs if mid_gray[r[0]]), key=len)
    assert len(block) > 120, "no pictures drawn"  # the 192 px views (a line of text is < 20 px)
    assert ((pixels[block[-1] + 1 :] < 60).sum(axis=1) > 5).sum() > 30  # lines of text under the pictures
