"""The two-stage paper's analyses on hand-made examples with known answers (Eq. 2, Eq. 3, Eq. 4)."""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path

import pytest
import torch

from radiolm.analysis.prompt_attention import (
    normalised_visual_attention,
    prompt_attention_per_layer,
    teacher_forced_inputs,
)
from radiolm.analysis.prompt_similarity import binarize_labels, cosine_matrix, delta_ratio, label_order
from radiolm.analysis.token_confidence import average_confidence, report_confidence, split_by_outcome
from radiolm.batch import ReportBatch
from radiolm.methods.two_stage import TwoStageFinetune
from radiolm.parts.language_model import LanguageModel
from radiolm.parts.mappers import QueryMapper
from radiolm.parts.vision import VisionEncoder

TINY_VIT_MAE = "{patch_size: 8, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64}"
"""A tiny ViT-MAE for the phantom two-stage run (the experiment's own is MAE-pretrained: make phantom-mae)."""


def causal_uniform(t: int) -> torch.Tensor:
    """``[T, T]``: row ``i`` spreads its attention evenly over positions ``0..i``."""
    return torch.tril(torch.ones(t, t)) / torch.arange(1, t + 1)[:, None]


# -- Eq. 2 -------------------------------------------------------------------------------------------------------
def test_uniform_attention_scores_one() -> None:
    """Attention in proportion to length gives 1 at every query, whatever its position (the point of Eq. 2)."""
    attention = causal_uniform(6).expand(1, 2, 6, 6)  # [B=1, H=2, T, T]
    visual = torch.tensor([[False, True, True, False, False, False]])  # K = 2 after a bos
    queries = torch.tensor([[False, False, True, True, True, False]])
    alpha = normalised_visual_attention(attention, visual, queries, torch.ones(1, 6))
    assert alpha.tolist() == pytest.approx([1.0])


def test_attention_known_values() -> None:
    """Query row 3 (L = 4 positions): head 0 puts all on the prompt, head 1 none -> sum 0.5, / (K/L = 0.5) = 1.0.
    Query row 4 (L = 5): both heads put 0.8 on the prompt -> 0.8 / (2/5) = 2.0. Mean over the two rows: 1.5."""
    attention = torch.zeros(1, 2, 5, 5)
    attention[0, 0, 3, 1:3] = 0.5
    attention[0, 1, 3, 3] = 1.0
    attention[0, :, 4, 1:3] = 0.4
    attention[0, :, 4, 4] = 0.2
    visual = torch.tensor([[False, True, True, False, False]])
    queries = torch.tensor([[False, False, False, True, True]])
    alpha = normalised_visual_attention(attention, visual, queries, torch.ones(1, 5))
    assert alpha.tolist() == pytest.approx([1.5])
    # padding on the right is never a query and does not count in L_i
    padded = torch.zeros(1, 2, 6, 6)
    padded[:, :, :5, :5] = attention
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    alpha = normalised_visual_attention(padded, torch.cat([visual, torch.tensor([[False]])], 1), queries_pad(), mask)
    assert alpha.tolist() == pytest.approx([1.5])


def queries_pad() -> torch.Tensor:
    return torch.tensor([[False, False, False, True, True, False]])


# -- Eq. 3 -------------------------------------------------------------------------------------------------------
def test_delta_known_answer() -> None:
    """Two label groups; same-group prompts identical (cos 1), cross-group cos 0.5 -> Δ = 1 / 0.5 - 1 = 1."""
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.5, math.sqrt(3) / 2])
    prompts = torch.stack([a, b, a, b]).reshape(4, 1, 2)  # [N, K=1, D=2]
    labels = binarize_labels(torch.tensor([[1, 0, -1], [0, 1, 0], [1, -1, 0], [0, 1, 1]]))
    similarity = cosine_matrix(prompts)
    assert similarity[0, 2].item() == pytest.approx(1.0) and similarity[0, 1].item() == pytest.approx(0.5)
    stats = delta_ratio(similarity, labels)
    # studies 0 and 2 match (uncertain -1 counts as negative); 1 and 3 differ in the last observation
    assert stats["n_positive_pairs"] == 1 and stats["n_negative_pairs"] == 5
    assert stats["mean_positive"] == pytest.approx(1.0)
    assert stats["mean_negative"] == pytest.approx((0.5 + 0.5 + 0.5 + 0.5 + 1.0) / 5)
    assert stats["delta"] == pytest.approx(1.0 / 0.6 - 1)
    labels = binarize_labels(torch.tensor([[1, 0], [0, 1], [1, 0], [0, 1]]))
    assert delta_ratio(similarity, labels)["delta"] == pytest.approx(1.0)
    assert label_order(labels).tolist() == [1, 3, 0, 2]  # equal counts: lexicographic "01" < "10", stable


def test_delta_flattens_tokens() -> None:
    """``K x D`` prompts are compared as one ``K * D`` vector (Appendix B)."""
    prompts = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, -1.0]]])
    assert cosine_matrix(prompts)[0, 1].item() == pytest.approx(0.0)


# -- Eq. 4 -------------------------------------------------------------------------------------------------------
def test_average_confidence_known_answer() -> None:
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, math.log(3.0)], [5.0, -5.0]]])  # p(1) = 0.75
    targets = torch.tensor([[1, 0, -100]])
    mask = torch.tensor([[True, True, False]])
    assert average_confidence(logits, targets, mask).tolist() == pytest.approx([(0.75 + 0.25) / 2])


def test_split_by_outcome() -> None:
    predicted = [[1] + [0] * 13, [1, 1] + [0] * 12, [0] * 14]
    reference = [[1] + [0] * 13, [0, 1] + [0] * 12, [1] * 14]
    groups = split_by_outcome([0.9, 0.4, 0.1], predicted, reference)
    assert groups["Enlarged Cardiomediastinum"] == {"tp": [0.9], "fp": [0.4]}
    assert groups["Cardiomegaly"] == {"tp": [0.4], "fp": []}
    assert sum(len(g["tp"]) + len(g["fp"]) for g in groups.values()) == 3  # a missed finding is neither


# -- on a tiny real model ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model(tiny_llm: Path) -> TwoStageFinetune:
    torch.manual_seed(0)
    m = TwoStageFinetune(
        vision_encoder=VisionEncoder("test_resnet", backend="timm", pretrained=False, trainable="full", image_size=64),
        language_model=LanguageModel(str(tiny_llm), trainable="lora", lora_target_modules=["q_proj", "v_proj"]),
        visual_mapper=partial(QueryMapper, num_queries=3, heads=4),
    )
    m.language_model.base.set_attn_implementation("eager")
    return m.eval()


def batch() -> ReportBatch:
    return ReportBatch(
        ids=["a", "b"],
        reports=["", ""],
        labels=torch.zeros(2, 14, dtype=torch.long),
        images=torch.randn(2, 1, 3, 64, 64, generator=torch.Generator().manual_seed(0)),
        view_mask=torch.ones(2, 1, dtype=torch.bool),
    )


def test_teacher_forced_positions(model: TwoStageFinetune) -> None:
    reports = ["No pneumothorax.", "Moderate cardiomegaly. Small left pleural effusion."]
    forced = teacher_forced_inputs(model, batch(), reports)
    tok = model.language_model.tokenizer
    lengths = [len(tok(r, add_special_tokens=False).input_ids) + 1 for r in reports]  # + eos
    assert forced.query_mask.sum(-1).tolist() == lengths
    assert forced.visual_mask.sum(-1).tolist() == [3, 3]
    assert forced.visual_mask[0].nonzero().flatten().tolist() == [1, 2, 3]  # after bos (template "{image}")
    visual = model.encode(batch())
    assert torch.allclose(forced.inputs.inputs_embeds[forced.visual_mask].view(2, 3, -1), visual, atol=1e-5)


def test_attention_and_confidence_on_model(model: TwoStageFinetune) -> None:
    reports = ["No pneumothorax.", "Moderate cardiomegaly."]
    per_layer = prompt_attention_per_layer(model, batch(), reports)
    assert per_layer.shape == (2, 2)  # [n_layers, B]
    assert torch.isfinite(per_layer).all() and (per_layer >= 0).all()
    confidence = report_confidence(model, batch(), reports)
    assert confidence.shape == (2,) and ((confidence > 0) & (confidence < 1)).all()


# -- the commands on a trained run ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_analyze_commands_on_a_run(workdir: Path, tiny_llm: Path) -> None:
    """``radiolm analyze prompt-attention | prompt-similarity | token-confidence`` on a 1-epoch tiny phantom run."""
    from radiolm.cli import main as cli

    from .conftest import REPO

    model = "--model.init_args."
    cli(
        [
            "fit",
            "-c",
            str(REPO / "experiments" / "two_stage_phantom.yaml"),
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=2",
            "--trainer.precision=32-true",
            f"{model}language_model.init_args.name_or_path={tiny_llm}",
            f"{model}vision_encoder.init_args.name=vit_mae",  # a tiny ViT-MAE from config (the YAML's: pretrained)
            f"{model}vision_encoder.init_args.pretrained=false",
            f"{model}vision_encoder.init_args.image_size=32",
            f"{model}vision_encoder.init_args.model_kwargs={TINY_VIT_MAE}",
            f"{model}visual_mapper.init_args.heads=4",
            f"{model}decoding.max_new_tokens=6",
            "--data.init_args.n=20",
            "--data.init_args.image_size=64",
            "--data.init_args.num_workers=0",
            "--data.init_args.batch_size=2",
            "--test_after_fit=false",
        ]
    )
    (run,) = sorted((workdir / "runs" / "two_stage_phantom").glob("version_*"))
    for name in ("prompt-attention", "prompt-similarity", "token-confidence"):
        cli(["analyze", name, "--run", str(run), "--ckpt", "last", "--limit", "4"])
        assert (run / f"{name}.png").stat().st_size > 0
        summary = json.loads((run / f"{name}.json").read_text())
        assert summary["n_studies"] == 4
    attention = json.loads((run / "prompt-attention.json").read_text())
    assert len(attention["per_layer_mean"]) == 2  # the tiny LLM's two layers
    assert len(json.loads((run / "token-confidence.json").read_text())["confidence"]) == 4
