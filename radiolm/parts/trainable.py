"""`trainable: frozen | lora | full` for any nn.Module (an ablation is a YAML value, not a class)."""

from __future__ import annotations

from typing import Literal

from torch import nn

__all__ = ["SCHEDULED_ATTR", "Trainable", "apply_trainable", "count_trainable", "is_scheduled"]

Trainable = Literal["frozen", "lora", "full"]

SCHEDULED_ATTR = "radiolm_scheduled"
"""Set (True) on parameters whose gradients a callback switches off for a while (``EncoderUnfreeze``'s stage 1):
they stay in the optimizer and in checkpoints while ``requires_grad`` is off."""


def is_scheduled(param: nn.Parameter) -> bool:
    """Whether a callback has tagged ``param`` with :data:`SCHEDULED_ATTR`."""
    return bool(getattr(param, SCHEDULED_ATTR, False))


def apply_trainable(
    module: nn.Module,
    trainable: Trainable,
    *,
    lora_rank: int = 16,
    lora_alpha: int = 16,
    lora_dropout: float = 0.1,
    lora_target_modules: list[str] | None = None,
) -> nn.Module:
    """Freeze, LoRA-adapt or fully train ``module`` in place and return it.

    ``lora`` injects peft LoRA layers into the modules whose names end with ``lora_target_modules`` and trains
    only those (``W0 + BA`` with rank ``lora_rank``, scale ``lora_alpha / lora_rank``).
    """
    if trainable not in ("frozen", "lora", "full"):
        raise ValueError(f"trainable must be 'frozen', 'lora' or 'full', got {trainable!r}")
    module.requires_grad_(trainable == "full")
    if trainable == "lora":
        from peft import LoraConfig, inject_adapter_in_model

        if not lora_target_modules:
            raise ValueError("trainable: lora needs lora_target_modules (e.g. ['query', 'value'])")
        config = LoraConfig(
            r=lora_rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=list(lora_target_modules)
        )
        module = inject_adapter_in_model(config, module)
        for name, param in module.named_parameters():
            param.requires_grad_("lora_" in name)
    return module


def count_trainable(module: nn.Module) -> int:
    """Number of parameters with ``requires_grad``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
