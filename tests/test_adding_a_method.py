"""docs/adding_a_method.md: its code blocks are the example's real files, and the example runs through the CLI.

The example method is ``docs/examples/pooled_prefix.py``; the fixture ``as_a_sixth_method`` does what the doc's
step 1 does in a checkout (the file as ``radiolm/methods/pooled_prefix.py``, its name in ``radiolm.methods``), so
the experiment names it ``radiolm.methods.PooledPrefix`` as the doc says.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

import radiolm.methods
from radiolm.batch import ReportBatch
from radiolm.cli import main
from radiolm.errors import RadioLMError
from radiolm.parts.language_model import LanguageModel
from radiolm.parts.vision import VisionEncoder
from radiolm.parts.visual_prefix import visual_prefix

from .conftest import CONF, REPO

DOC = REPO / "docs" / "adding_a_method.md"
EXAMPLES = REPO / "docs" / "examples"


def test_the_doc_shows_the_example_files_as_they_are() -> None:
    doc = DOC.read_text()
    for path, language in (
        (EXAMPLES / "pooled_prefix.py", "python"),
        (EXAMPLES / "pooled_prefix_phantom.yaml", "yaml"),
        (CONF / "pooled_prefix_phantom.yaml", "yaml"),
    ):
        assert f"```{language}\n{path.read_text()}```" in doc, f"{DOC.name} must show {path.relative_to(REPO)} as it is"
    assert "docs/adding_a_method.md" in (REPO / "README.md").read_text()


@pytest.fixture()
def as_a_sixth_method(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """``radiolm.methods.PooledPrefix`` for this test: the module under its suite name and in the lazy table."""
    name = "radiolm.methods.pooled_prefix"
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / "pooled_prefix.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    monkeypatch.setitem(radiolm.methods._MODULES, "PooledPrefix", "pooled_prefix")
    yield module
    vars(radiolm.methods).pop("PooledPrefix", None)  # the lazy look-up caches the name


def test_prefix_has_num_tokens_and_is_r2gengpt_when_nothing_is_pooled(
    as_a_sixth_method: ModuleType, tiny_llm: Path
) -> None:
    torch.manual_seed(0)
    encoder = VisionEncoder("test_resnet", backend="timm", pretrained=False, image_size=64)
    lm = LanguageModel(str(tiny_llm))
    images = torch.randn(2, 2, 3, 64, 64)
    view_mask = torch.tensor([[True, True], [True, False]])
    batch = ReportBatch(ids=["a", "b"], reports=["Clear.", "Effusion."], labels=torch.zeros(2, 14), images=images,
                        view_mask=view_mask, views=[["frontal", "lateral"], ["frontal"]], domain=["cxr"] * 2,
                        language=["en"] * 2)  # fmt: skip
    model = as_a_sixth_method.PooledPrefix(encoder, lm, num_tokens=3).eval()
    with torch.no_grad():
        assert model.encode(batch).shape == (2, 3, lm.hidden_size)
        n_tokens = encoder(images[:1, 0]).shape[1]  # L of the encoder
        model.num_tokens = n_tokens  # L groups of one token: the average changes nothing
        expected = visual_prefix(encoder, model.visual_mapper, images, view_mask, "mean")
        torch.testing.assert_close(model.encode(batch), expected)
    with pytest.raises(RadioLMError, match="num_tokens must be 1 or more"):
        as_a_sixth_method.PooledPrefix(encoder, lm, num_tokens=0)


def test_the_example_experiment_runs_fit_and_test(as_a_sixth_method: ModuleType, tiny_workdir: Path) -> None:
    """The doc's experiment as ``experiments/pooled_prefix_phantom.yaml``, with its overlay, through the CLI."""
    experiments = tiny_workdir / "experiments"
    experiments.mkdir()
    for fragments in ("_base", "data"):
        (experiments / fragments).symlink_to(REPO / "experiments" / fragments, target_is_directory=True)
    shutil.copy(EXAMPLES / "pooled_prefix_phantom.yaml", experiments)
    main(["fit", "-c", "experiments/pooled_prefix_phantom.yaml", "-c", str(CONF / "pooled_prefix_phantom.yaml")])
    lines = sorted(tiny_workdir.glob("predictions-test-*.jsonl"))[-1].read_text().splitlines()
    records = [json.loads(line) for line in lines if line]
    assert len(records) == 2 and all(isinstance(r["prediction"], str) for r in records)  # one test batch of 2
    metrics = json.loads(sorted(tiny_workdir.glob("metrics-test-*.json"))[-1].read_text())
    assert {"bleu4", "rouge_l", "cider", "ce_f1_micro_14"} <= set(metrics)
