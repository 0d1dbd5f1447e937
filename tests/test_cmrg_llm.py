"""CMRG-LLM (``../shared/papers/cmrg_llm_continual.md``): what trains in each stage (§2.3) with counts at Qwen-7B and
Swin-B shapes on the meta device, the losses of each stage, that training a later stage leaves an earlier task's
outputs unchanged (and SeqFT's changed), and that checkpoints keep every parameter outside the LLM."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from radiolm.batch import ReportBatch
from radiolm.errors import RadioLMError
from radiolm.methods.cmrg_llm import CMRGLLM, CMRGDomain
from radiolm.parts.generation import DecodingConfig
from radiolm.parts.language_model import LanguageModel
from radiolm.parts.mappers import Adapter2D3D
from radiolm.parts.trainable import count_trainable
from radiolm.parts.vision import VisionEncoder

from .test_param_counts import swin_b  # noqa: F401  (the Swin-B config fixture)

PAPER_DOMAINS = [
    CMRGDomain("XE1"),
    CMRGDomain("XE2", share_projection_with="XE1"),
    CMRGDomain("XC"),
    CMRGDomain("CTC", volume=True, update_centres=False),
]


@pytest.fixture(scope="module")
def qwen_7b(tmp_path_factory: pytest.TempPathFactory, tiny_llm: Path) -> Path:
    """Qwen-7B's shapes (hidden 4096, 32 layers, vocabulary 151,936) as a Qwen2 config; the tokenizer is the tiny
    one (the LLM is frozen: only its width enters the counts)."""
    from transformers import Qwen2Config

    out = tmp_path_factory.mktemp("qwen-7b")
    Qwen2Config(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=151936,
    ).save_pretrained(out)
    for f in tiny_llm.glob("tokenizer*"):
        shutil.copy(f, out / f.name)
    return out


# Swin-B (microsoft/swin-base-patch4-window7-224): 86,743,224 (R2GenGPT deep's 90,949,816 minus its 4,206,592 mapper)
SWIN_B = 86_743_224
M = 3 * 1024 * 1024 + 3 * 1024 + 1024 * 1024 + 1024  # MHA at 1024: in_proj + out_proj = 4,198,400
Q = 32 * 1024  # q: L_q = 32 queries of 1024
P = 1024 * 4096 + 4096  # projection to Qwen-7B's 4096
LN = 2 * 4096  # gamma, beta
FT = 4096  # domain token 1 x 4096
PH = 4096 * 128 + 128  # P_h
A = (64 * 16 * 9 + 16) + (16 * 3 * 9 + 3)  # 2D-3D adapter: 64 slices -> 16 -> 3 channels, 3x3 kernels


def test_trainable_parameters_per_stage_at_qwen_7b_and_swin_b(swin_b: Path, qwen_7b: Path) -> None:  # noqa: F811
    """§2.3: stage 1 E, M, q, P, LN, f^t (+ P_h); stage 2 new q, LN, f^t (P shared, E and M frozen); stage 3 new
    q, P, LN, f^t; stage 4 new q, P, LN, f^t and A."""
    with torch.device("meta"):
        encoder = VisionEncoder(str(swin_b), backend="hf", pretrained=False, trainable="full")
        llm = LanguageModel(str(qwen_7b), pretrained=False, dtype="bfloat16")
        model = CMRGLLM(encoder, llm, PAPER_DOMAINS, volume_adapter=Adapter2D3D(depth=64))
    assert encoder.out_dim == 1024 and llm.hidden_size == 4096
    non_llm = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("language_model."))
    assert non_llm == SWIN_B + M + 4 * (Q + LN + FT) + 3 * P + PH + A  # XE2 has no P of its own
    expected = [SWIN_B + M + Q + P + LN + FT + PH, Q + LN + FT, Q + P + LN + FT, Q + P + LN + FT + A]
    assert expected == [95_709_496, 45_056, 4_243_456, 4_253_123]
    for stage, count in enumerate(expected):
        model.set_stage(stage)
        assert count_trainable(model.language_model) == 0
        assert count_trainable(model) == count, f"stage {stage + 1}"
        trained = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
        prompts = {n.split(".")[2] for n, p in model.named_parameters() if p.requires_grad and n.startswith("prompts.")}
        assert prompts == {model.names[stage] if stage != 1 else "XE2"}
        assert ("vision_encoder" in trained) == (stage == 0) and ("aggregator" in trained) == (stage == 0)
        assert ("volume_adapter" in trained) == (stage == 3)
    # SeqFT: one shared prompt set, everything outside the LLM trains in every stage (stage 4: with A)
    with torch.device("meta"):
        encoder = VisionEncoder(str(swin_b), backend="hf", pretrained=False, trainable="full")
        seqft = CMRGLLM(encoder, llm, PAPER_DOMAINS, volume_adapter=Adapter2D3D(depth=64), strategy="seqft")
    seqft.set_stage(3)
    assert count_trainable(seqft) == SWIN_B + M + Q + P + LN + FT + PH + A


# -- the method on tiny models --------------------------------------------------------------------------------------
def make_batch(seed: int = 1) -> ReportBatch:
    torch.manual_seed(seed)
    labels = torch.zeros(4, 14, dtype=torch.long)
    labels[0, 1] = labels[1, 1] = 1  # cardiomegaly (single-label: a centre)
    labels[2, 13] = labels[3, 13] = 1  # no finding
    labels[3, 3] = 1  # ... and a lung lesion on the last one
    return ReportBatch(
        ids=[f"s{i}" for i in range(4)],
        reports=["Moderate cardiomegaly.", "Moderate cardiomegaly.", "The lungs are clear.", "There is a nodule."],
        labels=labels,
        images=torch.randn(4, 2, 3, 64, 64),
        view_mask=torch.tensor([[True, True], [True, False], [True, True], [True, False]]),
        volumes=torch.randn(4, 1, 4, 64, 64),
        domain=["cxr"] * 4,
        language=["en"] * 4,
    )


def make_model(tiny_llm: Path, tiny_swin: Path, **kwargs: object) -> CMRGLLM:
    torch.manual_seed(0)
    return CMRGLLM(
        VisionEncoder(str(tiny_swin), backend="hf", pretrained=False, trainable="full"),
        LanguageModel(str(tiny_llm)),
        [
            CMRGDomain("XE1"),
            CMRGDomain("XE2", share_projection_with="XE1"),
            CMRGDomain("CTC", volume=True, update_centres=False),
        ],
        volume_adapter=Adapter2D3D(depth=4, hidden=4),
        num_queries=4,
        attention_heads=2,
        hidden_dim=8,
        decoding=DecodingConfig(num_beams=1, min_new_tokens=3, max_new_tokens=3),
        **kwargs,  # type: ignore[arg-type]
    )


def train_steps(model: CMRGLLM, batch: ReportBatch, steps: int = 3) -> None:
    model.train()
    optimizer = torch.optim.AdamW([p for _, p in model.trainable_parameters()], lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        model.compute_losses(batch)["loss"].backward()
        optimizer.step()


@torch.no_grad()
def outputs_on(model: CMRGLLM, domain: str, batch: ReportBatch) -> tuple[torch.Tensor, list[str]]:
    model.eval()
    model.use_domain(domain)
    prefix, text = model.encode(batch), model.generate(batch)
    model.use_domain(model.names[model.stage])
    return prefix, text


@pytest.mark.parametrize("strategy", ["cmrg", "seqft"])
def test_a_later_stage_leaves_task_1_unchanged_but_seqft_forgets(
    tiny_llm: Path, tiny_swin: Path, strategy: str
) -> None:
    model = make_model(tiny_llm, tiny_swin, strategy=strategy)
    batch = make_batch()
    train_steps(model, batch)  # stage 1 (XE1)
    before = outputs_on(model, "XE1", batch)
    for stage in (1, 2):  # XE2, then CTC
        model.set_stage(stage)
        own_before = outputs_on(model, model.names[stage], batch)[0]
        train_steps(model, batch)
        assert not torch.equal(own_before, outputs_on(model, model.names[stage], batch)[0])  # the stage did train
        after = outputs_on(model, "XE1", batch)
        if strategy == "cmrg":
            assert torch.equal(before[0], after[0]) and before[1] == after[1]
        else:
            assert not torch.equal(before[0], after[0])


@pytest.mark.parametrize("prompt_init", ["random", "previous"])
def test_prompt_init(tiny_llm: Path, tiny_swin: Path, prompt_init: str) -> None:
    """``previous``: a new domain's own f^t, q, LN (and P where it owns one) start as the last domain's, P as the one
    that domain used (XE2 shares XE1's); ``random``: as built. Only when a stage begins, not when it resumes."""
    model = make_model(tiny_llm, tiny_swin, prompt_init=prompt_init)
    batch = make_batch()
    train_steps(model, batch)  # stage 1 (XE1)
    built = {n: p.detach().clone() for n, p in model.prompts.named_parameters()}

    def same(domain: str, source: str, part: str) -> bool:
        mine = {n: p for n, p in model.prompts[domain].named_parameters() if n.startswith(part)}
        theirs = dict(model.prompts[source].named_parameters())
        return bool(mine) and all(torch.equal(p, theirs[n]) for n, p in mine.items())

    model.set_stage(1, begins=False)  # XE2 resumed: its prompt stays as it was
    assert all(torch.equal(p, built[n]) for n, p in model.prompts.named_parameters())
    model.set_stage(1)  # XE2 begins
    parts = ("domain_token", "queries", "norm")
    assert all(same("XE2", "XE1", part) for part in parts) == (prompt_init == "previous")
    if prompt_init == "previous":
        train_steps(model, batch)  # XE2 trains; XE1's prompt does not move
        assert all(torch.equal(p, built[n]) for n, p in model.prompts.named_parameters() if n.startswith("XE1."))
        model.set_stage(2)  # CTC owns a P: it starts as the one XE2 used, XE1's
        assert all(same("CTC", "XE2", part) for part in parts) and same("CTC", "XE1", "projection")
    else:
        assert not any(same("XE2", "XE1", part) for part in parts)
    with pytest.raises(ValueError, match="prompt_init"):
        make_model(tiny_llm, tiny_swin, prompt_init="last")


def test_losses_per_stage(tiny_llm: Path, tiny_swin: Path) -> None:
    model = make_model(tiny_llm, tiny_swin, related_xray={"Lung Lesion": "Cardiomegaly"})
    batch = make_batch()
    losses = model.compute_losses(batch)
    assert set(losses) == {"loss", "lm", "sc"}  # stage 1: L^LM + lambda_1 L^SC
    torch.testing.assert_close(losses["loss"], losses["lm"] + 0.1 * losses["sc"])
    model.train()
    model.compute_losses(batch)  # training updates the centres (cardiomegaly, no finding are single-label)
    assert model.centres.counts[1] > 0 and model.centres.counts[13] > 0 and not model.centres.valid.any()
    model.set_stage(2)  # CTC: snapshot -> L^SC_center + L^TP toward the cardiomegaly centre, away from no finding
    assert model.centres.valid[1] and model.centres.valid[13]
    counts = model.centres.counts.clone()
    losses = model.compute_losses(batch)
    assert set(losses) == {"loss", "lm", "sc", "tp"}
    torch.testing.assert_close(losses["loss"], losses["lm"] + 0.1 * losses["sc"] + 0.1 * losses["tp"])
    assert torch.equal(model.centres.counts, counts)  # CTC does not update the X-ray centres
    ablated = make_model(tiny_llm, tiny_swin, contrastive=False)
    assert set(ablated.compute_losses(batch)) == {"loss", "lm"}


def test_checkpoint_keeps_every_parameter_outside_the_llm(tiny_llm: Path, tiny_swin: Path) -> None:
    model = make_model(tiny_llm, tiny_swin)
    model.set_stage(1)
    checkpoint = {"state_dict": model.state_dict()}
    model.on_save_checkpoint(checkpoint)
    keys = set(checkpoint["state_dict"])
    assert checkpoint["cmrg_stage"] == 1
    assert not any(k.startswith("language_model.") for k in keys)
    outside = {n for n, _ in model.named_parameters() if not n.startswith("language_model.")}
    assert outside <= keys  # frozen E, M, XE1's prompt included
    assert {
        "prompts.prompts.XE1.queries",
        "centres.previous",
        "vision_encoder.model.embeddings.patch_embeddings.projection.weight",
    } <= keys


def test_clear_errors(tiny_llm: Path, tiny_swin: Path) -> None:
    encoder = VisionEncoder(str(tiny_swin), backend="hf", pretrained=False)
    with pytest.raises(RadioLMError, match="volume_adapter"):
        CMRGLLM(encoder, LanguageModel(str(tiny_llm)), [CMRGDomain("CTC", volume=True)])
    with pytest.raises(RadioLMError, match="trainable: frozen"):
        CMRGLLM(encoder, LanguageModel(str(tiny_llm), trainable="full"), [CMRGDomain("XE1")])
    model = make_model(tiny_llm, tiny_swin)
    with pytest.raises(RadioLMError, match="unknown domain 'XC'"):
        model.use_domain("XC")
    with pytest.raises(RadioLMError, match="stage 5"):
        model.set_stage(5)
    with pytest.raises(KeyError, match="unknown CheXpert observation"):
        make_model(tiny_llm, tiny_swin, related_xray={"Nodule": "Lung Lesion"})
