"""LanguageModel: a Hugging Face causal LM + tokenizer behind the few calls the methods need."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from radiolm.assets import resolve_language_model
from radiolm.errors import MissingAssetError
from radiolm.parts.trainable import Trainable

__all__ = ["LanguageModel"]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class LanguageModel(nn.Module):
    """A causal LM that consumes prefix embeddings.

    Args:
        name_or_path: HF hub id (``meta-llama/Llama-2-7b-chat-hf``), a local folder, or a built-in alias
            (``smollm2-135m``, resolved offline by :mod:`radiolm.assets`).
        trainable: ``frozen`` (R2GenGPT, bidirectional, CMRG), ``lora`` (two-stage, Dia-LLaMA) or ``full``.
        lora_rank: LoRA rank.
        lora_alpha: LoRA alpha.
        lora_dropout: LoRA dropout.
        lora_target_modules: Module names to adapt; ``None`` uses peft's defaults for the architecture
            (``q_proj``/``v_proj`` for Llama, ``c_attn`` for GPT-2).
        dtype: Weight dtype (``bfloat16`` for a 7B model on GPU; the CPU demo keeps ``float32`` under autocast).
        pretrained: ``False`` builds the architecture from its ``config.json`` with random weights (tests,
            benchmarks of real shapes).
        gradient_checkpointing: Recompute activations in the backward pass.
        attn_implementation: ``sdpa`` by default.
        trust_remote_code: Only when asked for (DESIGN.md rules).
    """

    def __init__(
        self,
        name_or_path: str = "smollm2-135m",
        trainable: Trainable = "frozen",
        lora_rank: int = 8,
        lora_alpha: int = 16,
        lora_dropout: float = 0.05,
        lora_target_modules: list[str] | None = None,
        dtype: Literal["float32", "bfloat16", "float16"] = "float32",
        pretrained: bool = True,
        gradient_checkpointing: bool = False,
        attn_implementation: str = "sdpa",
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        self.name_or_path, self.trainable = name_or_path, trainable
        path = resolve_language_model(name_or_path)
        common: dict[str, Any] = {"trust_remote_code": trust_remote_code}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, **common)
            if pretrained:
                model: Any = AutoModelForCausalLM.from_pretrained(
                    path, dtype=_DTYPES[dtype], attn_implementation=attn_implementation, **common
                )
            else:
                config = AutoConfig.from_pretrained(path, **common)
                config._attn_implementation = attn_implementation
                model = AutoModelForCausalLM.from_config(config, dtype=_DTYPES[dtype], **common)
        except OSError as e:
            raise MissingAssetError(
                "language model", name_or_path, "name_or_path", "not on this machine and the hub is unreachable"
            ) from e
        if self.tokenizer.pad_token_id is None:  # Llama-2 and GPT-2 have none; padding is masked anyway
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model.requires_grad_(trainable == "full")
        if gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.config.use_cache = False
        if trainable == "lora":
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(
                model,
                LoraConfig(
                    task_type="CAUSAL_LM",
                    r=lora_rank,
                    lora_alpha=lora_alpha,
                    lora_dropout=lora_dropout,
                    target_modules=lora_target_modules,
                ),
            )
        self.model: Any = model

    @property
    def base(self) -> Any:
        """The transformers model (under the peft wrapper when LoRA is on)."""
        return self.model.get_base_model() if self.trainable == "lora" else self.model

    @property
    def hidden_size(self) -> int:
        return int(self.base.config.hidden_size)

    def train(self, mode: bool = True) -> LanguageModel:
        """A frozen LLM stays in eval mode (no dropout), as in R2GenGPT."""
        super().train(mode)
        if self.trainable == "frozen":
            self.model.eval()
        return self

    def embed(self, ids: Tensor) -> Tensor:
        """Token ids ``[B, T]`` -> embeddings ``[B, T, D]``."""
        return self.base.get_input_embeddings()(ids)

    def loss(self, inputs_embeds: Tensor, attention_mask: Tensor, labels: Tensor) -> Tensor:
        """Next-token cross-entropy averaged over the labelled tokens (R2GenGPT Eq. 2).

        Logits are computed only where a label exists (the report and eos), not over the whole vocabulary at every
        prefix position: the same loss as ``model(labels=...)`` at a fraction of the head's cost.

        Args:
            inputs_embeds: ``[B, T, D]``.
            attention_mask: ``[B, T]``.
            labels: ``[B, T]`` with -100 where no loss is taken.
        """
        decoder = self.base.get_decoder()
        hidden = decoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask, use_cache=False)[0]
        return self.loss_from_hidden(hidden, labels)

    def loss_from_hidden(self, hidden: Tensor, labels: Tensor) -> Tensor:
        """:meth:`loss` from last-layer hidden states ``[B, T, D]`` already computed (:meth:`hidden_states`), for a
        method that also reads the states (CMRG-LLM's ``h^p``) and so runs the decoder once."""
        targets = labels[:, 1:]
        keep = targets != -100
        logits = self.base.get_output_embeddings()(hidden[:, :-1][keep])
        return F.cross_entropy(logits.float(), targets[keep])

    def hidden_states(self, inputs_embeds: Tensor, attention_mask: Tensor) -> Tensor:
        """Last-layer hidden states ``[B, T, D]`` (for methods that read the LLM's states, e.g. T2V)."""
        decoder = self.base.get_decoder()
        return decoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask, use_cache=False)[0]
