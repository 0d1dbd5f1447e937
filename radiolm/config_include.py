"""``include:`` in experiment YAML: a shared fragment, changed by the keys next to it.

jsonargparse already reads ``data: data/iu_xray.yaml`` (a path in place of a nested config), but a file cannot
include a fragment and then change one of its keys: a second ``data:`` mapping in the same file replaces the
fragment instead of updating it. The suite's config files may therefore write::

    data:
      include: data/iu_xray.yaml   # relative to this file, as jsonargparse resolves paths
      init_args:
        batch_size: 4              # only what this experiment changes

A mapping with the key ``include`` stands for the included file's mapping, updated with the mapping's other keys:
nested mappings merge key by key, any other value replaces. An included file may include others (relative to
itself). :class:`radiolm.lightning_cli.RadioLMCLI` parses every config file with :func:`load_yaml` (parser mode
``radiolm``); ``--print_config`` shows the result.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import get_loader, set_loader

from radiolm.errors import RadioLMError

__all__ = ["INCLUDE_KEY", "PARSER_MODE", "ConfigIncludeError", "load_yaml", "merge", "register", "resolve_includes"]

INCLUDE_KEY = "include"
PARSER_MODE = "radiolm"


class ConfigIncludeError(RadioLMError):
    """An ``include:`` that names no readable YAML mapping, or includes itself."""


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``changes``: nested mappings merge key by key, any other value replaces."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read(path: Path, where: str, chain: tuple[Path, ...]) -> dict[str, Any]:
    if path in chain:
        raise ConfigIncludeError(f"{where}: `include: {path}` includes itself (through {[str(p) for p in chain]})")
    if not path.is_file():
        raise ConfigIncludeError(
            f"{where}: `include: {path}`: no such file; the path is relative to the including file"
        )
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigIncludeError(f"{path} (included by {where}): not valid YAML: {e}") from e
    if not isinstance(loaded, dict):
        raise ConfigIncludeError(f"{path} (included by {where}): must be a YAML mapping, got {type(loaded).__name__}")
    return resolve_includes(loaded, path.parent, str(path), (*chain, path))


def resolve_includes(value: Any, base_dir: Path, source: str = "<config>", chain: tuple[Path, ...] = ()) -> Any:
    """``value`` with every ``include:`` mapping replaced by the included file merged with its other keys.

    Args:
        value: A loaded YAML value.
        base_dir: The folder relative ``include`` paths start from (the including file's folder).
        source: The including file, for error messages.
        chain: The files being included around this one (to catch a file that includes itself).

    Raises:
        ConfigIncludeError: naming the including file and key when an included file is missing, not a mapping, not
            YAML, or includes itself.
    """
    if isinstance(value, list):
        return [resolve_includes(v, base_dir, source, chain) for v in value]
    if not isinstance(value, dict):
        return value
    resolved = {k: resolve_includes(v, base_dir, source, chain) for k, v in value.items() if k != INCLUDE_KEY}
    if INCLUDE_KEY not in value:
        return resolved
    target = value[INCLUDE_KEY]
    if not isinstance(target, str):
        raise ConfigIncludeError(f"{source}: `include:` takes a path to a YAML file, got {target!r}")
    included = _read((base_dir / target).resolve(), source, chain)
    return merge(included, resolved)


def load_yaml(text: str, path: str | os.PathLike[str] = "") -> Any:
    """jsonargparse's YAML loader, then :func:`resolve_includes`.

    jsonargparse calls it with the current directory set to the folder of the config file it reads (``path`` is
    that file's name), so relative ``include`` paths resolve against the including file, as its own paths do.
    """
    loaded = get_loader("yaml")(text)
    if not isinstance(loaded, dict | list):
        return loaded
    return resolve_includes(loaded, Path.cwd(), str(Path.cwd() / path) if path else "<config>")


def register() -> str:
    """Make :func:`load_yaml` the loader of parser mode ``radiolm``; returns the mode's name."""
    set_loader(PARSER_MODE, load_yaml, exceptions=(yaml.YAMLError,))
    return PARSER_MODE
