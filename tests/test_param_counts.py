"""R2GenGPT's trainable-parameter counts (Table 2: 4.2M / 5.0M / 90.9M) with Swin-B and Llama-2-7B shapes.

Both models are built from their configs on the meta device: the real architectures, no weights, no download.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from radiolm.methods.r2gengpt import R2GenGPT
from radiolm.parts.language_model import LanguageModel
from radiolm.parts.trainable import count_trainable
from radiolm.parts.vision import VisionEncoder


@pytest.fixture(scope="module")
def swin_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import SwinConfig

    out = tmp_path_factory.mktemp("swin-b")
    # microsoft/swin-base-patch4-window7-224
    SwinConfig(
        image_size=224, patch_size=4, embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32], window_size=7
    ).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def llama2_7b(tmp_path_factory: pytest.TempPathFactory, tiny_llm: Path) -> Path:
    from transformers import LlamaConfig

    out = tmp_path_factory.mktemp("llama-2-7b")
    # meta-llama/Llama-2-7b-chat-hf; the tokenizer is the tiny one (irrelevant to the counts)
    LlamaConfig(
        hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, vocab_size=32000
    ).save_pretrained(out)
    for f in tiny_llm.glob("tokenizer*"):
        shutil.copy(f, out / f.name)
    return out


@pytest.mark.parametrize(
    ("trainable", "expected"),
    [("frozen", 4_206_592), ("lora", 4_976_640), ("full", 90_949_816)],
    ids=["shallow", "delta", "deep"],
)
def test_r2gengpt_trainable_parameters(swin_b: Path, llama2_7b: Path, trainable: str, expected: int) -> None:
    with torch.device("meta"):
        encoder = VisionEncoder(str(swin_b), backend="hf", pretrained=False, trainable=trainable)  # type: ignore[arg-type]
        llm = LanguageModel(str(llama2_7b), pretrained=False, dtype="bfloat16")
        model = R2GenGPT(vision_encoder=encoder, language_model=llm)
    assert encoder.out_dim == 1024 and llm.hidden_size == 4096
    assert count_trainable(model.language_model) == 0
    assert count_trainable(model) == expected
