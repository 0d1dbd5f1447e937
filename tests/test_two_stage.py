"""Two-stage fine-tuning (Lu et al.): QueryMapper shapes, the paper's LoRA counts, the paper's settings (every
experiment runs through the CLI in tests/test_experiments.py).

The LoRA counts (Table 1 "LM Tunable": 0.29M / 1.47M / 4.19M) are measured on GPT-2 S / L and OpenLLaMA-7B built
from their configs on the meta device, with the LoRA settings read from the experiments' part files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml

from radiolm.cli import main
from radiolm.parts.language_model import LanguageModel
from radiolm.parts.mappers import QueryMapper
from radiolm.parts.trainable import count_trainable
from radiolm.tables import load_spec, row_command

from .conftest import REPO

PAPER_EXPERIMENTS = [
    REPO / "experiments" / f"two_stage_{name}.yaml" for name in ("gpt2_small", "gpt2_large", "open_llama_7b")
]
PARTS = REPO / "experiments" / "_base" / "parts"


# -- QueryMapper ---------------------------------------------------------------------------------------------------
def test_query_mapper_shapes() -> None:
    """§3: 225 ResNet-50 tokens of 2048 -> 10 soft-prompt tokens of the LM width (GPT-2 S: 768)."""
    mapper = QueryMapper(2048, 768)
    out = mapper(torch.randn(2, 225, 2048))
    assert out.shape == (2, 10, 768)
    assert QueryMapper(64, 32, num_queries=3, heads=4)(torch.randn(5, 7, 64)).shape == (5, 3, 32)
    # one decoder layer: queries, self- and cross-attention (k, v from 2048), feed-forward, 5 LayerNorms
    d, i, f = 768, 2048, 4 * 768
    expected = 10 * d + 2 * i + 4 * 2 * d + (4 * d * d + 4 * d) + (2 * d * d + 2 * d * i + 4 * d) + (2 * d * f + d + f)
    assert sum(p.numel() for p in mapper.parameters()) == expected == 11_431_168


def test_query_mapper_rejects_bad_heads() -> None:
    with pytest.raises(ValueError, match="heads=7 must divide the LLM width 768"):
        QueryMapper(2048, 768, heads=7)


# -- LoRA counts (Table 1) -----------------------------------------------------------------------------------------
def lora_args(part: str) -> dict[str, object]:
    init = yaml.safe_load((PARTS / part).read_text())["init_args"]
    return {k: init[k] for k in ("trainable", "lora_rank", "lora_alpha", "lora_dropout", "lora_target_modules")}


def config_folder(out: Path, config: object, tiny_llm: Path) -> Path:
    config.save_pretrained(out)  # type: ignore[attr-defined]
    for f in tiny_llm.glob("tokenizer*"):  # the tokenizer does not change the counts
        shutil.copy(f, out / f.name)
    return out


@pytest.mark.parametrize(
    ("part", "expected", "paper"),
    [
        ("gpt2_small_lora.yaml", 294_912, 0.29e6),
        ("gpt2_large_lora.yaml", 1_474_560, 1.47e6),
        ("open_llama_7b_lora.yaml", 4_194_304, 4.19e6),
    ],
    ids=["gpt2-s", "gpt2-l", "open-llama-7b"],
)
def test_lora_parameter_counts(part: str, expected: int, paper: float, tmp_path: Path, tiny_llm: Path) -> None:
    from transformers import GPT2Config, LlamaConfig

    configs = {
        "gpt2_small_lora.yaml": GPT2Config(),  # gpt2: 12 x 768
        "gpt2_large_lora.yaml": GPT2Config(n_embd=1280, n_layer=36, n_head=20),  # gpt2-large
        "open_llama_7b_lora.yaml": LlamaConfig(  # openlm-research/open_llama_7b
            hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, vocab_size=32000
        ),
    }
    folder = config_folder(tmp_path / "lm", configs[part], tiny_llm)
    with torch.device("meta"):
        llm = LanguageModel(str(folder), pretrained=False, **lora_args(part))  # type: ignore[arg-type]
    assert count_trainable(llm) == expected
    assert abs(expected - paper) / paper < 0.05


# -- the paper's settings ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("experiment", PAPER_EXPERIMENTS, ids=lambda p: p.stem)
def test_paper_settings(experiment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Appendix A: batch 16, AdamW, 50 epochs, lr 1e-4 (GPT2-S) / 5e-5, selection by F1-CXB-14; §3: 1 frozen epoch."""
    with pytest.raises(SystemExit):
        main(["fit", "-c", str(experiment), "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    init = config["model"]["init_args"]
    assert config["trainer"]["max_epochs"] == 50 and config["data"]["init_args"]["batch_size"] == 16
    assert init["optimizer"]["class_path"] == "torch.optim.AdamW"
    assert init["optimizer"]["init_args"]["lr"] == (1e-4 if "gpt2_small" in experiment.stem else 5e-5)
    assert init["selection"] == {"f1_cxb_14": 1.0}
    assert init["language_model"]["init_args"]["gradient_checkpointing"] is True
    assert init["language_model"]["init_args"]["lora_rank"] == 8
    assert init["vision_encoder"]["init_args"]["image_size"] == 480
    assert init["image_preprocessing"] == "biovil"  # BioViL's 512 -> 480 crop, no normalisation (§4, ref. [3])
    assert config["data"]["init_args"]["report_key"] == "findings"
    assert config["data"]["init_args"]["max_views"] == 1
    unfreeze = [c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("EncoderUnfreeze")]
    assert unfreeze[0]["init_args"]["freeze_epochs"] == 1


def test_sweep_keys_resolve(capsys: pytest.CaptureFixture[str]) -> None:
    """Every parameter of the W&B sweep is a real CLI key of the command's experiment."""
    sweep = yaml.safe_load((REPO / "experiments" / "sweeps" / "two_stage_lr.yaml").read_text())
    assert sweep["program"] == "lightning" and sweep["metric"] == {"name": "val/selection", "goal": "maximize"}
    assert sweep["parameters"]["model.init_args.optimizer.init_args.lr"]["values"] == [2e-5, 5e-5, 1e-4]
    config = sweep["command"][sweep["command"].index("-c") + 1]
    for i in range(3):
        args = [
            f"--{key}={spec['values'][i] if 'values' in spec else spec['value']}"
            for key, spec in sweep["parameters"].items()
        ]
        with pytest.raises(SystemExit):
            main(["fit", "-c", str(REPO / config), *args, "--print_config"])
        resolved = yaml.safe_load(capsys.readouterr().out)
        init = resolved["model"]["init_args"]
        assert init["optimizer"]["init_args"]["lr"] == [2e-5, 5e-5, 1e-4][i]
        assert (
            init["language_model"]["init_args"]["name_or_path"]
            == [
                "gpt2",
                "gpt2-large",
                "openlm-research/open_llama_7b",
            ][i]
        )
        unfreeze = [c for c in resolved["trainer"]["callbacks"] if c["class_path"].endswith("EncoderUnfreeze")]
        assert unfreeze[0]["init_args"]["freeze_epochs"] == 50


@pytest.mark.parametrize("spec", ["two_stage.yaml", "two_stage_phantom.yaml"])
def test_table_specs(spec: str) -> None:
    """Table 1 (1- vs 2-stage), Appendix C Table 2 (stage 1 for 50 epochs, then 50 more) and the frozen arm."""
    path = REPO / "experiments" / "tables" / spec
    tables = load_spec(path)
    rows = {row.name: row for table in tables for row in table.rows}
    for table in tables:
        assert [c.key for c in table.columns][:4] == ["bleu4", "rouge_l", "f1_cxb_14", "f1_cxb_5"]
    for row in rows.values():
        assert (REPO / row.config).is_file()
        command = row_command(path, row)
        assert ("--trainer.callbacks.freeze_epochs=0" in command) == row.name.endswith("1stage")
        assert ("--trainer.callbacks.freeze_epochs=50" in command) == row.name.endswith(("stage1-50", "frozen"))
        assert ("--trainer.max_epochs=100" in command) == row.name.endswith("stage1-50")  # 50 + 50 epochs
    assert len(rows) == (12 if spec == "two_stage.yaml" else 2)
    if spec == "two_stage.yaml":
        assert [t.source.split(", ")[-1] for t in tables[:2]] == ["Table 1", "Table 2"]
        assert rows["gpt2-s-stage1-50"].paper == {
            "bleu4": 0.059,
            "rouge_l": 0.231,
            "f1_cxb_14": 0.241,
            "f1_cxb_5": 0.345,
        }
