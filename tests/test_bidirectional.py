"""Bidirectional V2T + T2V + Rec (radiolm/methods/bidirectional.py): shapes, what trains, the losses on hand-made
examples, the T2V read-out, inference = R2GenGPT. The experiment YAMLs run in tests/test_experiments.py."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from radiolm.batch import ReportBatch
from radiolm.errors import BatchError
from radiolm.methods.bidirectional import Bidirectional
from radiolm.methods.r2gengpt import R2GenGPT
from radiolm.parts.generation import DecodingConfig
from radiolm.parts.image_decoder import MAEImageDecoder, patchify, unpatchify
from radiolm.parts.language_model import LanguageModel
from radiolm.parts.losses import clip_infonce, embedding_mse
from radiolm.parts.text_encoder import TextEncoder
from radiolm.parts.vision import VisionEncoder, mae_sincos_position_embeddings

from .conftest import TINY_MAE

TINY_DECODER = {"decoder_hidden_size": 16, "decoder_layers": 1, "decoder_heads": 2, "decoder_intermediate_size": 32}


def tiny_encoder() -> VisionEncoder:
    torch.manual_seed(0)
    return VisionEncoder(
        "vit_mae", backend="hf", pretrained=False, image_size=32, trainable="full", model_kwargs=TINY_MAE
    )


def tiny_text_encoder() -> TextEncoder:
    torch.manual_seed(0)
    return TextEncoder(
        "minilm-l6",
        pretrained=False,
        model_kwargs={"num_hidden_layers": 1, "hidden_size": 48, "num_attention_heads": 2, "intermediate_size": 64},
    )


def make_batch(views: int = 2) -> ReportBatch:
    torch.manual_seed(1)
    mask = torch.tensor([[True, views == 2], [True, False]])
    return ReportBatch(
        ids=["s1", "s2"],
        reports=["Moderate cardiomegaly. Small left pleural effusion.", "The lungs are clear."],
        labels=torch.zeros(2, 14),
        images=torch.randn(2, 2, 3, 32, 32),
        view_mask=mask,
        views=[["frontal", "lateral"], ["frontal"]],
        domain=["cxr", "cxr"],
        language=["en", "en"],
    )


@pytest.fixture(scope="module")
def lm(tiny_llm: Path) -> LanguageModel:
    return LanguageModel(str(tiny_llm))


def full_model(lm: LanguageModel, **kwargs) -> Bidirectional:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return Bidirectional(
        tiny_encoder(), lm, text_encoder=tiny_text_encoder(), image_decoder=partial(MAEImageDecoder, **TINY_DECODER),
        **kwargs,
    )  # fmt: skip


# -- losses on hand-made examples ------------------------------------------------------------------------------
def test_embedding_mse_known_answer() -> None:
    target = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # one study, N_p = 2, D = 2
    generated = torch.zeros(1, 2, 2)
    # Eq. 2: (||(1,2)||^2 + ||(3,4)||^2) / 2 = (5 + 25) / 2
    assert embedding_mse(target, generated).item() == pytest.approx(15.0)
    assert embedding_mse(torch.ones(3, 5, 4), torch.zeros(3, 5, 4)).item() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="shapes differ"):
        embedding_mse(torch.ones(1, 2, 3), torch.ones(1, 3, 3))


def test_clip_infonce_known_answer() -> None:
    eye = torch.eye(2)
    # cosine logits [[1, 0], [0, 1]] at temperature 1: each row's CE is log(1 + e^-1), both directions alike
    assert clip_infonce(eye, eye, temperature=1.0).item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    # swapped pairs: the positive has cosine 0, the negative 1 -> log(1 + e^1)
    assert clip_infonce(eye, eye.flip(0), temperature=1.0).item() == pytest.approx(math.log(1 + math.e), abs=1e-6)
    # scale does not matter (cosine), a small temperature makes matched pairs almost free
    assert clip_infonce(3 * eye, eye, temperature=0.01).item() < 1e-6


# -- parts: shapes at the boundaries -----------------------------------------------------------------------------
def test_mae_encoder_keeps_patch_order_and_drops_cls() -> None:
    enc = tiny_encoder().eval()
    images = torch.randn(3, 3, 32, 32)
    tokens = enc(images)
    assert tokens.shape == (3, 16, 32)  # (32 / 8)^2 patches, no CLS
    assert torch.equal(tokens, enc(images))  # no random shuffling or masking
    # patch order: the same model without any shuffling (noise = arange is the identity permutation)
    emb, mask, restore = enc.model.embeddings(images, noise=torch.arange(16.0).expand(3, -1))
    assert torch.equal(restore[0], torch.arange(16)) and mask.sum() == 0 and emb.shape == (3, 17, 32)


def test_mae_encoder_built_from_a_config_knows_where_each_patch_is() -> None:
    """transformers 5 leaves a from-config ViT-MAE's position embeddings at zero; the encoder sets MAE's sin-cos."""
    enc = tiny_encoder().eval()
    flat = torch.full((1, 3, 32, 32), 0.5)  # every patch the same: only the position tells the tokens apart
    tokens = enc(flat)[0]
    assert torch.cdist(tokens, tokens).fill_diagonal_(1.0).min() > 1e-3
    table = enc.model.embeddings.position_embeddings[0]  # [1 + 16, 32]: CLS row, then the 4 x 4 grid row-major
    torch.testing.assert_close(table, mae_sincos_position_embeddings(4, 32))
    quarter = 32 // 4
    assert torch.equal(table[0], torch.zeros(32))  # CLS
    torch.testing.assert_close(table[1], torch.tensor([0.0] * quarter + [1.0] * quarter).repeat(2))  # (0, 0)
    row1 = table[1 + 4]  # patch (1, 0): the row half holds sin / cos of the row index, the column half of 0
    torch.testing.assert_close(row1[0], torch.tensor(math.sin(1.0)))
    torch.testing.assert_close(row1[quarter], torch.tensor(math.cos(1.0)))
    torch.testing.assert_close(row1[2 * quarter :], torch.tensor([0.0] * quarter + [1.0] * quarter))


def test_patchify_roundtrip_and_decoder_shape() -> None:
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    patches = patchify(images, 4)
    assert patches.shape == (2, 4, 48)
    assert torch.equal(patches[0, 1, :3], images[0, :, 0, 4])  # patch 1 = top-right, first pixel, 3 channels
    assert torch.equal(unpatchify(patches, 4, 3), images)
    decoder = MAEImageDecoder(32, (4, 4), 8, 3, **TINY_DECODER)
    assert decoder(torch.randn(5, 16, 32)).shape == (5, 3, 32, 32)
    wide = torch.arange(2 * 3 * 8 * 12, dtype=torch.float32).reshape(2, 3, 8, 12)  # a 2 x 3 grid of 4 px patches
    assert torch.equal(unpatchify(patchify(wide, 4), 4, 3, grid=(2, 3)), wide)


def test_encoder_patch_grid_feeds_the_decoder() -> None:
    enc = tiny_encoder()
    assert enc.patch_grid == (4, 4) and enc.patch_size == 8  # 32 px / 8 px patches, as the 16 tokens
    assert enc(torch.randn(1, 3, 32, 32)).shape[1] == 16


def test_text_encoder_shapes() -> None:
    te = tiny_text_encoder()
    features, mask = te(["Small effusion. View: frontal.", "Clear."])
    assert features.shape[0] == 2 and features.shape[2] == te.out_dim == 48
    assert mask.shape == features.shape[:2] and mask[0].sum() > mask[1].sum()


# -- the method ---------------------------------------------------------------------------------------------------
def test_losses_and_what_trains(lm: LanguageModel) -> None:
    model = full_model(lm, clip_dim=8).train()
    losses = model.compute_losses(make_batch())
    assert set(losses) == {"loss", "vtc", "tvc", "rec", "clip"}
    total = losses["vtc"] + losses["tvc"] + losses["rec"] + losses["clip"]  # Eq. 3 with lambda_1 = lambda_2 = 1
    assert losses["loss"].item() == pytest.approx(total.item(), rel=1e-6)
    losses["loss"].backward()
    trained = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trained == {
        "vision_encoder", "visual_mapper", "text_encoder", "textual_mapper", "reconstruction_mapper", "image_decoder",
        "clip_visual", "clip_text",
    }  # fmt: skip
    assert not any(p.requires_grad for p in model.language_model.parameters())  # the LLM never trains
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not [n for n in missing if "position" not in n], f"no gradient reaches {missing}"


def test_ablations_are_values(lm: LanguageModel) -> None:
    torch.manual_seed(0)
    v2t = Bidirectional(tiny_encoder(), lm)
    losses = v2t.compute_losses(make_batch())
    assert set(losses) == {"loss", "vtc"} and torch.equal(losses["loss"], losses["vtc"])
    assert v2t.text_encoder is None and v2t.image_decoder is None and v2t.clip_visual is None
    t2v = Bidirectional(tiny_encoder(), lm, text_encoder=tiny_text_encoder(), lambda_tvc=0.5)
    losses = t2v.compute_losses(make_batch())
    assert set(losses) == {"loss", "vtc", "tvc"}
    assert losses["loss"].item() == pytest.approx((losses["vtc"] + 0.5 * losses["tvc"]).item(), rel=1e-6)


def test_t2v_texts_carry_each_image_view(lm: LanguageModel) -> None:
    model = full_model(lm)
    assert model.t2v_texts(make_batch()) == [
        "Moderate cardiomegaly. Small left pleural effusion. View: frontal.",
        "Moderate cardiomegaly. Small left pleural effusion. View: lateral.",
        "The lungs are clear. View: frontal.",
    ]
    batch = make_batch()  # the views come from the batch (the DataModule fills them, e.g. from the classifier)
    batch.views = [["lateral", "frontal"], ["lateral"]]
    assert [t.rsplit(" ", 1)[-1] for t in model.t2v_texts(batch)] == ["lateral.", "frontal.", "lateral."]
    batch.views = [["frontal"], ["frontal"]]
    with pytest.raises(BatchError, match=r"study 's1' has none for image 1"):
        model.compute_losses(batch)


def test_t2v_readout_is_teacher_forced(lm: LanguageModel) -> None:
    """E_g,i sees E_v,1..i-1 but never E_v,i (its own target) or later ones."""
    model = full_model(lm).eval()
    target = torch.randn(2, 16, lm.hidden_size)
    texts = ["Small effusion. View: frontal.", "Clear. View: lateral."]
    with torch.no_grad():
        generated = model.text_to_vision(texts, target)
        assert generated.shape == (2, 16, lm.hidden_size)
        changed = target.clone()
        changed[:, 5] += 1.0
        again = model.text_to_vision(texts, changed)
    assert torch.allclose(generated[:, :6], again[:, :6])  # E_g,1..6 (0-based 0..5) do not see E_v,6
    assert not torch.allclose(generated[:, 6], again[:, 6])  # E_g,7 is read at the slot holding E_v,6


def test_inference_runs_only_v2t_at_r2gengpt_cost(lm: LanguageModel, monkeypatch: pytest.MonkeyPatch) -> None:
    model = full_model(lm, clip_dim=8).eval()
    model.decoding = DecodingConfig(num_beams=2, min_new_tokens=2, max_new_tokens=4)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a training-only branch ran during generation")

    for part in (model.text_encoder, model.textual_mapper, model.image_decoder, model.reconstruction_mapper,
                 model.clip_visual, model.clip_text):  # fmt: skip
        monkeypatch.setattr(part, "forward", forbidden)
    monkeypatch.setattr(model, "text_to_vision", forbidden)
    monkeypatch.setattr(model, "t2v_texts", forbidden)
    baseline = R2GenGPT(model.vision_encoder, lm, decoding=model.decoding).eval()
    baseline.visual_mapper.load_state_dict(model.visual_mapper.state_dict())
    batch = make_batch()
    counts = []
    texts = []
    for module in (model, baseline):
        with FlopCounterMode(display=False) as counter:
            texts.append(module.generate(batch))
        counts.append(counter.get_total_flops())
    assert counts[0] == counts[1] > 0
    assert texts[0] == texts[1]


def test_bad_config_is_a_clear_error(lm: LanguageModel) -> None:
    from radiolm.errors import RadioLMError

    with pytest.raises(RadioLMError, match="end with"):
        Bidirectional(tiny_encoder(), lm, t2v_template="Human: {image} about {report}")
    timm_encoder = VisionEncoder("test_resnet", backend="timm", pretrained=False)
    with pytest.raises(RadioLMError, match="patch-token encoder"):
        Bidirectional(timm_encoder, lm, image_decoder=partial(MAEImageDecoder, **TINY_DECODER))
