"""``radiolm bench dia-llama-step``: Dia-LLaMA's training steps at the paper's shapes, a case of ``radiolm bench
train`` (:mod:`radiolm.benchmarks.train`) kept under its old name and options.

    radiolm bench dia-llama-step --steps 6 --warmup 2          # one GPU, ZeRO-2, bf16
    radiolm bench dia-llama-step --tiny --accelerator cpu --strategy auto --precision 32-true  # the code path

is ``radiolm bench train -c experiments/dia_llama.yaml --random-weights --data synthetic`` with the trainer,
batch and report length set from these options: LLaMA-2-7B from its architecture (:mod:`radiolm.benchmarks.
random_weights`), RadFM's ViT3D at 256 x 256 x 64, the perceiver, DAA, prototype memory and the diagnostic text
prompt, LoRA r=8 on q_proj / v_proj and gradient checkpointing, as the experiment configures them; every step one
micro-batch of ``--batch-size`` synthetic volumes whose reports are ``--report-tokens`` long. ``--steps`` counts
every step, the first ``--warmup`` untimed. ``--tiny`` swaps in a 2-layer LLM (with a word-level tokenizer made
here) and a 1-layer ViT at 32 x 32 x 8 to check the code path on a CPU.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import torch

from radiolm.errors import RadioLMError

__all__ = ["main", "make_llm_folder", "train_argv"]

WORDS = [f"w{i}" for i in range(500)]

TINY_LLM: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
}
TINY_VIT: dict[str, Any] = {
    "img_size": [32, 32, 8],
    "patch_size": [16, 16, 4],
    "hidden_size": 48,
    "num_layers": 1,
    "mlp_dim": 64,
    "pos_table": [2, 2, 2],  # the patch grid
}
EXPERIMENT = Path(__file__).resolve().parents[2] / "experiments" / "dia_llama.yaml"


def make_llm_folder(out: Path, shapes: dict[str, Any], vocab_size: int = 32000) -> Path:
    """A LlamaConfig of ``shapes`` and a word-level tokenizer (``w0`` .. ``w499`` + the prompt's words)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, PreTrainedTokenizerFast

    from radiolm.parts.diagnostic_prompt import DiagnosticTextPrompt

    prompt_words = " ".join(DiagnosticTextPrompt()(torch.zeros(1, 14)) + DiagnosticTextPrompt()(torch.ones(1, 14)))
    vocab = {t: i for i, t in enumerate(["<unk>", "<s>", "</s>", "<pad>", *WORDS, *sorted(set(prompt_words.split()))])}
    word_level = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=word_level, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tokenizer.save_pretrained(out)
    LlamaConfig(vocab_size=vocab_size, bos_token_id=1, eos_token_id=2, pad_token_id=3, **shapes).save_pretrained(out)
    return out


def train_argv(args: argparse.Namespace, tiny_llm: Path | None = None) -> list[str]:
    """The ``radiolm bench train`` arguments that these options stand for."""
    if not EXPERIMENT.is_file():
        raise RadioLMError(f"{EXPERIMENT} not found: run from a checkout of the suite (experiments/ is not installed)")
    model = "--model.init_args"
    argv = ["-c", str(EXPERIMENT), "--random-weights", "--data", "synthetic"]
    argv += ["--steps", str(args.steps - args.warmup), "--warmup", str(args.warmup)]
    argv += [f"--trainer.{k}={getattr(args, k)}" for k in ("accelerator", "devices", "strategy", "precision")]
    argv += [f"--data.init_args.batch_size={args.batch_size}"]
    argv += [f"{model}.prompt.init_args.max_report_tokens={args.report_tokens}"]
    if tiny_llm is not None:
        argv.append(f"{model}.language_model.init_args.name_or_path={tiny_llm}")
        argv.append(f"{model}.visual_mapper.init_args.depth=1")
        for key, value in TINY_VIT.items():
            argv.append(f"{model}.volume_encoder.init_args.{key}={str(value).replace(' ', '')}")
    if args.out:
        argv += ["--out", str(args.out)]
    return argv


def main(argv: list[str] | None = None) -> None:
    """``radiolm bench dia-llama-step``: ``radiolm bench train`` on experiments/dia_llama.yaml (see above)."""
    from radiolm.benchmarks.train import main as bench_train

    parser = argparse.ArgumentParser(prog="radiolm bench dia-llama-step", description=__doc__)
    parser.add_argument("--steps", type=int, default=6, help="training steps (optimizer steps), warm-up included")
    parser.add_argument("--warmup", type=int, default=2, help="first steps not timed")
    parser.add_argument("--batch-size", type=int, default=1, help="studies per step and device")
    parser.add_argument("--report-tokens", type=int, default=256, help="tokens of each synthetic report")
    parser.add_argument("--strategy", default="deepspeed_stage_2", help="Lightning strategy (deepspeed_stage_2)")
    parser.add_argument("--precision", default="bf16-mixed")
    parser.add_argument("--accelerator", default="gpu")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--tiny", action="store_true", help="2-layer LLM and 1-layer ViT: check the code path")
    parser.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    args = parser.parse_args(argv)
    if args.steps <= args.warmup:
        parser.error("--steps must exceed --warmup")
    with tempfile.TemporaryDirectory() as tmp:
        tiny_llm = make_llm_folder(Path(tmp), TINY_LLM, 1024) if args.tiny else None
        bench_train(train_argv(args, tiny_llm))
