"""Errors that the CLI turns into one clear line instead of a traceback."""

from __future__ import annotations

__all__ = ["SUITE_CHECKPOINTS", "BatchError", "DataError", "MissingAssetError", "RadioLMError", "unreachable_reason"]


class RadioLMError(RuntimeError):
    """Base class: a problem the user can fix from the message alone."""


class MissingAssetError(RadioLMError):
    """A model or file could not be loaded.

    Args:
        what: What was being loaded ("language model", "vision encoder", ...).
        name: The hub id or path that failed.
        option: The constructor argument that takes a local path instead (the CLI expands it to the full
            ``--model.init_args...`` key of the running config).
        reason: The underlying error, shortened to one line.
    """

    def __init__(self, what: str, name: str, option: str, reason: str = "") -> None:
        self.what, self.name, self.option, self.reason = what, name, option, reason
        self.option_keys: list[str] = []
        super().__init__(self._message())

    def with_option_keys(self, keys: list[str]) -> MissingAssetError:
        """Attach the full config keys (e.g. ``model.init_args.language_model.init_args.name_or_path``)."""
        self.option_keys = keys
        self.args = (self._message(),)
        return self

    def _message(self) -> str:
        keys = " or ".join(f"--{k}=/path/to/it" for k in self.option_keys) or f"the `{self.option}` option"
        why = f" ({self.reason})" if self.reason else ""
        return (
            f"cannot load the {self.what} '{self.name}'{why}. Download it where you have access and point "
            f"{keys} at the local folder or file."
        )


SUITE_CHECKPOINTS = {"data/phantom-vit-mae": "make phantom-mae", "data/phantom-vit3d-mae": "make phantom-mae3d"}
"""Checkpoints the suite writes itself (offline stand-ins for hub weights) and the command that writes each."""


def unreachable_reason(name: str, otherwise: str = "not on this machine and the hub is unreachable") -> str:
    """Why ``name`` (a checkpoint folder or a file in one) did not load, for :class:`MissingAssetError`: a checkpoint
    the suite makes names its command; anything else gets ``otherwise``."""
    path = str(name).rstrip("/")
    made_by = SUITE_CHECKPOINTS.get(path) or SUITE_CHECKPOINTS.get(path.rpartition("/")[0])
    if made_by:
        return f"the suite writes it: run `{made_by}` first"
    return otherwise


class DataError(RadioLMError):
    """A data file or entry is missing or malformed; the message names it and says what to do."""


class BatchError(RadioLMError):
    """A batch lacks what a method needs (X-ray images, CT volumes): the method was paired with the wrong data.

    Raised by :func:`radiolm.batch.require_images` and :func:`radiolm.batch.require_volumes`, so every method says it
    the same way: what it needs, that the batch has none, and which DataModules provide it.
    """
