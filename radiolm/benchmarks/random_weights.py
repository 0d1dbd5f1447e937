"""``--random-weights``: an experiment's parts built from their configs with random initialisation, offline.

A benchmark measures shapes, not weights, so ``radiolm bench ... --random-weights`` rewrites the parsed config
before anything is instantiated (:func:`randomize`):

* every part with a ``pretrained`` argument (``LanguageModel``, ``VisionEncoder``, ``TextEncoder``,
  ``MAEImageDecoder``) gets ``pretrained: false``; ``checkpoint_path`` (timm, RadFM's ViT3D) becomes null;
* a model name that is neither a local folder nor a built-in alias is looked up in the small tables below, which
  hold the architecture of the models the experiments name (copied from their public ``config.json``), since
  there is no hub here to read them from. A language model becomes a folder under
  ``$RADIOLM_CACHE/random-weights/`` with that config and a stand-in tokenizer (the built-in SmolLM2's English
  BPE: the architecture's own tokenizer is not on the machine); a vision encoder becomes its transformers model
  type plus the config values (``VisionEncoder(name="swin", backend="hf", pretrained=False, model_kwargs=...)``);
  BLIP's text encoder becomes a folder with BLIP base's config and MiniLM's BERT-uncased WordPiece tokenizer (the
  vocabulary BLIP's tokenizer extends by two tokens), MAE-large's decoder a folder with its ``ViTMAEConfig``.
* A local folder keeps its own ``config.json`` and tokenizer (the real architecture, random weights).

A name in no table and not on disk ends with an error that says to point the option at a folder holding its
``config.json`` (the weights are not needed) or to add it to the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from radiolm.assets import (
    BUILTIN_LANGUAGE_MODELS,
    BUILTIN_TEXT_ENCODERS,
    cache_dir,
    resolve_language_model,
    resolve_text_encoder,
)
from radiolm.errors import RadioLMError

__all__ = [
    "KNOWN_IMAGE_DECODERS",
    "KNOWN_LANGUAGE_MODELS",
    "KNOWN_TEXT_ENCODERS",
    "KNOWN_VISION_ENCODERS",
    "STAND_IN_TEXT_TOKENIZER",
    "STAND_IN_TOKENIZER",
    "random_config_folder",
    "random_llm_folder",
    "randomize",
]

_LLAMA2_7B: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "vocab_size": 32000,
    "tie_word_embeddings": False,
}
KNOWN_LANGUAGE_MODELS: dict[str, dict[str, Any]] = {
    "meta-llama/Llama-2-7b-chat-hf": _LLAMA2_7B,
    "meta-llama/Llama-2-7b-hf": _LLAMA2_7B,
    "openlm-research/open_llama_7b": {**_LLAMA2_7B, "max_position_embeddings": 2048, "rms_norm_eps": 1e-6},
    "gpt2": {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024,
             "vocab_size": 50257},
    "gpt2-large": {"model_type": "gpt2", "n_embd": 1280, "n_layer": 36, "n_head": 20, "n_positions": 1024,
                   "vocab_size": 50257},
}  # fmt: skip
"""Hub id -> the architecture of its ``config.json`` (``model_type`` + the values that set the shapes)."""

KNOWN_VISION_ENCODERS: dict[str, dict[str, Any]] = {
    "microsoft/swin-base-patch4-window7-224": {
        "model_type": "swin", "image_size": 224, "patch_size": 4, "embed_dim": 128, "depths": [2, 2, 18, 2],
        "num_heads": [4, 8, 16, 32], "window_size": 7,
    },
    "facebook/vit-mae-large": {
        "model_type": "vit_mae", "image_size": 224, "patch_size": 16, "hidden_size": 1024, "num_hidden_layers": 24,
        "num_attention_heads": 16, "intermediate_size": 4096,
    },
}  # fmt: skip
"""Hub id -> transformers model type and config values of the image encoders the experiments name."""

KNOWN_TEXT_ENCODERS: dict[str, dict[str, Any]] = {
    "Salesforce/blip-image-captioning-base": {
        "model_type": "blip",
        "text_config": {"vocab_size": 30524, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                        "intermediate_size": 3072, "max_position_embeddings": 512},
    },
}  # fmt: skip
"""Hub id -> the config of the text encoders the experiments name (BLIP base: its BERT-base text transformer)."""

KNOWN_IMAGE_DECODERS: dict[str, dict[str, Any]] = {
    "facebook/vit-mae-large": {
        **KNOWN_VISION_ENCODERS["facebook/vit-mae-large"], "decoder_hidden_size": 512, "decoder_num_hidden_layers": 8,
        "decoder_num_attention_heads": 16, "decoder_intermediate_size": 2048,
    },
}  # fmt: skip
"""Hub id -> the ``ViTMAEConfig`` (encoder and decoder values) of the MAE checkpoints whose decoder is used."""

STAND_IN_TOKENIZER = "smollm2-135m"
"""Built-in alias whose tokenizer stands in for an architecture from :data:`KNOWN_LANGUAGE_MODELS`."""

STAND_IN_TEXT_TOKENIZER = "minilm-l6"
"""Built-in text encoder whose tokenizer (BERT uncased WordPiece) stands in for BLIP's."""

_PRETRAINED_PARTS = ("LanguageModel", "VisionEncoder", "TextEncoder", "MAEImageDecoder")


def random_llm_folder(name: str) -> tuple[str, str]:
    """A local folder for ``name`` that ``LanguageModel(..., pretrained=False)`` builds from; and how it was made.

    A local folder or built-in alias is returned as it is (its own config and tokenizer); a hub id from
    :data:`KNOWN_LANGUAGE_MODELS` becomes ``$RADIOLM_CACHE/random-weights/<id>/`` with that config and the
    :data:`STAND_IN_TOKENIZER` (the vocabulary grows to the tokenizer's when it is larger, and the note says so).
    """
    if Path(name).is_dir() or name in BUILTIN_LANGUAGE_MODELS:
        return name, f"{name}: its own config.json and tokenizer"
    spec = KNOWN_LANGUAGE_MODELS.get(name)
    if spec is None:
        raise RadioLMError(
            f"--random-weights: no architecture known for the language model '{name}' and no such folder; point "
            "language_model.init_args.name_or_path at a folder holding its config.json and tokenizer (no weights "
            "needed), or add it to radiolm.benchmarks.random_weights.KNOWN_LANGUAGE_MODELS"
        )
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_language_model(STAND_IN_TOKENIZER))
    values = {k: v for k, v in spec.items() if k != "model_type"}
    note = f"{name}: architecture from the suite's table, tokenizer of {STAND_IN_TOKENIZER} as a stand-in"
    if len(tokenizer) > values["vocab_size"]:
        note += f", vocabulary {len(tokenizer)} instead of {values['vocab_size']}"
        values["vocab_size"] = len(tokenizer)
    ids = {f"{t}_token_id": getattr(tokenizer, f"{t}_token_id") for t in ("bos", "eos", "pad")}
    config = AutoConfig.for_model(spec["model_type"], **values, **ids)
    folder = cache_dir() / "random-weights" / name.replace("/", "--")
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder), note


def random_config_folder(name: str, table: dict[str, dict[str, Any]], option: str, tokenizer: str | None = None) -> str:
    """``$RADIOLM_CACHE/random-weights/<id>/``: the config of hub id ``name`` from ``table`` (and the tokenizer of
    the built-in text encoder ``tokenizer``), for a part that builds from a folder's config with random weights.

    Raises:
        RadioLMError: ``name`` is in no table; the message names ``option`` (the key that takes a folder).
    """
    from transformers import AutoConfig

    spec = table.get(name)
    if spec is None:
        raise RadioLMError(
            f"--random-weights: no architecture known for '{name}' and no such folder; point {option} at a folder "
            "holding its config.json (no weights needed), or add it to radiolm.benchmarks.random_weights"
        )
    folder = cache_dir() / "random-weights" / name.replace("/", "--")
    AutoConfig.for_model(spec["model_type"], **{k: v for k, v in spec.items() if k != "model_type"}).save_pretrained(
        folder
    )
    if tokenizer is not None:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(resolve_text_encoder(tokenizer)).save_pretrained(folder)
    return str(folder)


def _text_encoder(args: Any) -> str:
    """Rewrite a TextEncoder's init_args for random weights; a note on what was built."""
    args.pretrained, name = False, str(args.name)
    if Path(name).exists() or name in BUILTIN_TEXT_ENCODERS:
        return f"{name}: its own config and tokenizer"
    args.name = random_config_folder(name, KNOWN_TEXT_ENCODERS, "text_encoder.init_args.name", STAND_IN_TEXT_TOKENIZER)
    return f"{name}: architecture from the suite's table, tokenizer of {STAND_IN_TEXT_TOKENIZER} as a stand-in"


def _image_decoder(args: Any) -> str:
    """Rewrite an MAEImageDecoder's init_args for random weights; a note on what was built."""
    args.pretrained, name = False, args.get("name")
    if name in (None, "None", "null", "") or Path(str(name)).exists():
        return f"{name or 'decoder_* values'}: its own architecture"
    args.name = random_config_folder(str(name), KNOWN_IMAGE_DECODERS, "image_decoder.init_args.name")
    return f"{name}: architecture from the suite's table (vit_mae decoder)"


def _vision_encoder(args: Any) -> str:
    """Rewrite a VisionEncoder's init_args for random weights; a note on what was built."""
    args.pretrained, name = False, str(args.name)
    if "checkpoint_path" in args:
        args.checkpoint_path = None
    spec = KNOWN_VISION_ENCODERS.get(name)
    if spec is None or Path(name).exists():
        return f"{name}: its own architecture"
    args.name, args.backend = spec["model_type"], "hf"
    size = args.get("image_size")
    args.model_kwargs = {**{k: v for k, v in spec.items() if k != "model_type"}, **dict(args.get("model_kwargs") or {})}
    if size is not None:
        args.model_kwargs["image_size"] = size
    return f"{name}: architecture from the suite's table ({spec['model_type']})"


def randomize(config: Any) -> list[str]:
    """Rewrite a parsed LightningCLI config in place so that every part starts from random weights.

    Args:
        config: The jsonargparse namespace (``model``, ``data``, ``trainer`` ...), before instantiation.

    Returns:
        One note per rewritten part (what its shapes come from), for the benchmark's output.
    """
    notes: list[str] = []
    for node in _class_nodes(config):
        kind = str(node.class_path).rsplit(".", 1)[-1]
        args = node.init_args
        if kind == "LanguageModel":
            args.pretrained = False
            args.name_or_path, note = random_llm_folder(str(args.name_or_path))
            notes.append(f"language model {note}")
        elif kind == "VisionEncoder":
            notes.append(f"vision encoder {_vision_encoder(args)}")
        elif kind == "TextEncoder":
            notes.append(f"text encoder {_text_encoder(args)}")
        elif kind == "MAEImageDecoder":
            notes.append(f"image decoder {_image_decoder(args)}")
        elif kind == "VolumeEncoder":
            args.checkpoint_path = None
            notes.append("volume encoder: random init (checkpoint_path null)")
        elif kind == "PerceiverResampler" and args.get("checkpoint_path"):
            args.checkpoint_path = None
            notes.append("perceiver: random init (checkpoint_path null)")
        elif kind in _PRETRAINED_PARTS:
            args.pretrained = False
            notes.append(f"{kind}: pretrained false")
    return notes


def _class_nodes(node: Any) -> list[Any]:
    """Every ``{class_path, init_args}`` namespace under ``node``, outermost first."""
    found: list[Any] = []
    if isinstance(node, list):
        for item in node:
            found += _class_nodes(item)
        return found
    if not hasattr(node, "__dict__") or not hasattr(node, "items"):
        return found
    if "class_path" in node and node.get("init_args") is not None:
        found.append(node)
    for value in vars(node).values():
        found += _class_nodes(value)
    return found
