"""``radiolm bench train|generate`` through the real command on the tiny overlays: the printed table and the
``--out`` JSON carry positive speeds, a peak memory and a padding share in [0, 1]; ``--random-weights`` and the
synthetic batches change what the output says they are."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from radiolm.cli import main

from .conftest import CONF, REPO

DEMO = ["-c", str(REPO / "experiments" / "demo.yaml"), "-c", str(CONF / "demo.yaml")]
R2GENGPT = [
    "-c",
    str(REPO / "experiments" / "r2gengpt_shallow_mimic_cxr.yaml"),
    "-c",
    str(CONF / "r2gengpt_shallow_mimic_cxr.yaml"),
]
FAST = ["--steps", "2", "--warmup", "1"]


def run(mode: str, argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], str]:
    out = tmp_path / f"{mode}.json"
    main(["bench", mode, *argv, *FAST, "--out", str(out)])
    return json.loads(out.read_text()), capsys.readouterr().out


def printed(table: str, row: str) -> float:
    """The first number of a row of the printed table."""
    match = re.search(rf"^\s+{re.escape(row)}\s+([0-9.]+)", table, re.M)
    assert match, f"no row {row!r} in:\n{table}"
    return float(match.group(1))


def check_figures(result: dict[str, Any], table: str, speed: str, unit: str) -> None:
    assert result[speed] > 0 and printed(table, unit) == pytest.approx(result[speed], abs=1e-3)
    assert result["steps_timed"] == 2 and result["batch_s_min"] > 0
    assert result["peak_memory_gib"] > 0 and printed(table, "peak memory") > 0
    assert 0.0 <= result["padding_share"] <= 1.0 and 0.0 <= printed(table, "padding share") <= 1.0
    assert result["llm_tokens_per_sample"] > 0
    assert result["machine"]["accelerator"] == "cpu" and result["machine"]["precision"] == "32-true"


def test_bench_train_demo(tiny_workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result, table = run("train", DEMO, tmp_path, capsys)
    check_figures(result, table, "samples_per_s", "samples/s")
    assert result["data"].startswith("experiment data: PhantomCXRDataModule")
    assert result["weights"] == ["pretrained"] and result["batch_size"] == 2
    # bucketing batches reports of similar length, yet the reports still differ: some padding, not all
    assert 0.0 < result["padding_share"] < 0.5
    assert not (tiny_workdir / "runs").exists() and not list(tiny_workdir.glob("*.yaml"))  # nothing written


def test_bench_generate_demo(tiny_workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result, table = run("generate", DEMO, tmp_path, capsys)
    check_figures(result, table, "reports_per_s", "reports/s")
    assert result["batch_size"] == 2 and "beams 1, new tokens 3-32" in table
    assert 3 <= result["decoding_steps_per_batch"] <= 32


def test_bench_r2gengpt_random_weights_synthetic(
    tiny_workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another method, its parts rebuilt with random weights, on synthetic batches of its shapes (MIMIC's fragment
    feeds one view at the encoder's 64 px, each report fills max_report_tokens): chosen by itself when the data is
    absent (as MIMIC-CXR on a GPU machine), or asked for."""
    absent = ["--data.init_args.annotation_path=nowhere/annotation.json"]
    result, table = run("train", [*R2GENGPT, "--random-weights", *absent], tmp_path, capsys)
    check_figures(result, table, "samples_per_s", "samples/s")
    shapes = "synthetic: 1 view(s) of 3x64x64, reports cut at 100 tokens"
    assert result["data"].startswith(f"{shapes}; the experiment's data did not set up: nowhere/annotation.json")
    assert any("language model" in w and "models/tiny-llm" in w for w in result["weights"])
    assert result["padding_share"] == 0.0  # every synthetic report is cut at the same length
    generated, table = run("generate", [*R2GENGPT, "--random-weights", "--data", "synthetic"], tmp_path, capsys)
    assert generated["data"] == shapes
    check_figures(generated, table, "reports_per_s", "reports/s")
    assert "beams 3, new tokens 80-120" in table


def test_random_weights_known_architectures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_llm: Path) -> None:
    """Hub ids without a download become their architecture: Llama-2-7B's config folder (with the stand-in
    tokenizer, here the tiny one), Swin-B's model type."""
    from jsonargparse import Namespace
    from transformers import AutoConfig

    from radiolm.benchmarks import random_weights
    from radiolm.benchmarks.random_weights import randomize

    monkeypatch.setenv("RADIOLM_CACHE", str(tmp_path))
    monkeypatch.setattr(random_weights, "STAND_IN_TOKENIZER", str(tiny_llm))  # SmolLM2 would be converted again
    config = Namespace(
        model=Namespace(
            class_path="radiolm.methods.R2GenGPT",
            init_args=Namespace(
                language_model=Namespace(
                    class_path="radiolm.parts.LanguageModel",
                    init_args=Namespace(name_or_path="meta-llama/Llama-2-7b-chat-hf", pretrained=True),
                ),
                vision_encoder=Namespace(
                    class_path="radiolm.parts.VisionEncoder",
                    init_args=Namespace(
                        name="microsoft/swin-base-patch4-window7-224",
                        backend="hf",
                        pretrained=True,
                        image_size=None,
                        model_kwargs=None,
                    ),
                ),
            ),
        )
    )
    notes = randomize(config)
    assert len(notes) == 2 and "architecture from the suite's table" in notes[0]
    llm = config.model.init_args.language_model.init_args
    assert llm.pretrained is False and Path(llm.name_or_path).parent == tmp_path / "random-weights"
    llama = AutoConfig.from_pretrained(llm.name_or_path)
    assert (llama.model_type, llama.hidden_size, llama.num_hidden_layers, llama.intermediate_size) == (
        "llama", 4096, 32, 11008,
    )  # fmt: skip
    assert llama.vocab_size == 32000  # the tiny tokenizer's 320 ids fit: no growth
    swin = config.model.init_args.vision_encoder.init_args
    assert (swin.name, swin.backend, swin.pretrained) == ("swin", "hf", False)
    assert swin.model_kwargs["depths"] == [2, 2, 18, 2] and swin.model_kwargs["embed_dim"] == 128


def test_random_weights_blip_text_encoder_and_mae_large_decoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bidirectional experiments' BLIP base text encoder and MAE-large decoder, named by hub id, build offline at
    their real shapes (BERT-base with MiniLM's uncased WordPiece standing in for BLIP's; MAE-large's 512-wide,
    8-layer decoder); the text encoder is counted on the meta device, the decoder runs."""
    from jsonargparse import Namespace

    from radiolm.benchmarks.random_weights import randomize
    from radiolm.parts import MAEImageDecoder, TextEncoder

    monkeypatch.setenv("RADIOLM_CACHE", str(tmp_path))
    text = Namespace(name="Salesforce/blip-image-captioning-base", backend="blip", pretrained=True, max_length=16)
    decoder = Namespace(name="facebook/vit-mae-large", pretrained=True)
    config = Namespace(
        text_encoder=Namespace(class_path="radiolm.parts.TextEncoder", init_args=text),
        image_decoder=Namespace(class_path="radiolm.parts.MAEImageDecoder", init_args=decoder),
    )
    notes = randomize(config)
    assert notes == [
        "text encoder Salesforce/blip-image-captioning-base: architecture from the suite's table, tokenizer of "
        "minilm-l6 as a stand-in",
        "image decoder facebook/vit-mae-large: architecture from the suite's table (vit_mae decoder)",
    ]
    assert text.pretrained is False and decoder.pretrained is False
    with torch.device("meta"):
        encoder = TextEncoder(**vars(text))
    assert encoder.out_dim == 768 and len(encoder.tokenizer) == 30522  # BLIP's adds [DEC] and [ENC]
    assert sum(p.numel() for p in encoder.parameters()) == 108_891_648  # BERT-base, 30,524 ids, no pooler
    mae = MAEImageDecoder(encoder_dim=1024, patch_grid=(14, 14), patch_size=16, **vars(decoder))
    assert mae(torch.zeros(1, 196, 1024)).shape == (1, 3, 224, 224)
    assert mae.decoder.config.decoder_num_hidden_layers == 8 and mae.decoder.decoder_embed.out_features == 512


def test_random_weights_unknown_model_says_what_to_do() -> None:
    from radiolm.benchmarks.random_weights import random_llm_folder
    from radiolm.errors import RadioLMError

    with pytest.raises(RadioLMError, match=r"point language_model\.init_args\.name_or_path at a folder"):
        random_llm_folder("someone/unknown-13b")


def test_bench_needs_an_experiment(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["bench", "train", "--steps", "1"])
    assert stop.value.code == 2 and "-c experiments/<name>.yaml" in capsys.readouterr().err


@pytest.mark.gpu
def test_bench_r2gengpt_shallow_on_gpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """R2GenGPT shallow at its real shapes (Swin-B 224 px, Llama-2-7B frozen in bf16), random weights, one GPU:
    the figures the README compares with the official code's (46.1 samples/s, 2.58 reports/s on an H100)."""
    argv = ["-c", str(REPO / "experiments" / "r2gengpt_shallow_mimic_cxr.yaml"), "--random-weights"]
    argv += ["--trainer.devices=1", "--steps", "6", "--warmup", "2"]
    for mode, speed in (("train", "samples_per_s"), ("generate", "reports_per_s")):
        out = tmp_path / f"{mode}.json"
        main(["bench", mode, *argv, "--out", str(out)])
        result = json.loads(out.read_text())
        print(capsys.readouterr().out)
        assert result[speed] > 0 and result["machine"]["accelerator"] == "cuda"
        assert result["peak_memory_gib"] > 12.5  # the 7B LLM's bf16 weights alone are 12.6 GiB


@pytest.mark.parametrize("experiment", [pytest.param("demo", marks=pytest.mark.slow), "dia_llama_phantom"])
def test_encoder_probe_trains_the_experiment_s_encoder_alone(
    experiment: str, tiny_workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`radiolm bench encoder-probe`: the experiment's own encoder (X-ray: first view; CT: the volume) and a linear
    head learn the CheXpert positives; one line and one JSON row per epoch with the held-out micro F1."""
    argv = ["-c", str(REPO / "experiments" / f"{experiment}.yaml"), "-c", str(CONF / f"{experiment}.yaml")]
    out = tmp_path / "probe.json"
    main(["bench", "encoder-probe", *argv, "--epochs", "2", "--lr", "1e-3", "--out", str(out)])
    result = json.loads(out.read_text())
    printed_lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert len(result["epochs"]) == 2 and len(printed_lines) == 2
    first, last = result["epochs"]
    assert last["steps"] == 2 * first["steps"] > 0
    assert all(0.0 <= row["held_out_micro_f1"] <= 1.0 and row["train_loss"] > 0 for row in result["epochs"])
    assert result["held_out"] in ("val", "test") and result["machine"]["accelerator"] == "cpu"
