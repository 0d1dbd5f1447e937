"""Dia-LLaMA's report lengths and decoding as its official code has them where the paper is silent.

CTRG-Chest findings are long (official split CSVs: p90 176 words, longest 376; SmolLM2's tokenizer: p90 229, max
460 tokens; no LLaMA tokenizer here). The official code caps prompt + report at ``max_seq=2048`` tokens in training
(``src/Dataset/dataset_train.py``), generates ``max_new_tokens=300`` (``src/Model/DiaLLaMA/multimodality_model.py``)
and writes the references untruncated (``src/test.py``). A 256-token cap cut the longest ones in training; these
tests pin the resolved experiment so that it cannot come back.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import pytest
import yaml

from radiolm.cli import main
from radiolm.metrics.protocols import PRESETS

from .conftest import REPO

EXPERIMENTS: list[str] = []  # experiments/dia_llama.yaml runs through the CLI in test_experiments.py
LONGEST_FINDING_WORDS = 376
TOKENS_PER_WORD = 1.6  # SmolLM2 measured 1.2-1.3 on these texts; a margin for LLaMA's SentencePiece


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """``radiolm fit -c experiments/dia_llama.yaml --print_config``, parsed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", str(REPO / "experiments" / "dia_llama.yaml"), "--print_config"])
    assert exit_info.value.code in (0, None)
    config: dict[str, Any] = yaml.safe_load(out.getvalue())
    return config["model"]["init_args"]


def test_training_targets_are_not_cut(resolved: dict[str, Any]) -> None:
    cap = resolved["prompt"]["init_args"]["max_report_tokens"]
    assert cap == 2048  # the official max_seq
    assert cap > LONGEST_FINDING_WORDS * TOKENS_PER_WORD


def test_decoding_as_the_official_generate(resolved: dict[str, Any]) -> None:
    decoding = resolved["decoding"]
    assert decoding["max_new_tokens"] == 300 and decoding["min_new_tokens"] == 0 and decoding["num_beams"] == 1
    assert decoding["repetition_penalty"] == 1.0


def test_references_are_scored_untruncated(resolved: dict[str, Any]) -> None:
    evaluation = resolved["evaluation"]["init_args"]
    assert evaluation["preset"] == "dia_llama" and not evaluation.get("reference_tokens")
    assert not PRESETS["dia_llama"].reference_tokens
