"""CheXbert labeler on a tiny random BERT saved in the released checkpoint layout (no download)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from radiolm.data.labels import CHEXPERT_14
from radiolm.errors import DataError, MissingAssetError
from radiolm.metrics.chexbert import ChexbertLabeler, ChexbertModel, clean_report, semb_scores

WORDS = "the heart size is normal lungs are clear no pleural effusion or pneumothorax moderate cardiomegaly small left"
TEXTS = [
    "The heart size is normal.",
    "Moderate cardiomegaly.\n Small   left pleural effusion. No pneumothorax.",
    "",
    "Lungs are clear, no effusion, no pneumothorax.",
]


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """vocab.txt, config.json (hidden 32, 2 layers) and a random CheXbert state dict under ``module.``."""
    from transformers import BertConfig

    root = tmp_path_factory.mktemp("chexbert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS.split(), ".", ","]
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    config.to_json_file(root / "config.json")
    torch.manual_seed(0)
    state = ChexbertModel(config).state_dict()
    torch.save({"epoch": 1, "model_state_dict": {f"module.{k}": v for k, v in state.items()}}, root / "chexbert.pth")
    return {"root": root, "vocab": root / "vocab.txt", "config": root / "config.json", "ckpt": root / "chexbert.pth"}


def _labeler(assets: dict[str, Path], checkpoint: Path | None = None, **kwargs: object) -> ChexbertLabeler:
    return ChexbertLabeler(
        str(checkpoint or assets["ckpt"]), tokenizer=str(assets["vocab"]), config_path=str(assets["config"]), **kwargs
    )


def test_shapes_and_label_domain(assets: dict[str, Path]) -> None:
    labeler = _labeler(assets, batch_size=3)
    labels = labeler(TEXTS)
    assert len(labels) == len(TEXTS) and all(len(row) == len(CHEXPERT_14) for row in labels)
    for row in labels:
        assert all(v in (1, 0, -1, None) for v in row[:-1])
        assert row[-1] in (1, None)
    embeddings = labeler.embed(TEXTS)
    assert embeddings.shape == (len(TEXTS), 32) and embeddings.dtype == torch.float32
    both = labeler.label_and_embed(TEXTS)
    assert both[0] == labels and torch.allclose(both[1], embeddings)


def test_class_mapping_by_hand(assets: dict[str, Path], tmp_path: Path) -> None:
    """Zero head weights and a one-hot bias fix each head's class: head k picks class k % 4 (No Finding: 1)."""
    labeler = _labeler(assets)
    state = labeler.model.state_dict()
    for k in range(14):
        classes = 2 if k == 13 else 4
        state[f"linear_heads.{k}.weight"] = torch.zeros(classes, 32)
        state[f"linear_heads.{k}.bias"] = torch.nn.functional.one_hot(torch.tensor(1 if k == 13 else k % 4), classes)
    torch.save({"model_state_dict": {f"module.{k}": v.float() for k, v in state.items()}}, tmp_path / "fixed.pth")
    labels = _labeler(assets, tmp_path / "fixed.pth")(["The heart size is normal.", ""])
    expected = [None, 1, 0, -1] * 3 + [None, 1]  # blank, positive, negative, uncertain; No Finding positive
    assert labels == [expected, expected]


@pytest.mark.parametrize("layout", ["model.", "", "module.model.", "bare"])
def test_prefixes_and_stale_buffers(assets: dict[str, Path], tmp_path: Path, layout: str) -> None:
    reference = _labeler(assets)
    state = {k: v.clone() for k, v in reference.model.state_dict().items()}
    state["bert.embeddings.position_ids"] = torch.arange(64)[None]  # written by old transformers versions
    if layout == "bare":
        saved: object = state
    else:
        saved = {"model_state_dict": {f"{layout}{k}": v for k, v in state.items()}}
    torch.save(saved, tmp_path / "c.pth")
    other = _labeler(assets, tmp_path / "c.pth")
    assert other(TEXTS) == reference(TEXTS)
    assert torch.allclose(other.embed(TEXTS), reference.embed(TEXTS))


def test_embedding_independent_of_batch_padding(assets: dict[str, Path]) -> None:
    labeler = _labeler(assets, batch_size=8)
    alone = labeler.embed([TEXTS[0]])
    padded = labeler.embed([TEXTS[1], TEXTS[0]])[1:]
    assert torch.allclose(alone, padded, atol=1e-5)


def test_semb_scores_by_hand() -> None:
    a = torch.tensor([[1.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    b = torch.tensor([[0.0, 2.0], [6.0, 8.0], [1.0, 1.0]])
    assert semb_scores(a, b) == pytest.approx([0.0, 1.0, 0.0])
    assert semb_scores(torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 0.0]])) == pytest.approx([2**-0.5])
    with pytest.raises(ValueError, match="differ"):
        semb_scores(a, b[:2])


def test_semb_of_identical_texts_is_one(assets: dict[str, Path]) -> None:
    labeler = _labeler(assets)
    assert labeler.semb(TEXTS[:2], TEXTS[:2]) == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        labeler.semb(TEXTS[:2], TEXTS[:1])


def test_clean_report() -> None:
    assert clean_report("  No effusion.\n\nClear   lungs. ") == "No effusion. Clear lungs."


def test_missing_files(assets: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(MissingAssetError, match="`checkpoint` option"):
        _labeler(assets, tmp_path / "chexbert.pth")
    with pytest.raises(MissingAssetError, match="`tokenizer` option"):
        ChexbertLabeler(
            str(assets["ckpt"]), tokenizer=str(tmp_path / "no-tokenizer"), config_path=str(assets["config"])
        )
    with pytest.raises(MissingAssetError, match="`config_path` option"):
        ChexbertLabeler(str(assets["ckpt"]), tokenizer=str(assets["vocab"]), config_path=str(tmp_path / "c.json"))


def test_bad_checkpoints(assets: dict[str, Path], tmp_path: Path) -> None:
    torch.save({"model_state_dict": {"module.bert.pooler.dense.weight": torch.zeros(32, 32)}}, tmp_path / "part.pth")
    with pytest.raises(DataError, match="does not match the CheXbert architecture"):
        _labeler(assets, tmp_path / "part.pth")
    torch.save({"epoch": 1}, tmp_path / "empty.pth")
    with pytest.raises(DataError, match="not a CheXbert checkpoint"):
        _labeler(assets, tmp_path / "empty.pth")
    torch.save({"model_state_dict": {"x": torch.nn.Linear(2, 2)}}, tmp_path / "pickled.pth")  # a pickled module
    with pytest.raises(DataError, match="weights-only"):
        _labeler(assets, tmp_path / "pickled.pth")
