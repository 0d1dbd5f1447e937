"""Shared fixtures: tiny real modules built here (no downloads) and small phantom data sets."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# Before any import: huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported (Lightning imports it).
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a test never waits on the hub
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import lightning.pytorch  # noqa: F401  Lightning binds its log handler to stderr at import: before any capture
import pytest
import torch

torch.set_num_threads(2)

REPO = Path(__file__).resolve().parents[1]

CORPUS = [
    "The heart size is normal. The lungs are clear. No pleural effusion or pneumothorax.",
    "Moderate cardiomegaly. Small left pleural effusion. No pneumothorax.",
    "There is a 12 mm nodule in the right upper lobe. No focal consolidation.",
    "Consolidation in the left lower lobe may represent pneumonia.",
    "Mild pulmonary edema. Bibasilar atelectasis. Endotracheal tube in place.",
    "Human: <Img></Img> Generate a comprehensive and detailed diagnosis report for this chest xray image. \nAssistant:",
    "No acute cardiopulmonary process. Large right pneumothorax. Displaced rib fracture.",
]


def make_tiny_llm(out: Path, vocab_size: int = 320, hidden_size: int = 32, seed: int = 0) -> Path:
    """A 2-layer Llama with a byte-level BPE tokenizer trained on report text, saved as an HF folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(CORPUS * 20, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def make_tiny_swin(out: Path) -> Path:
    """config.json of a 2-stage Swin at 64 px (HF backend, separate query/key/value like Swin-B)."""
    from transformers import SwinConfig

    SwinConfig(
        image_size=64, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4
    ).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llm(tmp_path_factory.mktemp("tiny-llm"))


@pytest.fixture(scope="session")
def tiny_swin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_swin(tmp_path_factory.mktemp("tiny-swin"))


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 phantom studies, two views, 64 px (R2Gen layout)."""
    from radiolm.data.phantom import generate_cxr

    root = tmp_path_factory.mktemp("phantom")
    generate_cxr(root, n=24, seed=0, views=2, image_size=64, progress=False)
    return root


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, phantom_root: Path) -> Path:
    """A working directory laid out like a user's checkout: data/{phantom-cxr,iu_xray,mimic_cxr} filled."""
    for name in ("iu_xray", "mimic_cxr"):
        shutil.copytree(phantom_root, tmp_path / "data" / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path
