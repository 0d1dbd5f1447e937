"""Shared fixtures: tiny real modules built here (no downloads), small phantom data sets, and ``tiny_workdir``: a
working directory where the overlays ``tests/conf/<experiment>.yaml`` find the tiny models and the data by plain
relative paths (``models/tiny-llm``, ``data/iu_xray``, ...)."""

from __future__ import annotations

import json
import logging
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
CONF = REPO / "tests" / "conf"
"""The tiny-model overlay of each experiment: ``radiolm fit -c experiments/X.yaml -c tests/conf/X.yaml``."""


_RADIOLM_LOGGER = logging.getLogger("radiolm")
_PRISTINE_LOGGER = (list(_RADIOLM_LOGGER.handlers), _RADIOLM_LOGGER.propagate, _RADIOLM_LOGGER.level)
"""The ``radiolm`` logger before any test ran the CLI (conftest is imported before every test module)."""


@pytest.fixture(autouse=True)
def _radiolm_logger_as_found():
    """A CLI run in-process gives the ``radiolm`` logger its stderr handler and stops propagation (no duplicate lines
    in a user's terminal); put it back as it was before any test after each test, so later tests' ``caplog`` sees
    the records again. Restored to the state at import, not at this test's start: a module-scoped fixture that ran
    the CLI is set up before this fixture and would otherwise be taken for the original state."""
    yield
    handlers, propagate, level = _PRISTINE_LOGGER
    _RADIOLM_LOGGER.handlers[:] = handlers
    _RADIOLM_LOGGER.propagate, _RADIOLM_LOGGER.level = propagate, level


CORPUS = [
    "The heart size is normal. The lungs are clear. No pleural effusion or pneumothorax.",
    "Moderate cardiomegaly. Small left pleural effusion. No pneumothorax.",
    "There is a 12 mm nodule in the right upper lobe. No focal consolidation.",
    "Consolidation in the left lower lobe may represent pneumonia.",
    "Mild pulmonary edema. Bibasilar atelectasis. Endotracheal tube in place.",
    "Human: <Img></Img> Generate a comprehensive and detailed diagnosis report for this chest xray image. \nAssistant:",
    "No acute cardiopulmonary process. Large right pneumothorax. Displaced rib fracture.",
]


def make_tiny_llm(
    out: Path, vocab_size: int = 320, hidden_size: int = 32, seed: int = 0, corpus: list[str] | None = None
) -> Path:
    """A 2-layer Llama with a byte-level BPE tokenizer trained on report text (``CORPUS``, plus ``corpus``), saved
    as an HF folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator((CORPUS + (corpus or [])) * 20, trainer=trainer)
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


@pytest.fixture(scope="session")
def tiny_blip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BLIP config folder (tiny text transformer) with the MiniLM tokenizer: ``backend: blip`` from config."""
    from transformers import AutoTokenizer, BlipConfig

    from radiolm.assets import resolve_text_encoder

    out = tmp_path_factory.mktemp("tiny-blip")
    AutoTokenizer.from_pretrained(resolve_text_encoder("minilm-l6")).save_pretrained(out)
    text = {"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 64, "encoder_hidden_size": 32}  # fmt: skip
    BlipConfig(text_config=text).save_pretrained(out)
    return out


TINY_MAE = {
    "patch_size": 8,
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
"""A ViT-MAE small enough for a test: 32 px, 8 px patches (16 tokens of 32)."""


@pytest.fixture(scope="session")
def tiny_mae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """config.json of a tiny ViT-MAE (encoder + decoder), standing in for facebook/vit-mae-large."""
    from transformers import ViTMAEConfig

    out = tmp_path_factory.mktemp("tiny-mae")
    ViTMAEConfig(image_size=32, decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
                 decoder_intermediate_size=32, **TINY_MAE).save_pretrained(out)  # fmt: skip
    return out


def make_tiny_gpt2(out: Path, tiny_llm: Path) -> Path:
    """A 2-block GPT-2 (fused c_attn, as the real one) with the tiny Llama's tokenizer."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tok = AutoTokenizer.from_pretrained(tiny_llm)
    config = GPT2Config(
        vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=512,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    config.save_pretrained(out)
    for f in tiny_llm.glob("tokenizer*"):
        shutil.copy(f, out / f.name)
    GPT2LMHeadModel(config).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory, tiny_llm: Path) -> Path:
    return make_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"), tiny_llm)


def write_views(folder: Path) -> Path:
    """``views.json`` as ``radiolm data views`` writes it, from the annotation's own view names."""
    annotation = json.loads((folder / "annotation.json").read_text())
    views = {
        e["id"]: e.get("views") or ["frontal", "lateral"][: len(e["image_path"])]
        for s in annotation.values()
        for e in s
    }
    (folder / "views.json").write_text(json.dumps(views))
    return folder / "views.json"


@pytest.fixture()
def tiny_workdir(
    workdir: Path, tiny_llm: Path, tiny_swin: Path, tiny_blip: Path, tiny_mae: Path, tiny_gpt2: Path
) -> Path:
    """``workdir`` (the cwd) with ``models/tiny-{llm,swin,blip,mae,gpt2}`` linked to the fixtures' models, and the
    phantom studies also in ``data/mimic_cxr_curated`` and ``data/mimic_cxr_r2gen``, with ``views.json`` in each
    real-data folder: everything ``tests/conf/*.yaml`` names by relative path."""
    models = workdir / "models"
    models.mkdir()
    for name, path in {
        "llm": tiny_llm,
        "swin": tiny_swin,
        "blip": tiny_blip,
        "mae": tiny_mae,
        "gpt2": tiny_gpt2,
    }.items():
        (models / f"tiny-{name}").symlink_to(path, target_is_directory=True)
    for name in ("mimic_cxr_curated", "mimic_cxr_r2gen"):
        shutil.copytree(workdir / "data" / "mimic_cxr", workdir / "data" / name)
    for name in ("iu_xray", "mimic_cxr", "mimic_cxr_curated", "mimic_cxr_r2gen"):
        write_views(workdir / "data" / name)
    return workdir
