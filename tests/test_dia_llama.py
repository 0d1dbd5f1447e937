"""Dia-LLaMA: disease-aware attention, prototype memory and L_DP, diagnostic prompts, the method on tiny models,
the LoRA count of LLaMA-2-7B, the full experiment's paper settings (both experiments run through the CLI in
tests/test_experiments.py)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from radiolm.batch import ReportBatch
from radiolm.cli import main
from radiolm.errors import DataError
from radiolm.methods.dia_llama import DiaLLaMA
from radiolm.parts.diagnostic_prompt import DiagnosisTokenPrompt, DiagnosticTextPrompt, diagnosis_targets
from radiolm.parts.disease_attention import DiseaseAwareAttention, MeanPoolDiseaseFeatures
from radiolm.parts.language_model import LanguageModel
from radiolm.parts.losses import disease_prototype_loss
from radiolm.parts.mappers import PerceiverResampler
from radiolm.parts.prototype_memory import DiseaseClassifier, DiseasePrototypeMemory
from radiolm.parts.trainable import count_trainable
from radiolm.parts.volume_encoder import VolumeEncoder

from .conftest import REPO

EXPERIMENT = REPO / "experiments" / "dia_llama.yaml"

TINY_VIT = {
    "img_size": (32, 32, 8),
    "patch_size": (16, 16, 4),
    "hidden_size": 24,
    "num_layers": 1,
    "num_heads": 2,
    "dim_head": 8,
    "mlp_dim": 32,
    "in_channels": 1,
}


# -- disease-aware attention (§2.2, Eq. 5) ---------------------------------------------------------------------
def test_disease_aware_attention_shape_and_weights_sum_to_one() -> None:
    torch.manual_seed(0)
    daa = DiseaseAwareAttention(num_diseases=14, num_patches=1024)
    assert tuple(daa.weight.shape) == (14, 1024, 1)  # W_D [L, M, 1]
    patches = torch.randn(2, 1024, 16)
    features = daa(patches)
    assert tuple(features.shape) == (2, 14, 16)  # D_i [B, L, c]
    torch.testing.assert_close(daa.attention().sum(dim=1), torch.ones(14, 1))
    # hand-made: all weight of disease 0 on patch 3 -> its feature is patch 3
    with torch.no_grad():
        daa.weight.zero_()
        daa.weight[0, 3, 0] = 50.0
    features = daa(patches)
    torch.testing.assert_close(features[:, 0], patches[:, 3], atol=1e-4, rtol=0)
    torch.testing.assert_close(features[:, 1], patches.mean(1), atol=1e-5, rtol=0)  # W = 0: the average


def test_mean_pool_ablation_repeats_the_average() -> None:
    patches = torch.arange(12.0).view(1, 3, 4)
    out = MeanPoolDiseaseFeatures(5)(patches)
    assert tuple(out.shape) == (1, 5, 4)
    assert out[0, 4].tolist() == [4.0, 5.0, 6.0, 7.0]


# -- prototype memory and L_DP (§2.3, Eq. 6) ---------------------------------------------------------------------
def test_disease_prototype_loss_on_a_hand_made_example() -> None:
    """One study, two diseases, c = 2, raw dot products, tau = 0.5.

    Disease 0 (present): D = (1, 0), P_0 = (0, 1), P_1 = (1, 0): s_pos = 1/0.5 = 2, s_neg = 0 -> -log(e^2/(e^2+1)).
    Disease 1 (absent): D = (0, 2), P_0 = (0, 1), P_1 = (1, 1): s_pos = 2/0.5 = 4, s_neg = 2/0.5 = 4 -> log 2.
    """
    features = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    prototypes = torch.tensor([[[0.0, 1.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 1.0]]])
    targets = torch.tensor([[1, 0]])
    loss = disease_prototype_loss(features, prototypes, targets, temperature=0.5, normalize=False)
    expected = (-math.log(math.exp(2) / (math.exp(2) + 1)) + math.log(2)) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.4100, abs=1e-4)  # (log(1 + e^-2) + log 2) / 2
    # cosine version: disease 1 now has s_pos = 1/0.5, s_neg = (1/sqrt2)/0.5
    cosine = disease_prototype_loss(features, prototypes, targets, temperature=0.5)
    d1 = -math.log(math.exp(2) / (math.exp(2) + math.exp(math.sqrt(2))))
    assert cosine.item() == pytest.approx((-math.log(math.exp(2) / (math.exp(2) + 1)) + d1) / 2, abs=1e-6)


def test_prototype_memory_diagnoses_by_the_closer_prototype() -> None:
    memory = DiseasePrototypeMemory(num_diseases=2, dim=2)
    assert memory.temperature.item() == pytest.approx(0.07)
    assert memory.log_inv_temperature.requires_grad
    with torch.no_grad():
        memory.prototypes.copy_(torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]]))
    features = torch.tensor([[[0.1, 0.9], [0.9, 0.1]], [[1.0, 0.2], [0.3, 2.0]]])
    assert memory.predict(features).tolist() == [[1, 0], [0, 1]]
    assert memory.prototype(torch.tensor([[1, 0]])).tolist() == [[[0.0, 1.0], [1.0, 0.0]]]
    loss = memory.loss(features, torch.tensor([[1, 0], [0, 1]]))
    loss.backward()
    assert memory.log_inv_temperature.grad is not None and memory.prototypes.grad is not None


def test_classifier_head_ablation() -> None:
    head = DiseaseClassifier(3, 4)
    features = torch.randn(2, 3, 4)
    assert tuple(head.logits(features).shape) == (2, 3, 2)
    assert head.predict(features).shape == (2, 3)
    assert head.loss(features, torch.zeros(2, 3, dtype=torch.long)).item() > 0


# -- diagnostic prompts (§2.4, Table 3) --------------------------------------------------------------------------
def test_diagnostic_text_prompt_for_a_label_vector() -> None:
    labels = torch.tensor([[1, 0, -1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
    states = diagnosis_targets(labels)  # uncertain (-1) is absent (§3.1)
    assert states[0, :4].tolist() == [1, 0, 0, 1]
    text = DiagnosticTextPrompt()(states)[0]
    assert text.startswith(
        "The enlarged cardiomediastinum is present in this image. The cardiomegaly is absent in this image. "
        "The lung opacity is absent in this image. The lung lesion is present in this image."
    )
    assert text.endswith("The no finding is absent in this image.")
    assert text.count("in this image.") == 14
    short = DiagnosticTextPrompt(diseases=["Cardiomegaly", "Pleural Effusion"])(torch.tensor([[0, 1]]))
    assert short == ["The cardiomegaly is absent in this image. The pleural effusion is present in this image."]


def test_token_prompt_picks_pos_and_neg() -> None:
    tokens = DiagnosisTokenPrompt(dim=4)
    out = tokens(torch.tensor([[1, 0, 1]]))
    assert tuple(out.shape) == (1, 3, 4)
    assert torch.equal(out[0, 0], tokens.embeddings[1]) and torch.equal(out[0, 1], tokens.embeddings[0])


# -- LoRA count of LLaMA-2-7B (§3.2: "0.06% of the whole parameters") ----------------------------------------------
def test_lora_parameters_of_llama2_7b(tmp_path: Path, tiny_llm: Path) -> None:
    from transformers import LlamaConfig

    LlamaConfig(
        hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, vocab_size=32000
    ).save_pretrained(tmp_path)
    for f in tiny_llm.glob("tokenizer*"):
        shutil.copy(f, tmp_path / f.name)
    with torch.device("meta"):
        llm = LanguageModel(
            str(tmp_path),
            pretrained=False,
            dtype="bfloat16",
            trainable="lora",
            lora_rank=8,
            lora_alpha=32,
            lora_dropout=0.1,
            lora_target_modules=["q_proj", "v_proj"],
        )
    trainable = count_trainable(llm)
    total = sum(p.numel() for p in llm.parameters())
    assert trainable == 4_194_304  # 32 layers x 2 projections x (4096 x 8 + 8 x 4096)
    assert round(100 * trainable / total, 2) == 0.06


# -- the method on tiny models ------------------------------------------------------------------------------------
def make_batch(n: int = 2) -> ReportBatch:
    torch.manual_seed(1)
    labels = torch.zeros(n, 14, dtype=torch.long)
    labels[0, 1] = 1  # cardiomegaly
    labels[-1, 9] = -1  # uncertain effusion -> absent
    return ReportBatch(
        ids=[f"s{i}" for i in range(n)],
        reports=["Moderate cardiomegaly.", "The lungs are clear."][:n],
        labels=labels,
        volumes=torch.randn(n, 1, 8, 32, 32),
        domain=["ct"] * n,
        language=["en"] * n,
    )


def make_model(tiny_llm: Path, **kwargs: object) -> DiaLLaMA:
    torch.manual_seed(0)
    return DiaLLaMA(
        volume_encoder=VolumeEncoder(**TINY_VIT),  # type: ignore[arg-type]
        language_model=LanguageModel(str(tiny_llm), trainable="lora", lora_target_modules=["q_proj", "v_proj"]),
        visual_mapper=lambda c, d: PerceiverResampler(c, d, num_latents=4, depth=1, heads=2, dim_head=8),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("prompt_type", ["text", "token", "feature", "none"])
def test_method_losses_and_generation(tiny_llm: Path, prompt_type: str) -> None:
    model = make_model(
        tiny_llm,
        prompt_type=prompt_type,
        disease_attention=prompt_type != "none",
        prototype_memory=prompt_type != "none",
    )
    batch = make_batch()
    losses = model.compute_losses(batch)
    if prompt_type == "none":  # all off: the RadFM-style baseline, L_LM only
        assert set(losses) == {"loss", "lm"} and model.diagnoser is None
        torch.testing.assert_close(losses["loss"], 4.0 * losses["lm"])
    else:
        assert set(losses) == {"loss", "lm", "dp"}
        torch.testing.assert_close(losses["loss"], losses["dp"] + 4.0 * losses["lm"])  # Eq. 7, lambda = 4
    losses["loss"].backward()
    assert model.visual_mapper.latents.grad is not None
    n_visual = 4 + (14 if prompt_type in ("token", "feature") else 0)
    model.eval()
    assert tuple(model.encode(batch).shape) == (2, n_visual, 32)
    model.decoding.min_new_tokens, model.decoding.max_new_tokens, model.decoding.num_beams = 1, 3, 1
    reports = model.generate(batch)
    assert len(reports) == 2 and all(isinstance(r, str) for r in reports)


def test_training_without_labels_names_labels_csv(tiny_llm: Path) -> None:
    """No labels (no labels.csv): L_DP and the prompts would learn "no disease"; refused, naming the fix. The
    RadFM-style baseline (no diagnosis branch) trains without labels."""
    batch = make_batch()
    batch.labels.fill_(-1)
    with pytest.raises(DataError, match=r"none of \['s0', 's1'\] has any \(no labels\.csv.*radiolm label"):
        make_model(tiny_llm).compute_losses(batch)
    baseline = make_model(tiny_llm, prompt_type="none", disease_attention=False, prototype_memory=False)
    assert set(baseline.compute_losses(batch)) == {"loss", "lm"}


def test_classifier_head_and_mean_pool_when_dpm_and_daa_are_off(tiny_llm: Path) -> None:
    model = make_model(tiny_llm, disease_attention=False, prototype_memory=False)
    assert isinstance(model.disease_features, MeanPoolDiseaseFeatures)
    assert isinstance(model.diagnoser, DiseaseClassifier)
    assert set(model.compute_losses(make_batch())) == {"loss", "lm", "cls"}
    with pytest.raises(ValueError, match="prototype_memory"):
        make_model(tiny_llm, prompt_type="feature", prototype_memory=False)


@pytest.mark.parametrize("mode", ["ground_truth", "predicted"])
def test_train_prompt_labels_switch(tiny_llm: Path, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """ground_truth: training prompts state the labels; predicted: the branch's own diagnosis. Generation always
    uses the prediction."""
    model = make_model(tiny_llm, train_prompt_labels=mode)
    batch = make_batch()
    predicted = torch.ones(2, 14, dtype=torch.long)  # every disease "present": differs from the labels
    monkeypatch.setattr(model.diagnoser, "predict", lambda features: predicted)
    seen: list[list[str] | None] = []
    build = model.prompt.build

    def spy(lm, visual, reports=None, context=None, padding_side=None):  # type: ignore[no-untyped-def]
        seen.append(context)
        return build(lm, visual, reports, context, padding_side)

    monkeypatch.setattr(model.prompt, "build", spy)
    model.compute_losses(batch)
    truth = DiagnosticTextPrompt()(diagnosis_targets(batch.labels))
    guess = DiagnosticTextPrompt()(predicted)
    assert seen[-1] == (truth if mode == "ground_truth" else guess)
    assert "The cardiomegaly is present" in truth[0] and "The cardiomegaly is absent" in truth[1]
    model.eval()
    model.decoding.min_new_tokens, model.decoding.max_new_tokens, model.decoding.num_beams = 1, 2, 1
    model.generate(batch)
    assert seen[-1] == guess


def test_diagnosis_f1_is_micro_over_diseases_and_batches(tiny_llm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``<stage>/diagnosis_f1`` = 2 TP / (2 TP + FP + FN) over every disease of every study seen, then reset."""
    model = make_model(tiny_llm, diseases=["Cardiomegaly", "Edema", "Pleural Effusion"])
    logged: dict[str, float] = {}
    monkeypatch.setattr(model, "_trainer", SimpleNamespace(sanity_checking=False))
    monkeypatch.setattr(model, "log", lambda name, value, **kwargs: logged.__setitem__(name, value))
    # batch 1: TP 1 (study 0, disease 0), FP 1 (study 0, disease 2), FN 1 (study 1, disease 1)
    model.diagnosis_f1.update(torch.tensor([[1, 0, 1], [0, 0, 0]]), torch.tensor([[1, 0, 0], [0, 1, 0]]))
    # batch 2: TP 1, FN 1
    model.diagnosis_f1.update(torch.tensor([[0, 1, 0]]), torch.tensor([[1, 1, 0]]))
    model._log_diagnosis("val")
    assert logged == {"val/diagnosis_f1": pytest.approx(2 * 2 / (2 * 2 + 1 + 2))}  # 4/7
    logged.clear()
    model._log_diagnosis("val")  # reset: nothing seen since
    assert logged == {}
    model.diagnosis_f1.update(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))
    model._log_diagnosis("test")
    assert logged == {"test/diagnosis_f1": 0.0}  # no positives anywhere: 0, not NaN


# -- experiment YAMLs -------------------------------------------------------------------------------------------
def test_full_experiment_resolves_with_deepspeed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", str(EXPERIMENT), "--print_config"])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "class_path: lightning.pytorch.strategies.DeepSpeedStrategy" in out and "stage: 2" in out
    assert "class_path: radiolm.methods.DiaLLaMA" in out  # the short public name
    for line in (
        "max_steps: 2000",
        "accumulate_grad_batches: 8",
        "lm_weight: 4.0",
        "lora_alpha: 32",
        "lr: 5.0e-05",
        "warmup_steps: 20",
        "name: constant",
    ):
        assert line in out, line


def test_gpu_benchmark_code_path_on_cpu(tmp_path: Path) -> None:
    """The ZeRO-2 step benchmark, on tiny shapes without DeepSpeed (DeepSpeed needs CUDA)."""
    from radiolm.benchmarks.dia_llama_step import main as bench

    out = tmp_path / "bench.json"
    args = ["--tiny", "--accelerator", "cpu", "--strategy", "auto", "--precision", "32-true"]
    bench([*args, "--steps", "3", "--warmup", "1", "--report-tokens", "16", "--out", str(out)])
    result = json.loads(out.read_text())  # radiolm bench train's figures, on experiments/dia_llama.yaml
    assert result["steps_timed"] == 2 and result["batch_s_mean"] > 0 and result["samples_per_s"] > 0
    assert result["llm_trainable_params"] == 2 * 2 * (64 * 8 + 8 * 64)  # 2 layers x q, v x LoRA A + B
    assert result["data"] == "synthetic: volumes 1x8x32x32, reports cut at 16 tokens"
    assert result["configs"][0].endswith("experiments/dia_llama.yaml") and result["batch_size"] == 1
