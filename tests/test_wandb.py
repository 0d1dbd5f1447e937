"""W&B on and off by the user's choice (``radiolm.loggers``), and a real offline run's W&B record.

The mode tests build the logger and read the ``wandb.init`` arguments it would use: an online run is never
started, so nothing here contacts a server. The end-to-end tests run the demo through the real CLI with its tiny
overlay (one batch of fit, with logs: ``fast_dev_run`` would replace the loggers) and read the offline
run's ``.wandb`` file with W&B's own record type (``wandb.proto``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from radiolm.cli import main
from radiolm.errors import RadioLMError
from radiolm.loggers import WandbLogger, resolve_wandb_mode

from .conftest import CONF, REPO
from .wandb_records import finished
from .wandb_records import records as read_records

KEY = "a" * 40  # the shape of a W&B API key; never sent anywhere (no run is started with it)


def _clear_choice(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """WANDB_MODE unset, no API key: empty W&B settings and .netrc under ``root``."""
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_DIR", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(root / "wandb-config"))
    (root / "netrc").write_text("")
    monkeypatch.setenv("NETRC", str(root / "netrc"))


@pytest.fixture()
def no_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No mode chosen, no API key: WANDB_MODE unset, empty settings and .netrc in ``tmp_path`` (the cwd)."""
    _clear_choice(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("env", "mode"),
    [("online", "online"), ("offline", "offline"), ("disabled", "disabled"), ("dryrun", "offline"), ("run", "online")],
)
def test_wandb_mode_is_the_mode_the_user_sets(no_choice: Path, monkeypatch: pytest.MonkeyPatch, env: str, mode: str):
    monkeypatch.setenv("WANDB_MODE", env)
    monkeypatch.setenv("WANDB_API_KEY", KEY)  # online needs one (test_online_without_an_api_key_says_what_to_do)
    logger = WandbLogger(save_dir=str(no_choice / "runs"), name="demo")
    assert (logger.mode, logger.init_kwargs["mode"]) == (mode, mode)
    assert logger.init_kwargs["name"] == "demo" and logger.init_kwargs["project"] == "radiolm"
    assert os.environ["WANDB_MODE"] == env  # the logger never rewrites the user's choice


def test_no_choice_is_offline_without_an_api_key_and_online_with_one(
    no_choice: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolve_wandb_mode()[0] == "offline"
    assert WandbLogger(save_dir="runs").init_kwargs["mode"] == "offline"
    assert "WANDB_MODE" not in os.environ  # Lightning's `offline: true` would have set it to dryrun
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    assert resolve_wandb_mode()[0] == "online"
    monkeypatch.delenv("WANDB_API_KEY")
    (no_choice / "netrc").write_text(f"machine api.wandb.ai\n  login user\n  password {KEY}\n")  # `wandb login`
    assert resolve_wandb_mode() == ("online", "no mode chosen, W&B has an API key")


def wandb_cli(*args: str) -> None:
    """The real ``wandb`` command (``wandb offline`` ...) in the current directory and environment."""
    subprocess.run([sys.executable, "-m", "wandb", *args], check=True, capture_output=True, timeout=120)


def test_wandb_online_offline_disabled_commands_choose_the_mode(
    no_choice: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", KEY)  # logged in: the default would be online
    wandb_cli("offline")
    mode, reason = resolve_wandb_mode()
    assert mode == "offline" and "settings" in reason
    wandb_cli("disabled")
    assert resolve_wandb_mode()[0] == "disabled"
    monkeypatch.setenv("WANDB_MODE", "offline")  # the environment wins over the settings files, as in W&B
    assert resolve_wandb_mode()[0] == "offline"
    monkeypatch.delenv("WANDB_MODE")
    wandb_cli("online")  # clears the setting: no choice, and an API key
    assert resolve_wandb_mode()[0] == "online"
    monkeypatch.delenv("WANDB_API_KEY")
    assert resolve_wandb_mode()[0] == "offline"


def test_bad_mode_names_where_it_was_set(no_choice: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "onlin")
    with pytest.raises(RadioLMError, match=r"WANDB_MODE='onlin'.*online, offline or disabled"):
        WandbLogger()
    monkeypatch.delenv("WANDB_MODE")
    with pytest.raises(RadioLMError, match="`offline` is not an option"):
        WandbLogger(offline=True)


def test_online_without_an_api_key_says_what_to_do(no_choice: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    with pytest.raises(RadioLMError, match=r"online \(WANDB_MODE=online\) but has no API key: run `wandb login`"):
        WandbLogger()


def test_cli_says_it_in_one_line_before_building_anything(
    no_choice: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", str(REPO / "experiments" / "demo.yaml")])
    assert exit_info.value.code == 2
    assert "radiolm: error: W&B is online (WANDB_MODE=online) but has no API key" in capsys.readouterr().err


def test_mode_in_config_wins(no_choice: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    assert WandbLogger(mode="disabled").init_kwargs["mode"] == "disabled"


# -- a real run through the CLI ---------------------------------------------------------------------------------


DEMO = ["-c", str(REPO / "experiments" / "demo.yaml"), "-c", str(CONF / "demo.yaml")]
ONE_BATCH = ["--trainer.fast_dev_run=false", "--trainer.max_epochs=1", "--trainer.limit_train_batches=1"]
"""The demo with its tiny overlay: one batch of fit with the loggers on (``fast_dev_run`` would replace them)."""


def run_demo(workdir: Path) -> None:
    """The demo's fit as a user runs it, ``python -m radiolm fit`` in its own process with its own wandb service,
    without test (it adds nothing to W&B's config). Not in the test process, nor through the service an earlier test
    started (``WANDB_SERVICE`` in the environment, another working directory): through it, this run's file has been
    seen to stay without its exit record."""
    command = [sys.executable, "-m", "radiolm", "fit", *DEMO, *ONE_BATCH, "--test_after_fit=false"]
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture()
def demo_workdir(tiny_workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _clear_choice(tiny_workdir, monkeypatch)
    return tiny_workdir


def test_fresh_run_without_a_choice_writes_an_offline_wandb_run_with_the_resolved_config(demo_workdir: Path) -> None:
    run_demo(demo_workdir)
    assert "WANDB_MODE" not in os.environ
    (run_dir,) = (demo_workdir / "runs" / "wandb").glob("offline-run-*")
    records = list(read_records(finished(run_dir)))
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"] or [
        pytest.fail(f"{run_dir}: {[r.WhichOneof('record_type') for r in records]}")
    ]
    assert run.display_name == "demo"  # the experiment's name, as runs/demo/version_0
    config = {u.key: json.loads(u.value_json) for u in run.config.update if u.key != "_wandb"}
    saved = yaml.safe_load((demo_workdir / "runs" / "demo" / "version_0" / "config.yaml").read_text())
    assert config == saved  # the resolved experiment config, as LightningCLI saved it, nothing more
    assert config["model"]["init_args"]["language_model"]["init_args"]["name_or_path"] == "models/tiny-llm"
    assert config["trainer"]["limit_train_batches"] == 1


def test_disabled_run_writes_no_wandb_files_and_names_the_run_after_the_table_row(
    demo_workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from radiolm.lightning_cli import RadioLMCLI

    monkeypatch.setenv("WANDB_MODE", "disabled")
    cli = RadioLMCLI(args=[*DEMO, *ONE_BATCH, "--run_name", "grid/row-a"], run=False)  # no subcommand: built only
    (logger,) = [lg for lg in cli.trainer.loggers if isinstance(lg, WandbLogger)]
    init = logger.init_kwargs  # what wandb.init gets
    assert (init["mode"], init["name"], init["dir"]) == ("disabled", "grid/row-a", "runs")
    assert init["config"]["run_name"] == "grid/row-a" and init["config"]["model"]["class_path"].endswith("R2GenGPT")
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert (demo_workdir / "runs" / "grid" / "row-a" / "version_0" / "config.yaml").is_file()  # the CSV run
    assert not (demo_workdir / "runs" / "wandb").exists() and not (demo_workdir / "wandb").exists()


def test_each_command_finishes_the_run_it_started_and_leaves_the_caller_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two commands in one process (a notebook, ``wandb.agent(function=...)``) log into two W&B runs; a run that was
    active before the command is the caller's to finish; a failed command's run ends with exit code 1."""
    import wandb

    from radiolm import lightning_cli

    started: list[Any] = []

    def fake_cli(args: list[str]) -> None:  # what a WandbLogger does when the trainer first logs
        started.append(wandb.init(project="radiolm", dir=str(tmp_path), mode="offline"))
        if args == ["fail"]:
            raise RuntimeError("boom")

    monkeypatch.setattr(lightning_cli, "RadioLMCLI", fake_cli)
    lightning_cli.main(["one"])
    lightning_cli.main(["two"])
    assert wandb.run is None and started[0].id != started[1].id
    with pytest.raises(RuntimeError, match="boom"):
        lightning_cli.main(["fail"])
    assert wandb.run is None
    exits = [r.exit.exit_code for r in read_records(finished(Path(started[2].dir).parent)) if r.HasField("exit")]
    assert exits == [1]

    caller = wandb.init(project="radiolm", dir=str(tmp_path), mode="offline")
    try:
        lightning_cli.main(["inside"])  # W&B returns the active run: the logger logs into the caller's run
        assert started[-1] is caller and wandb.run is caller
    finally:
        caller.finish()
