"""RadGraph F1 on hand-made annotations with hand-computed answers; the model loader; RadCliQ-v1 by hand."""

from __future__ import annotations

import importlib.machinery
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from radiolm.errors import MissingAssetError
from radiolm.metrics import radgraph as rg
from radiolm.metrics.radgraph import (
    RADCLIQ_V1,
    compute_radcliq,
    compute_radgraph,
    radgraph_f1,
    radgraph_f1_per_report,
)


def _graph(*entities: tuple[str, str, list[list[str]]]) -> dict[str, Any]:
    return {
        "entities": {
            str(i): {"tokens": t, "label": lab, "relations": rel} for i, (t, lab, rel) in enumerate(entities, start=1)
        }
    }


# Reference: "Left pleural effusion. No pneumothorax."
REF = _graph(
    ("effusion", "OBS-DP", [["located_at", "2"]]),
    ("pleural", "ANAT-DP", []),
    ("left", "ANAT-DP", [["modify", "2"]]),
    ("pneumothorax", "OBS-DA", []),
)
# Prediction: effusion without its location, "left" attached to the effusion, pneumothorax present, an extra heart.
PRED = _graph(
    ("effusion", "OBS-DP", []),
    ("pleural", "ANAT-DP", []),
    ("left", "ANAT-DP", [["modify", "1"]]),
    ("pneumothorax", "OBS-DP", []),
    ("heart", "ANAT-DP", []),
)


def test_hand_computed_pair() -> None:
    scores = radgraph_f1_per_report([PRED], [REF])
    # simple: (effusion, OBS-DP), (pleural, ANAT-DP), (left, ANAT-DP) match: P = 3/5, R = 3/4, F1 = 2/3.
    assert scores["radgraph_simple"] == pytest.approx([2 / 3])
    # partial: pleural and (left, ANAT-DP, True) match (effusion lost its relation): P = 2/5, R = 2/4, F1 = 4/9.
    assert scores["radgraph_partial"] == pytest.approx([4 / 9])
    # complete: only (pleural, ANAT-DP) matches; left modifies effusion, not pleural: P = 1/5, R = 1/4, F1 = 2/9.
    assert scores["radgraph_complete"] == pytest.approx([2 / 9])
    # combined (RadCliQ): entity F1 2/3, relation F1 0 (no relation triple matches) -> 1/3.
    assert scores["radgraph_combined"] == pytest.approx([1 / 3])


def test_identical_empty_and_means() -> None:
    empty = {"entities": {}}
    scores = radgraph_f1_per_report([PRED, REF, empty, empty], [REF, REF, REF, empty])
    assert scores["radgraph_simple"] == pytest.approx([2 / 3, 1.0, 0.0, 0.0])
    assert scores["radgraph_complete"] == pytest.approx([2 / 9, 1.0, 0.0, 0.0])
    assert scores["radgraph_combined"] == pytest.approx([1 / 3, 1.0, 0.0, 0.0])
    means = radgraph_f1([PRED, REF, empty], [REF, REF, REF])
    assert means == pytest.approx({"radgraph_simple": 5 / 9, "radgraph_partial": 13 / 27, "radgraph_complete": 11 / 27})


def test_case_and_multiple_relations() -> None:
    """complete lower-cases the tuples of related entities (as the radgraph package does); simple does not."""
    ref = _graph(("opacity", "OBS-DP", [["located_at", "2"], ["located_at", "3"]]), ("left", "ANAT-DP", []),
                 ("base", "ANAT-DP", []))  # fmt: skip
    pred = _graph(("Opacity", "OBS-DP", [["located_at", "2"]]), ("left", "ANAT-DP", []), ("base", "ANAT-DP", []))
    scores = radgraph_f1_per_report([pred], [ref])
    assert scores["radgraph_simple"] == pytest.approx([2 / 3])  # "Opacity" != "opacity": P = R = 2/3
    assert scores["radgraph_partial"] == pytest.approx([2 / 3])
    # complete: ref {(opacity, left), (opacity, base), left, base}, pred {(opacity, left), left, base}: 3 / 3, 3 / 4.
    assert scores["radgraph_complete"] == pytest.approx([2 * 1 * 0.75 / 1.75])


def test_bad_annotations() -> None:
    with pytest.raises(ValueError, match="1 predicted annotations but 2"):
        radgraph_f1_per_report([REF], [REF, REF])
    dangling = _graph(("effusion", "OBS-DP", [["located_at", "9"]]))
    with pytest.raises(ValueError, match="malformed annotation in pair 0"):
        radgraph_f1_per_report([dangling], [REF])
    with pytest.raises(ValueError, match="no annotation pairs"):
        radgraph_f1([], [])


def test_package_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rg.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingAssetError, match="pip install radgraph"):
        compute_radgraph(["No effusion."], ["No effusion."])


class _FakeRadGraph:
    """Stands in for ``radgraph.RadGraph``: records how it was built, annotates from a table."""

    built: ClassVar[list[tuple[str, str | None]]] = []
    table: ClassVar[dict[str, Any]] = {"pred": PRED, "ref": REF}

    def __init__(self, model_type: str, model_cache_dir: str | None = None) -> None:
        if model_type == "radgraph-xl" and model_cache_dir is None:
            raise Exception("Cannot download the file")  # what the package raises offline
        self.built.append((model_type, model_cache_dir))

    def __call__(self, texts: list[str]) -> dict[str, Any]:
        return {str(i): self.table[t] for i, t in enumerate(texts) if t in self.table}


@pytest.fixture()
def fake_package(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_FakeRadGraph]]:
    module = types.ModuleType("radgraph")
    module.__spec__ = importlib.machinery.ModuleSpec("radgraph", None)
    module.RadGraph = _FakeRadGraph  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "radgraph", module)
    rg._radgraph_model.cache_clear()
    _FakeRadGraph.built = []
    yield _FakeRadGraph
    rg._radgraph_model.cache_clear()


def test_compute_radgraph_through_the_package(
    fake_package: type[_FakeRadGraph], caplog: pytest.LogCaptureFixture
) -> None:
    means = compute_radgraph(["pred", "ref", ""], ["ref", "ref", "ref"])
    assert means == pytest.approx({"radgraph_simple": 5 / 9, "radgraph_partial": 13 / 27, "radgraph_complete": 11 / 27})
    assert fake_package.built == [("radgraph", None)]
    assert rg.radgraph_scores(["unknown text"], ["ref"])["radgraph_simple"] == [0.0]
    assert "failed on 1 of 2 reports" in caplog.text


def test_model_folders(fake_package: type[_FakeRadGraph], tmp_path: Path) -> None:
    for name in ("my-radgraph", "radgraph-xl"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
        (tmp_path / name / "weights.th").write_bytes(b"")
    rg.load_radgraph(str(tmp_path / "radgraph-xl"))
    assert fake_package.built[-1] == ("radgraph-xl", str(tmp_path.resolve()))
    rg.load_radgraph(str(tmp_path / "my-radgraph"))
    model_type, cache_dir = fake_package.built[-1]
    assert model_type == "radgraph" and (Path(str(cache_dir)) / "radgraph").resolve() == (tmp_path / "my-radgraph")
    with pytest.raises(MissingAssetError, match=r"config\.json and weights\.th"):
        rg.load_radgraph(str(tmp_path / "absent"))
    with pytest.raises(MissingAssetError, match="Cannot download"):
        rg.load_radgraph("radgraph-xl")


def test_radcliq_by_hand() -> None:
    mean, scale = RADCLIQ_V1["mean"], RADCLIQ_V1["scale"]
    intercept = 2.46655256e-10

    def at(z: tuple[float, float, float, float]) -> list[float]:
        x = [m + s * k for m, s, k in zip(mean, scale, z, strict=True)]  # order radgraph, bertscore, semb, bleu
        return [x[0]], [x[1]], [x[2]], [x[3]]

    rad, bert, semb, bleu = at((0, 0, 0, 0))
    assert compute_radcliq(bleu, bert, semb, rad) == pytest.approx([intercept], abs=1e-12)
    rad, bert, semb, bleu = at((1, 0, 0, 0))
    assert compute_radcliq(bleu, bert, semb, rad) == pytest.approx([-0.377083683 + intercept], abs=1e-9)
    rad, bert, semb, bleu = at((1, -1, 2, 0.5))
    expected = -0.377083683 + 0.370300100 - 2 * 0.252616218 + 0.5 * 4.31504841e-12 + intercept
    assert compute_radcliq(bleu, bert, semb, rad) == pytest.approx([expected], abs=1e-9)
    # A perfect report (all four metrics 1) scores lower (better) than a poor one (all 0).
    good, poor = compute_radcliq([1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0])
    assert good == pytest.approx(-1.440690, abs=1e-5) and poor == pytest.approx(2.450143, abs=1e-5)


def test_radcliq_bad_input() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        compute_radcliq([0.1], [0.1, 0.2], [0.1], [0.1])
    with pytest.raises(ValueError, match="semb has non-finite values at reports \\[1\\]"):
        compute_radcliq([0.1, 0.1], [0.1, 0.1], [0.1, float("nan")], [0.1, 0.1])
