"""Sample studies as one static HTML page: ``samples-<stage>-<epoch>.html`` next to the predictions file.

The page is self-contained, so it opens from the run folder in any browser without a server and survives being
copied or mailed: pictures are inline base64 PNGs, the style is inline, and nothing is fetched (no scripts, fonts or
links). Every text is HTML-escaped. Per study it shows the pictures (X-ray views or CT slices), the generated and the
reference report side by side, and the CheXpert-14 labels of both with the observations they disagree on marked.
"""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path

from PIL import Image

from radiolm.samples.studies import LABEL_WORDS, SampleStudy, label_summary

__all__ = ["page_name", "png_data_uri", "render_page", "write_page"]

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; background: #fff; }
h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin: 0 0 .5em; font-family: monospace; }
.study { border: 1px solid #ccc; border-radius: 6px; padding: 1em; margin: 1em 0; }
.pictures { display: flex; flex-wrap: wrap; gap: .75em; margin-bottom: .75em; }
figure { margin: 0; text-align: center; } figcaption { font-size: .8em; color: #555; }
img { display: block; width: 192px; height: auto; image-rendering: pixelated; background: #000; }
.reports { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }
.report h3 { font-size: .9em; margin: 0 0 .3em; text-transform: uppercase; color: #555; }
.report p { margin: 0; white-space: pre-wrap; }
.generated { background: #eef5ff; padding: .5em; } .reference { background: #f3f3f3; padding: .5em; }
table { border-collapse: collapse; margin-top: .75em; font-size: .85em; }
th, td { border: 1px solid #ddd; padding: .15em .5em; text-align: left; }
tr.disagree td { background: #ffe3e0; font-weight: bold; }
.note { color: #666; font-size: .85em; }
"""
DISAGREE = ' class="disagree"'


def page_name(stage: str, epoch: int) -> str:
    """``samples-<stage>-<epoch>.html``, named like ``predictions-<stage>-<epoch>.jsonl``."""
    return f"samples-{stage}-{epoch}.html"


def png_data_uri(image: Image.Image) -> str:
    """``data:image/png;base64,...`` of ``image``."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _study_html(study: SampleStudy) -> str:
    lang = escape(study.language, quote=True)
    figures = "".join(
        f'<figure><img src="{png_data_uri(image)}" alt="{escape(f"{study.id} {caption}", quote=True)}" '
        f'width="{image.width}" height="{image.height}"><figcaption>{escape(caption)}</figcaption></figure>'
        for caption, image in study.pictures
    )
    pictures = f'<div class="pictures">{figures}</div>' if figures else '<p class="note">no pictures</p>'
    reports = (
        '<div class="reports">'
        f'<div class="report generated"><h3>Generated</h3><p lang="{lang}">{escape(study.prediction)}</p></div>'
        f'<div class="report reference"><h3>Reference</h3><p lang="{lang}">{escape(study.reference)}</p></div>'
        "</div>"
    )
    if study.labeled:
        rows = "".join(
            f"<tr{DISAGREE if disagree else ''}><td>{escape(name)}</td><td>{LABEL_WORDS[p]}</td>"
            f"<td>{LABEL_WORDS[r]}</td></tr>"
            for name, p, r, disagree in study.label_rows()
        )
        disagree = escape(label_summary(study)[2])
        labels = (
            "<table><tr><th>CheXpert observation</th><th>generated</th><th>reference</th></tr>"
            f'{rows}</table><p class="note">disagree: {disagree}</p>'
        )
    else:
        labels = f'<p class="note labels">{escape(label_summary(study)[0])}</p>'
    heading = f'<section class="study" id="{escape(study.id, quote=True)}"><h2>{escape(study.id)}</h2>'
    return f"{heading}{pictures}{reports}{labels}</section>"


def render_page(studies: list[SampleStudy], title: str, note: str = "") -> str:
    """The HTML page of ``studies``.

    Args:
        studies: The sample studies, in the order shown.
        title: Heading and window title (e.g. ``runs/demo/version_0: test, epoch 1``).
        note: A line under the heading (how many studies of how many, which rule chose them).
    """
    body = "".join(_study_html(study) for study in studies)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body><h1>{escape(title)}</h1>"
        f'<p class="note">{escape(note)} Labels: the suite\'s rule-based CheXpert-14 labeler; highlighted rows are '
        "positive in one report and not in the other (uncertain counts as negative, as clinical efficacy counts "
        f"them).</p>\n{body}\n</body></html>\n"
    )


def write_page(path: str | Path, studies: list[SampleStudy], title: str, note: str = "") -> Path:
    """Write :func:`render_page` to ``path`` (UTF-8) and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_page(studies, title, note), encoding="utf-8")
    return path
