"""BioViL's preprocessing for the two-stage paper's ResNet-50 (§4: BioViL-T's encoder, pretrained at 480 x 480):
resize the short side to 512, centre crop 480, scale to [0, 1], no ImageNet normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from radiolm.data.transforms import BIOVIL, build_image_transform, named_image_transform
from radiolm.methods import TwoStageFinetune
from radiolm.parts import LanguageModel, VisionEncoder

from .conftest import REPO


def hand_made() -> Image.Image:
    """2048 wide x 1024 high, grey: left half black with a 64 band on top, right half white.

    Resized to 1024 x 512 (short side 512), the centre crop 480 keeps columns 272..751 and rows 16..495: the
    black / white edge falls at crop column 240, the 64 band (rows 0..199, i.e. 0..99 resized) ends at crop row 84.
    """
    pixels = np.zeros((1024, 2048), dtype=np.uint8)
    pixels[:, 1024:] = 255
    pixels[:200, :1024] = 64
    return Image.fromarray(pixels, mode="L")


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_biovil_transform_resize_crop_no_normalisation(train: bool) -> None:
    out = build_image_transform(BIOVIL, train=train)(hand_made())
    assert out.shape == (3, 480, 480) and out.dtype == torch.float32
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])  # grey repeated to 3 channels
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0  # [0, 1]; ImageNet statistics would give -2.1 / 2.6
    assert torch.all(out[:, 90:, :236] == 0.0) and torch.all(out[:, :, 244:] == 1.0)  # the edge at crop column 240
    assert torch.allclose(out[:, :80, :236], torch.tensor(64 / 255))  # the band: 64 / 255, not (64/255 - mean) / std
    assert torch.all(out[:, 88:, :236] == 0.0) and not torch.all(out[:, 80:88, :236] == 0.0)  # band ends near row 84


def test_named_transform_checks_name_and_encoder_size() -> None:
    assert named_image_transform("biovil", 480) is BIOVIL
    with pytest.raises(ValueError, match=r"unknown 'imagenet'; use one of \['biovil'\]"):
        named_image_transform("imagenet", 480)
    with pytest.raises(ValueError, match=r"biovil gives 480 x 480 images.*image_size is 224.*image_size: 480"):
        named_image_transform("biovil", 224)


def test_two_stage_method_hands_biovil_to_the_data(tiny_gpt2: Path) -> None:
    """``image_preprocessing: biovil`` is what the CLI links into the DataModule (model.image_transform)."""
    lm = LanguageModel(str(tiny_gpt2), trainable="frozen", dtype="float32")
    encoder = VisionEncoder("test_resnet", backend="timm", pretrained=False, image_size=480)
    assert TwoStageFinetune(encoder, lm, image_preprocessing="biovil").image_transform == BIOVIL
    assert TwoStageFinetune(encoder, lm).image_transform == encoder.image_transform  # the encoder's own
    assert encoder.image_transform.mean != (0.0, 0.0, 0.0)


def test_only_the_biovil_encoder_experiments_use_it() -> None:
    """The GPU experiments with BioViL-T's ResNet-50 at 480 px use it; the CPU phantom one (a ViT-MAE) not."""
    for path in sorted((REPO / "experiments").glob("two_stage_*.yaml")):
        init = yaml.safe_load(path.read_text())["model"]["init_args"]
        uses = init.get("image_preprocessing") == "biovil"
        assert uses == (init["vision_encoder"] == "_base/parts/two_stage_resnet50.yaml"), path.name
        assert uses != (path.stem == "two_stage_phantom"), path.name
