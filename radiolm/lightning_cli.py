"""RadioLMCLI: LightningCLI in subclass mode with the suite's links, run names and one-line errors.

The model is any :class:`ReportGenerationModule`, the data any :class:`ReportDataModule`, both chosen by
``class_path`` in YAML. :func:`main` is the command-table target (:data:`radiolm.cli.COMMANDS`) of
``fit | validate | test | predict``; :func:`radiolm.cli.main` imports this module only for those.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from radiolm.callbacks.progress_log import ProgressLog
from radiolm.config_include import register as register_include_loader
from radiolm.data.datamodules.base import ReportDataModule
from radiolm.data.datamodules.continual import ContinualDataModule
from radiolm.errors import MissingAssetError, RadioLMError
from radiolm.loggers import WandbLogger, choose_wandb_mode
from radiolm.methods.base import ReportGenerationModule
from radiolm.precision import explain_precision, resolve_precision

__all__ = ["RadioLMArgumentParser", "RadioLMCLI", "main"]


def _image_transform_of(model: ReportGenerationModule) -> Any:
    return model.image_transform


def _root_cause(error: BaseException) -> RadioLMError | None:
    """jsonargparse wraps errors raised while instantiating; find ours in the chain."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, RadioLMError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _one_line(message: str) -> str:
    """Condense a jsonargparse error into one line that names the innermost problem."""
    problems = re.findall(r"Problem with given class_path '([^']+)':\s*\n\s*([^\n]+)", message)
    for class_path, detail in reversed(problems):
        if "Parser key" not in detail:
            return f"cannot import class_path '{class_path}' ({detail.strip()})"
    return " ".join(message.split())


class _StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when each record is emitted (so redirections and captures see it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _log_to_stderr() -> None:
    """The suite's INFO lines (precision, progress, files written) go to stderr, once per process."""
    logger = logging.getLogger("radiolm")
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


class RadioLMArgumentParser(LightningArgumentParser):
    """Parser errors end in one line (the option list is one ``--help`` away), exit status 2."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:  # jsonargparse probing alternatives: it catches this
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        print(f"radiolm: error: {_one_line(message)}  (options: `{prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


class RadioLMCLI(LightningCLI):
    """LightningCLI with the suite's links and conventions.

    * ``model.image_transform -> data.init_args.image_transform`` (after instantiation): the encoder decides the
      image size and normalisation.
    * Loggers whose ``name`` is null are named after the experiment file (``runs/<experiment>/version_N``) or
      ``--run_name`` (the table runner names each row's run).
    * ``fit`` ends with ``test`` on the best checkpoint unless ``--test_after_fit false``.
    * ``fit`` with a :class:`~radiolm.data.ContinualDataModule` trains its tasks stage by stage and tests every seen
      task after each (:meth:`fit`, :mod:`radiolm.continual.sequence`).
    * ``trainer.precision`` left unset is chosen from the machine (:mod:`radiolm.precision`: bf16-mixed where the
      GPU or CPU has native bfloat16, fp32 on a CPU without it) and logged once; an explicit value wins.
    * Every run gets :class:`~radiolm.callbacks.ProgressLog` (plain progress lines); without a terminal on stderr
      the progress bar is off unless ``trainer.enable_progress_bar`` is set.
    * A :class:`radiolm.loggers.WandbLogger` gets the resolved config (what ``--print_config`` shows) as its
      run's W&B config; its mode is the user's (``WANDB_MODE``, ``wandb online|offline|disabled``), checked before
      anything is built (online without an API key ends in one line).
    * A missing model or file ends with one line that names the option taking a local path.
    * Config files may ``include:`` a fragment and change some of its keys (:mod:`radiolm.config_include`).
    """

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        _log_to_stderr()
        super().__init__(
            ReportGenerationModule,
            ReportDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            parser_class=RadioLMArgumentParser,
            parser_kwargs={
                "prog": "radiolm",  # not `__main__.py` under `python -m radiolm`
                "parser_mode": register_include_loader(),  # YAML with `include:` (radiolm/config_include.py)
                "description": "Train and evaluate with experiments/<name>.yaml (`radiolm --help`: every command).",
            },
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--test_after_fit", type=bool, default=True, help="fit: test the best checkpoint when training ends"
        )
        parser.add_argument(
            "--run_name",
            type=str | None,
            default=None,
            help="name of the run folder (runs/<run_name>/version_N) for loggers whose name is null; default: the "
            "experiment file's name",
        )
        parser.link_arguments(
            "model", "data.init_args.image_transform", compute_fn=_image_transform_of, apply_on="instantiate"
        )

    def _current_config(self) -> Any:
        return self.config[self.subcommand] if self.subcommand else self.config

    def experiment_name(self) -> str:
        """``--run_name``, else the stem of the last config file (``experiments/demo.yaml`` -> ``demo``)."""
        if self._current_config().get("run_name"):
            return str(self._current_config().run_name)
        configs = self._current_config().get("config") or []
        return Path(str(configs[-1])).stem if configs else "radiolm"

    def before_instantiate_classes(self) -> None:
        trainer = self._current_config().trainer
        choice = resolve_precision(trainer.accelerator, trainer.precision)
        explain_precision(choice)
        trainer.precision = choice.precision
        if trainer.get("enable_progress_bar") is None and not sys.stderr.isatty():
            trainer.enable_progress_bar = False  # a log file gets ProgressLog's lines, not carriage returns
        loggers = trainer.logger
        for logger in loggers if isinstance(loggers, list) else [loggers]:
            init_args = getattr(logger, "init_args", None)
            if init_args is not None and "name" in init_args and init_args.name is None:
                init_args.name = self.experiment_name()
            wandb_path = f"{WandbLogger.__module__}.{WandbLogger.__name__}"
            if init_args is not None and getattr(logger, "class_path", None) == wandb_path:
                choose_wandb_mode(init_args.get("mode"))  # a bad W&B choice: one line now, not inside jsonargparse

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """The trainer, with :class:`ProgressLog` added unless the config already has one, and the resolved config
        as the W&B config of its :class:`~radiolm.loggers.WandbLogger`."""
        trainer = super().instantiate_trainer(**kwargs)
        callbacks = trainer.callbacks  # type: ignore[attr-defined]  # set by Lightning's callback connector
        if not any(isinstance(c, ProgressLog) for c in callbacks):
            callbacks.append(ProgressLog())
        wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if wandb_loggers:
            dump = self._parser(self.subcommand).dump(self._current_config(), format="json", skip_none=False)
            config = json.loads(dump)  # JSON keeps 1e-8 a number (YAML 1.1 would read it as a string)
            for logger in wandb_loggers:
                logger.set_experiment_config(config)
        return trainer

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except Exception as e:
            cause = _root_cause(e)
            if cause is None:
                raise
            if isinstance(cause, MissingAssetError):
                cause.with_option_keys(self._keys_holding(cause.name))
            raise cause from None

    def _keys_holding(self, value: str) -> list[str]:
        flat = self._current_config().as_flat()
        return [k for k, v in vars(flat).items() if v == value and not k.startswith("__")]

    def fit(self, model: ReportGenerationModule, datamodule: Any = None, **kwargs: Any) -> None:
        """``trainer.fit``; with a :class:`~radiolm.data.ContinualDataModule` the whole sequence instead
        (:mod:`radiolm.continual.sequence`): one Trainer per stage, every seen task tested after each, the matrix
        in the run folder; ``--ckpt_path <run folder>`` resumes that run at the stage where it stopped."""
        if not isinstance(datamodule, ContinualDataModule):
            self.trainer.fit(model, datamodule=datamodule, **kwargs)
            return
        from radiolm.continual.sequence import run_sequence

        ckpt_path = kwargs.get("ckpt_path")
        if ckpt_path and not Path(ckpt_path).is_dir():
            raise RadioLMError(
                f"--ckpt_path {ckpt_path}: a continual run resumes from its run folder (the one holding "
                "continual-state.json), not from a checkpoint file"
            )
        run_dir = Path(ckpt_path) if ckpt_path else Path(self.trainer.log_dir or self.trainer.default_root_dir)
        run_sequence(model, datamodule, run_dir, self._stage_trainer, self._test_trainer)

    def _config_callbacks(self) -> list[Any]:
        """Fresh copies of the config's callbacks for one stage's Trainer (a ModelCheckpoint's best path is per
        stage); the config-saving and progress callbacks are added by :meth:`instantiate_trainer` again."""
        from lightning.pytorch.cli import SaveConfigCallback

        callbacks = self._get(self.config_init, "trainer", default={}).get("callbacks") or []
        keep = [c for c in callbacks if not isinstance(c, (SaveConfigCallback, ProgressLog))]
        return [copy.deepcopy(c) for c in keep]

    def _stage_trainer(self, max_epochs: int, stage_dir: Path) -> Any:
        callbacks = self._config_callbacks()
        for callback in callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
                callback.dirpath = str(stage_dir / "checkpoints")
        return self.instantiate_trainer(max_epochs=max_epochs, callbacks=callbacks, logger=self.trainer.loggers)

    def _test_trainer(self, folder: Path) -> Any:
        folder.mkdir(parents=True, exist_ok=True)
        return self.instantiate_trainer(
            callbacks=[], logger=False, enable_checkpointing=False, default_root_dir=str(folder)
        )

    def after_fit(self) -> None:
        if isinstance(self.datamodule, ContinualDataModule):
            return  # the sequence tested every seen task after every stage
        if not self.config.fit.test_after_fit or self.trainer.interrupted:
            return
        callback = self.trainer.checkpoint_callback
        best = getattr(callback, "best_model_path", "") if callback else ""
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None)


def main(argv: list[str] | None = None) -> None:
    """Train and evaluate with LightningCLI: ``fit | validate | test | predict -c experiments/<name>.yaml``.

    Args:
        argv: The command line after the program name, subcommand first (``["fit", "-c", ...]``); ``None``:
            LightningCLI reads ``sys.argv``.
    """
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    before = _active_wandb_run()
    failed = True
    try:
        RadioLMCLI(args=argv)
        failed = False
    except SIGTERMException:  # a SystemExit without a code: the process would exit 0, as if the run had finished
        raise SystemExit("radiolm: stopped by SIGTERM: the run ended early and was not tested") from None
    finally:
        _finish_wandb_run_started_since(before, failed)


def _active_wandb_run() -> Any:
    """W&B's active run, without importing wandb (not imported: no run)."""
    wandb = sys.modules.get("wandb")
    return getattr(wandb, "run", None) if wandb is not None else None


def _finish_wandb_run_started_since(before: Any, failed: bool) -> None:
    """Finish the W&B run this command's WandbLogger started; one that was active before (a sweep agent's) is the
    caller's. Lightning never finishes its run, and W&B's default ``wandb.init`` returns the still-active run, so a
    second command in the same process (a notebook, ``wandb.agent(function=...)``) would log into the first's run."""
    run = _active_wandb_run()
    if run is not None and run is not before:
        run.finish(exit_code=1 if failed else 0)
