"""Training precision chosen from what the machine executes natively (DESIGN.md, "Rules that hold everywhere").

Experiments leave ``trainer.precision`` unset; :func:`resolve_precision` picks it when the run starts:

* CUDA GPU with bfloat16 (Ampere and later): ``bf16-mixed`` (the papers' setting);
* CUDA GPU without it: ``16-mixed``;
* CPU with native bfloat16 kernels (AVX-512 BF16 or AMX): ``bf16-mixed`` autocast;
* any other CPU (AVX2 only, Arm without BF16): ``32-true`` — there bf16 matmuls are emulated and run about 40x
  slower than fp32 (a 512x576 @ 576x1536 matmul: 37 ms fp32, 1,636 ms bf16 on an AVX2 cloud CPU).

An explicit ``--trainer.precision`` (or a value in YAML) always wins; a bf16 choice on a CPU without native bf16
gets one warning that says what it costs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

__all__ = ["PrecisionChoice", "cpu_has_native_bf16", "explain_precision", "resolve_precision"]

log = logging.getLogger("radiolm")

# oneDNN runs bf16 matmuls natively from these ISAs up; ONEDNN_MAX_CPU_ISA below them disables the native kernels.
_ONEDNN_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16", "AVX10_1_512", "AVX10_2_512")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bfloat16 matmuls in hardware (AVX-512 BF16 or AMX-BF16), as PyTorch reports it.

    A cap on the instruction set (``ATEN_CPU_CAPABILITY=avx2`` or ``ONEDNN_MAX_CPU_ISA`` below AVX512_CORE_BF16)
    counts as no native bf16: PyTorch then runs the emulated kernels.
    """
    capabilities = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    hardware = bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))
    if not capabilities:  # older torch: the private probes
        hardware = bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    if not hardware:
        return False
    if torch.backends.cpu.get_cpu_capability() not in ("AVX512", "AVX512_BF16", "AMX"):
        return False
    onednn_cap = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "ALL")).upper()
    return onednn_cap in ("ALL", "DEFAULT", *_ONEDNN_BF16_ISAS)


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run gets and why (the line logged at start)."""

    precision: str
    reason: str


def _uses_cuda(accelerator: object) -> bool:
    name = str(accelerator or "auto").lower()
    if name in ("cpu", "mps"):
        return False
    return torch.cuda.is_available() and name in ("auto", "gpu", "cuda")


def resolve_precision(accelerator: object, precision: object = None) -> PrecisionChoice:
    """The precision for ``accelerator`` (``trainer.accelerator``: ``cpu``, ``gpu``, ``cuda``, ``auto``, or an
    Accelerator object); ``precision`` is the user's explicit choice, which wins when given.
    """
    if precision is not None:
        choice = str(precision)
        if "bf16" in choice and not _uses_cuda(accelerator) and not cpu_has_native_bf16():
            return PrecisionChoice(
                choice,
                f"precision {choice} was set explicitly, but this CPU has no native bfloat16 (no AVX-512 BF16 / AMX): "
                "bf16 runs about 40x slower than fp32 here; leave trainer.precision unset to let radiolm choose",
            )
        return PrecisionChoice(choice, f"precision {choice} (set explicitly)")
    if _uses_cuda(accelerator):
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16-mixed", "GPU with bfloat16: training in bf16-mixed")
        return PrecisionChoice("16-mixed", "GPU without bfloat16: training in 16-mixed")
    if cpu_has_native_bf16():
        return PrecisionChoice("bf16-mixed", "CPU with native bf16 (AVX-512 BF16 / AMX): training in bf16-mixed")
    return PrecisionChoice("32-true", "CPU without native bf16: training in fp32")


def explain_precision(choice: PrecisionChoice) -> None:
    """Log the choice once at the start of a run (a warning when it is the slow path)."""
    if "40x slower" in choice.reason:
        log.warning("radiolm: %s", choice.reason)
    else:
        log.info("radiolm: %s", choice.reason)
