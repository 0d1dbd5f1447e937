"""Loading RadFM's perceiver and projection (``embedding_layer.perceiver.*``, ``embedding_layer.fc.*``).

RadFM's released ``pytorch_model.bin`` keeps, besides the ViT3D (``embedding_layer.vision_encoder.*``, loaded by
:class:`~radiolm.parts.VolumeEncoder`), the Flamingo perceiver that turns the 1024 x 768 patch features into 32
latents and the linear ``fc`` that maps them to the LLM width. Dia-LLaMA's official code builds the same two
modules (``src/Model/DiaLLaMA/my_embedding_layer.py``: ``PerceiverResampler(dim=768, num_latents=32)`` and
``nn.Linear(768, embedding_dim)``) and loads them from RadFM ("load pretrained perceiver and fc from RadFM"), so
that only the vision encoder, the perceiver and fc, and not the random init, start from RadFM (§2.1, Eq. 4).

Key mapping onto :class:`~radiolm.parts.PerceiverResampler` (its parameter names follow RadFM's)::

    {prefix}perceiver.<key>   ->  <key>          latents, layers.<i>.0.* (attention), layers.<i>.1.* (FF), norm.*
    {prefix}fc.weight / bias  ->  proj.weight / bias

RadFM's ``fc`` is 768 -> 5120 (its MedLLaMA-13B is 5120 wide). Where the LLM has another width (LLaMA2-7B, which
Dia-LLaMA uses, is 4096), ``fc`` cannot be loaded: ``fc_mismatch: error`` (default) refuses with the widths,
``skip`` loads the perceiver, keeps the projection's random init and warns.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from radiolm.errors import MissingAssetError, RadioLMError, unreachable_reason

__all__ = ["FcMismatch", "keys_under", "load_radfm_perceiver", "read_state_dict"]

FcMismatch = Literal["error", "skip"]
"""What to do when RadFM's ``fc`` output width differs from the LLM width: refuse, or keep the random projection."""


def read_state_dict(path: str | Path, what: str, option: str) -> dict[str, Tensor]:
    """A local state dict (``.safetensors``, or a ``torch.save`` file read with ``weights_only=True``).

    Args:
        path: The file.
        what: What the weights are, for the error message (e.g. "RadFM perceiver weights").
        option: The config key that points at the file, for the error message.

    Raises:
        MissingAssetError: when the file does not exist.
        RadioLMError: when the file does not hold a mapping of tensors.
    """
    file = Path(path)
    if not file.is_file():
        raise MissingAssetError(what, str(path), option, unreachable_reason(str(path), "no such file"))
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(file))
    else:
        state = torch.load(file, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise RadioLMError(f"{path}: holds a {type(state).__name__}, not a state dict (key -> tensor); set {option}")
    return state


def _check_keys(path: str | Path, source: str, expected: dict[str, Tensor], found: dict[str, Tensor]) -> None:
    """Missing keys, unexpected keys and shape mismatches, each named, in one error."""
    problems = []
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing:
        problems.append(f"missing {[source + k for k in missing[:5]]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"unexpected {[source + k for k in unexpected[:5]]}{' ...' if len(unexpected) > 5 else ''}")
    for key in sorted(set(expected) & set(found)):
        if tuple(found[key].shape) != tuple(expected[key].shape):
            problems.append(
                f"{source}{key}: shape {tuple(found[key].shape)} in the file, {tuple(expected[key].shape)} in the model"
            )
    if problems:
        raise RadioLMError(
            f"{path}: RadFM's perceiver does not fit the PerceiverResampler ({'; '.join(problems)}); set its "
            "num_latents / depth / heads / dim_head / ff_mult and the encoder width to RadFM's (32 / 6 / 8 / 64 / 4, "
            "768), or the checkpoint_prefix"
        )


def keys_under(state: dict[str, Tensor], prefix: str, path: str | Path, setting: str) -> dict[str, Tensor]:
    """The entries of ``state`` whose key starts with ``prefix``, the prefix removed.

    Raises:
        RadioLMError: when none does (names the file, a few of its keys and the ``setting`` to change).
    """
    found = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not found:
        raise RadioLMError(f"{path}: no key starts with {prefix!r}; set {setting} (keys look like {sorted(state)[:3]})")
    return found


def load_radfm_perceiver(
    perceiver: nn.Module,
    path: str | Path,
    prefix: str = "embedding_layer.",
    fc_mismatch: FcMismatch = "error",
) -> list[str]:
    """Load RadFM's ``{prefix}perceiver.*`` and ``{prefix}fc.*`` into a :class:`~radiolm.parts.PerceiverResampler`.

    Args:
        perceiver: The resampler (parameters ``latents``, ``layers.*``, ``norm.*``, ``proj.*``).
        path: RadFM's checkpoint (or any file with its key names).
        prefix: What precedes ``perceiver.`` and ``fc.`` in the file (RadFM: ``embedding_layer.``).
        fc_mismatch: When ``fc``'s output width differs from ``proj``'s (the LLM width): ``error`` or ``skip``
            (``proj`` keeps its random init, with a warning).

    Returns:
        The names of the module's parameters that were loaded.

    Raises:
        RadioLMError: on a missing or unexpected perceiver / fc key, or a shape that does not fit (each named).
    """
    if fc_mismatch not in ("error", "skip"):
        raise RadioLMError(f"PerceiverResampler: fc_mismatch must be error or skip, got {fc_mismatch!r}")
    state = read_state_dict(path, "RadFM perceiver weights", "checkpoint_path")
    own = perceiver.state_dict()
    body = {k: v for k, v in own.items() if not k.startswith("proj.")}
    found = keys_under(state, prefix + "perceiver.", path, "the PerceiverResampler's checkpoint_prefix")
    fc = {k[len(prefix + "fc.") :]: v for k, v in state.items() if k.startswith(prefix + "fc.")}
    _check_keys(path, prefix + "perceiver.", body, found)
    fc_expected = {"weight": own["proj.weight"], "bias": own["proj.bias"]}
    if set(fc) != set(fc_expected):
        _check_keys(path, prefix + "fc.", fc_expected, fc)
    weights = {**found}
    fc_in, fc_out = int(fc["weight"].shape[1]), int(fc["weight"].shape[0])
    out_dim, in_dim = own["proj.weight"].shape
    if fc_in != in_dim:
        raise RadioLMError(
            f"{path}: {prefix}fc.weight reads width {fc_in}, the perceiver's width is {in_dim}; the encoder's "
            "hidden_size must be RadFM's"
        )
    if fc_out == out_dim:
        weights.update({"proj.weight": fc["weight"], "proj.bias": fc["bias"]})
        _check_keys(path, prefix + "fc.", fc_expected, fc)
    elif fc_mismatch == "error":
        raise RadioLMError(
            f"{path}: {prefix}fc.weight maps {fc_in} -> {fc_out} (RadFM's LLM width), the language model is "
            f"{out_dim} wide; set the PerceiverResampler's fc_mismatch: skip to load the perceiver and start the "
            "projection from random weights"
        )
    else:
        warnings.warn(
            f"{path}: RadFM's fc maps {fc_in} -> {fc_out}, the language model is {out_dim} wide: the perceiver is "
            "loaded, its projection (proj) starts from random weights (fc_mismatch: skip)",
            stacklevel=2,
        )
    perceiver.load_state_dict(weights, strict=False)
    return sorted(weights)
