"""Every method says the same thing, with the same error type, when a batch lacks the images or volumes it needs."""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import pytest
import torch

from radiolm.batch import ReportBatch, require_images, require_volumes
from radiolm.errors import BatchError, RadioLMError
from radiolm.methods import Bidirectional, DiaLLaMA, R2GenGPT, ReportGenerationModule, TwoStageFinetune
from radiolm.parts import LanguageModel, PerceiverResampler, QueryMapper, VisionEncoder, VolumeEncoder


def xray_batch() -> ReportBatch:
    return ReportBatch(
        ids=["a"],
        reports=["The lungs are clear."],
        labels=torch.zeros(1, 14, dtype=torch.long),
        images=torch.zeros(1, 1, 3, 64, 64),
        view_mask=torch.ones(1, 1, dtype=torch.bool),
        views=[["frontal"]],
    )


def ct_batch() -> ReportBatch:
    return ReportBatch(
        ids=["a"],
        reports=["No nodule."],
        labels=torch.zeros(1, 14, dtype=torch.long),
        volumes=torch.zeros(1, 1, 8, 32, 32),
    )


def test_helpers_return_what_is_there() -> None:
    images, view_mask = require_images(xray_batch(), "R2GenGPT")
    assert images.shape == (1, 1, 3, 64, 64) and view_mask.tolist() == [[True]]
    unmasked = xray_batch()
    unmasked.view_mask = None
    assert require_images(unmasked, "R2GenGPT")[1].tolist() == [[True]]  # no mask: every view is real
    assert require_volumes(ct_batch(), "DiaLLaMA").shape == (1, 1, 8, 32, 32)
    assert issubclass(BatchError, RadioLMError)  # the CLI prints it as one line


def _resnet() -> VisionEncoder:
    return VisionEncoder("test_resnet", backend="timm", pretrained=False, image_size=64)


def _builders(lm: LanguageModel) -> dict[str, object]:
    tiny_vit = {"img_size": (32, 32, 8), "patch_size": (16, 16, 4), "hidden_size": 24, "num_layers": 1,
                "num_heads": 2, "dim_head": 8, "mlp_dim": 32, "in_channels": 1}  # fmt: skip
    return {
        "R2GenGPT": lambda: R2GenGPT(_resnet(), lm),
        "TwoStageFinetune": lambda: TwoStageFinetune(_resnet(), lm, visual_mapper=partial(QueryMapper, heads=4)),
        "Bidirectional": lambda: Bidirectional(_resnet(), lm),
        "DiaLLaMA": lambda: DiaLLaMA(
            VolumeEncoder(**tiny_vit),  # type: ignore[arg-type]
            lm,
            visual_mapper=partial(PerceiverResampler, num_latents=2, depth=1, heads=2, dim_head=8),
        ),
    }


@pytest.mark.parametrize(
    ("method", "needs"),
    [
        ("R2GenGPT", "X-ray images (batch.images)"),
        ("TwoStageFinetune", "X-ray images (batch.images)"),
        ("Bidirectional", "X-ray images (batch.images)"),
        ("DiaLLaMA", "CT volumes (batch.volumes)"),
    ],
)
def test_a_batch_without_its_input_is_one_clear_error(tiny_llm: Path, method: str, needs: str) -> None:
    torch.manual_seed(0)
    model = _builders(LanguageModel(str(tiny_llm)))[method]()  # type: ignore[operator]
    assert isinstance(model, ReportGenerationModule)
    wrong = ct_batch() if "X-ray" in needs else xray_batch()
    kind = "an X-ray DataModule" if "X-ray" in needs else "a CT DataModule"
    expected = "^" + re.escape(f"{method} needs {needs}; this batch has none: use {kind} (")
    for step in (model.compute_losses, model.generate):
        with pytest.raises(BatchError, match=expected):
            step(wrong)
