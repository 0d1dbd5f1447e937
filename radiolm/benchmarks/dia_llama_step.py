"""Step time and peak memory of Dia-LLaMA at its real shapes, with random weights, under DeepSpeed ZeRO-2.

    radiolm bench dia-llama-step --steps 6 --warmup 2          # one GPU, ZeRO-2, bf16
    radiolm bench dia-llama-step --tiny --accelerator cpu      # the same code path on a CPU

LLaMA-2-7B is built from its config (hidden 4096, 32 layers, vocabulary 32000; no download), with LoRA r=8 on
q_proj / v_proj and gradient checkpointing; RadFM's ViT3D at 256 x 256 x 64 (1024 tokens of 768, 12 layers);
the perceiver (32 tokens); DAA, prototype memory and the diagnostic text prompt (14 sentences). The tokenizer is a
word-level one made here, so a report of ``--report-tokens`` words is exactly that many tokens. Each training
step is one micro-batch of ``--batch-size`` studies and one optimizer step (no accumulation); the first
``--warmup`` steps are not timed. Prints and writes (``--out``) JSON with the mean / min step time, the peak CUDA
memory allocated and reserved, and the trainable and total parameter counts.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from radiolm.batch import ReportBatch
from radiolm.methods.dia_llama import DiaLLaMA
from radiolm.methods.optim import LRSchedule
from radiolm.parts.generation import DecodingConfig
from radiolm.parts.language_model import LanguageModel
from radiolm.parts.mappers import PerceiverResampler
from radiolm.parts.prompt import PromptTemplate
from radiolm.parts.volume_encoder import VolumeEncoder

__all__ = ["main", "make_llm_folder"]

WORDS = [f"w{i}" for i in range(500)]

# LLaMA-2-7B (meta-llama/Llama-2-7b-hf config.json) and a 2-layer stand-in for --tiny
LLAMA2_7B: dict[str, Any] = {
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
}
TINY_LLM: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
}
RADFM_VIT = {"img_size": (256, 256, 64), "patch_size": (32, 32, 4), "hidden_size": 768, "num_layers": 12}
TINY_VIT = {"img_size": (32, 32, 8), "patch_size": (16, 16, 4), "hidden_size": 48, "num_layers": 1, "mlp_dim": 64}


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


class _RandomStudies(Dataset):
    def __init__(self, n: int, volume: tuple[int, int, int], report_tokens: int) -> None:
        self.n, self.volume, self.report_tokens = n, volume, report_tokens

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(i)
        h, w, d = self.volume
        words = torch.randint(len(WORDS), (self.report_tokens,), generator=g).tolist()
        return {
            "id": f"s{i}",
            "volume": torch.randn(1, d, h, w, generator=g),
            "report": " ".join(WORDS[k] for k in words),
            "labels": torch.randint(-1, 2, (14,), generator=g),
        }


def _collate(items: list[dict[str, Any]]) -> ReportBatch:
    return ReportBatch(
        ids=[it["id"] for it in items],
        reports=[it["report"] for it in items],
        labels=torch.stack([it["labels"] for it in items]),
        volumes=torch.stack([it["volume"] for it in items]),
        domain=["ct"] * len(items),
        language=["en"] * len(items),
    )


class _StepTimer(pl.Callback):
    """Wall time of each training step (CUDA-synchronised), from batch start to batch end."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def _sync(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def on_train_batch_start(self, *args: Any) -> None:
        self._sync()
        self._start = time.perf_counter()

    def on_train_batch_end(self, *args: Any) -> None:
        self._sync()
        self.times.append(time.perf_counter() - self._start)


def build_model(llm_folder: Path, tiny: bool) -> DiaLLaMA:
    """Dia-LLaMA at the paper's shapes (or tiny ones), random weights."""
    llm = LanguageModel(
        str(llm_folder),
        pretrained=False,
        dtype="bfloat16",
        trainable="lora",
        lora_rank=8,
        lora_alpha=32,
        lora_dropout=0.1,
        lora_target_modules=["q_proj", "v_proj"],
        gradient_checkpointing=True,
    )
    encoder = VolumeEncoder(**(TINY_VIT if tiny else RADFM_VIT))  # type: ignore[arg-type]
    return DiaLLaMA(
        volume_encoder=encoder,
        language_model=llm,
        visual_mapper=lambda c, d: PerceiverResampler(c, d, depth=1 if tiny else 6),
        prompt=PromptTemplate(template="{image}", max_report_tokens=4096),
        decoding=DecodingConfig(num_beams=1),
        optimizer=lambda params: torch.optim.AdamW(params, lr=5e-5),
        schedule=LRSchedule(name="constant", warmup_steps=20),
    )


def main(argv: list[str] | None = None) -> None:
    """``radiolm bench dia-llama-step``: print the figures (and write them with ``--out``)."""
    parser = argparse.ArgumentParser(prog="radiolm bench dia-llama-step", description=__doc__)
    parser.add_argument("--steps", type=int, default=6, help="training steps (optimizer steps)")
    parser.add_argument("--warmup", type=int, default=2, help="first steps not timed")
    parser.add_argument("--batch-size", type=int, default=1, help="studies per step and device")
    parser.add_argument("--report-tokens", type=int, default=256, help="tokens of each random report")
    parser.add_argument("--strategy", default="deepspeed_stage_2", help="Lightning strategy (deepspeed_stage_2)")
    parser.add_argument("--precision", default="bf16-mixed")
    parser.add_argument("--accelerator", default="gpu")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--tiny", action="store_true", help="2-layer LLM and 1-layer ViT: check the code path")
    parser.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    args = parser.parse_args(argv)
    if args.steps <= args.warmup:
        parser.error("--steps must exceed --warmup")
    result, rank = benchmark(args)
    if rank == 0:
        print(json.dumps(result, indent=2))
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2) + "\n")


def benchmark(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    """Time ``args.steps`` training steps (the first ``args.warmup`` untimed); the figures and this rank."""
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_llm_folder(Path(tmp), TINY_LLM if args.tiny else LLAMA2_7B, 1024 if args.tiny else 32000)
        started = time.perf_counter()
        model = build_model(folder, args.tiny)
        build_s = time.perf_counter() - started
    volume = (TINY_VIT if args.tiny else RADFM_VIT)["img_size"]
    data = DataLoader(
        _RandomStudies(args.steps * args.batch_size * args.devices, volume, args.report_tokens),  # type: ignore[arg-type]
        batch_size=args.batch_size,
        collate_fn=_collate,
    )
    timer = _StepTimer()
    trainer = pl.Trainer(
        accelerator=args.accelerator,
        devices=args.devices,
        strategy=args.strategy,
        precision=args.precision,
        max_steps=args.steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[timer],
    )
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(model, train_dataloaders=data)
    timed = timer.times[args.warmup :]
    result = {
        "shapes": "tiny" if args.tiny else "LLaMA-2-7B + RadFM ViT3D 256x256x64",
        "strategy": args.strategy,
        "precision": args.precision,
        "devices": args.devices,
        "batch_size": args.batch_size,
        "report_tokens": args.report_tokens,
        "steps_timed": len(timed),
        "step_s_mean": sum(timed) / max(1, len(timed)),
        "step_s_min": min(timed) if timed else None,
        "build_s": build_s,
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total_params": sum(p.numel() for p in model.parameters()),
        "lm_trainable_params": sum(p.numel() for p in model.language_model.parameters() if p.requires_grad),
    }
    if torch.cuda.is_available():
        result["peak_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
        result["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
        result["gpu"] = torch.cuda.get_device_name()
    return result, trainer.global_rank
