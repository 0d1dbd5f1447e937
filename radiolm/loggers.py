"""The suite's Weights & Biases logger: online, offline or off by the user's choice, never by editing YAML.

Lightning's ``WandbLogger(offline=True)`` sets ``WANDB_MODE=dryrun`` in the process itself, over whatever the user
set, so a YAML that says ``offline: true`` can never go online and a sweep agent's runs report nothing. This logger
takes the mode from where W&B users set it, in W&B's own order, and passes it to ``wandb.init(mode=...)``:

1. ``WANDB_MODE`` (``online | offline | disabled``; W&B's old names ``run`` and ``dryrun`` mean online and offline);
2. the settings files that ``wandb offline`` / ``wandb disabled`` / ``wandb enabled`` write (``./wandb/settings``
   over ``~/.config/wandb/settings``; ``wandb online`` clears the choice);
3. no choice: online where W&B has an API key (``WANDB_API_KEY`` or ``wandb login``'s ``~/.netrc`` entry), otherwise
   offline, so a run without an account still keeps its W&B record (``wandb sync runs/wandb/offline-run-*`` later).

``disabled`` writes no W&B files at all. The run's W&B config is the resolved experiment config (what
``--print_config`` shows, set by :class:`radiolm.lightning_cli.RadioLMCLI`), and its name is the experiment's (or
the table row's ``--run_name``).
"""

from __future__ import annotations

import configparser
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.utilities import rank_zero_only

from radiolm.errors import RadioLMError

__all__ = ["MODES", "WandbLogger", "WandbMode", "choose_wandb_mode", "resolve_wandb_mode"]

log = logging.getLogger(__name__)

WandbMode = Literal["online", "offline", "disabled"]
MODES: dict[str, WandbMode] = {
    "online": "online",
    "run": "online",  # W&B's old name for online
    "shared": "online",  # W&B's shared mode: online, several writers to one run
    "offline": "offline",
    "dryrun": "offline",  # W&B's old name for offline (what Lightning's `offline: true` sets)
    "disabled": "disabled",
}
"""Each mode name W&B accepts -> the suite's three modes."""


def _settings_files(environ: Mapping[str, str]) -> tuple[dict[str, str], list[Path]]:
    """The merged ``[default]`` section of W&B's settings files (workspace over global) and the files read."""
    config_dir = environ.get("WANDB_CONFIG_DIR")
    global_path = Path(config_dir, "settings") if config_dir else Path("~/.config/wandb/settings")
    try:  # W&B's own reader and file locations, where this version of wandb has them
        from wandb.sdk.wandb_settings import Settings

        settings = Settings()
        settings.settings_system = str(global_path.expanduser())
        settings.update_from_env_vars(dict(environ))
        files = settings.read_system_settings()
        return dict(files.all()), list(files.sources)
    except (ImportError, AttributeError):  # pragma: no cover - an older wandb: read the same two files
        root = Path(environ.get("WANDB_DIR") or ".")
        local_path = root / (".wandb" if (root / ".wandb").is_dir() else "wandb") / "settings"
        merged: dict[str, str] = {}
        sources = []
        for path in (global_path.expanduser(), local_path):
            parser = configparser.ConfigParser()
            if parser.read(path) and parser.has_section("default"):
                merged.update(parser["default"])
                sources.append(path)
        return merged, sources


def _has_api_key(environ: Mapping[str, str]) -> bool:
    """Whether W&B could log in without asking: ``WANDB_API_KEY`` or a ``.netrc`` entry for its server."""
    if environ.get("WANDB_API_KEY") or environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    try:  # W&B's own server address and .netrc reader
        from wandb.sdk.lib.wbauth.wbnetrc import read_netrc_auth
        from wandb.sdk.wandb_settings import Settings

        settings = Settings()
        settings.update_from_env_vars(dict(environ))
        return bool(read_netrc_auth(host=settings.base_url))
    except ImportError:  # pragma: no cover - an older wandb: the standard .netrc
        import netrc
        from urllib.parse import urlparse

        host = urlparse(environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
        try:
            return netrc.netrc(environ.get("NETRC") or None).authenticators(host or "") is not None
        except (OSError, netrc.NetrcParseError):
            return False
    except Exception:  # a malformed key: W&B cannot log in with it either
        return False


def resolve_wandb_mode(environ: Mapping[str, str] | None = None) -> tuple[WandbMode, str]:
    """The mode a run gets and why (for the log line), from the environment and W&B's settings files.

    Args:
        environ: The environment to read (default ``os.environ``).

    Returns:
        ``(mode, reason)``: ``mode`` is ``online``, ``offline`` or ``disabled``.

    Raises:
        RadioLMError: ``WANDB_MODE`` or a settings file names a mode W&B does not know.
    """
    environ = os.environ if environ is None else environ
    chosen = environ.get("WANDB_MODE", "").strip()
    if chosen:
        if chosen.lower() not in MODES:
            raise RadioLMError(
                f"WANDB_MODE={chosen!r} is no W&B mode; set it to online, offline or disabled (or unset it)"
            )
        return MODES[chosen.lower()], f"WANDB_MODE={chosen}"
    settings, sources = _settings_files(environ)
    chosen = settings.get("mode", "").strip()
    if chosen:
        where = ", ".join(str(s) for s in sources) or "W&B's settings file"
        if chosen.lower() not in MODES:
            raise RadioLMError(
                f"{where}: mode = {chosen!r} is no W&B mode; run `wandb online`, `wandb offline` or `wandb disabled`"
            )
        return MODES[chosen.lower()], f"mode = {chosen} in {where}"
    if _has_api_key(environ):
        return "online", "no mode chosen, W&B has an API key"
    return "offline", "no mode chosen and no W&B API key; `wandb login` to sync"


def choose_wandb_mode(mode: str | None = None) -> tuple[WandbMode, str]:
    """The logger's mode and why: ``mode`` when the config fixes one, else :func:`resolve_wandb_mode`.

    The CLI calls it before building anything, so that a bad choice ends in one line, not inside jsonargparse.

    Raises:
        RadioLMError: An unknown mode, or online without an API key (``wandb.init`` would wait at a login prompt).
    """
    if mode is not None and mode not in ("online", "offline", "disabled"):
        raise RadioLMError(f"WandbLogger: mode={mode!r}; use online, offline, disabled or null (the user's choice)")
    chosen, reason = (mode, "`mode` in the logger's config") if mode else resolve_wandb_mode()
    if chosen == "online" and not _has_api_key(os.environ):
        raise RadioLMError(
            f"W&B is online ({reason}) but has no API key: run `wandb login` (or set WANDB_API_KEY), "
            "or run offline (WANDB_MODE=offline) and `wandb sync` later"
        )
    return chosen, reason  # type: ignore[return-value]  # checked above


class WandbLogger(LightningWandbLogger):
    """Lightning's ``WandbLogger`` whose mode is the user's choice (:func:`resolve_wandb_mode`), not the YAML's.

    Args:
        name: The run's name on W&B; the CLI fills a null one with the experiment (or ``--run_name``).
        save_dir: Where ``wandb/`` goes (``<save_dir>/wandb/offline-run-*`` for an offline run).
        project: The W&B project (a sweep's runs go to the sweep's project).
        mode: ``online | offline | disabled`` to fix the mode in a config; ``None`` (the default): the user's
            choice from the environment and ``wandb online | offline | disabled``.
        **kwargs: Everything else Lightning's ``WandbLogger`` and ``wandb.init`` take (``offline`` excepted).

    Raises:
        RadioLMError: ``offline: true`` was given (it would overwrite the user's ``WANDB_MODE``), an unknown
            ``mode``, or the mode is online and W&B has no API key (it would stop at a login prompt).
    """

    def __init__(
        self,
        name: str | None = None,
        save_dir: str = "runs",
        project: str = "radiolm",
        mode: WandbMode | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.pop("offline", False):  # jsonargparse passes Lightning's default, False
            raise RadioLMError(
                "WandbLogger: `offline` is not an option of radiolm.loggers.WandbLogger (Lightning's would overwrite "
                "WANDB_MODE); drop it and choose with WANDB_MODE=online|offline|disabled or `wandb online|offline`"
            )
        self.mode, self.mode_reason = choose_wandb_mode(mode)
        super().__init__(name=name, save_dir=save_dir, project=project, mode=self.mode, **kwargs)
        self.experiment_config: dict[str, Any] | None = None
        self._explain()

    @rank_zero_only
    def _explain(self) -> None:
        where = {"online": "syncs to W&B", "offline": f"writes {self.save_dir}/wandb/offline-run-*"}
        log.info(f"W&B: {self.mode} ({self.mode_reason}){': ' + where[self.mode] if self.mode in where else ''}")

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """The keyword arguments ``wandb.init`` gets (mode, name, project, dir, config, ...), without calling it."""
        kwargs = dict(self._wandb_init)
        if self.experiment_config is not None:
            kwargs["config"] = self.experiment_config
        return kwargs

    def set_experiment_config(self, config: dict[str, Any]) -> None:
        """Make ``config`` (the resolved experiment config) the run's W&B config.

        Before the W&B run starts it goes into ``wandb.init(config=...)``; after, into the run's config.
        """
        self.experiment_config = config
        self._wandb_init["config"] = config
        if self._experiment is not None:
            self._experiment.config.update(config, allow_val_change=True)

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        """The module's hyper-parameters, unless the run's config is the experiment's: then they are in it already
        (``model.init_args``), and logging them again would add a second, partial copy at the top level."""
        if self.experiment_config is None:
            super().log_hyperparams(params)
