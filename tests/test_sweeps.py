"""Every W&B sweep in ``experiments/sweeps/`` parses and its agent's command lines reach the real CLI.

For each sweep the test builds the command a ``wandb agent`` runs: the parameters become ``${args}`` with W&B's own
code (``wandb.sdk.launch.sweeps.utils.create_sweep_command_args``) where it is importable, and the command's macros
are filled in as ``wandb/wandb_agent.py`` fills them. Each value of each parameter is in at least one command;
every command runs through ``radiolm.cli.main`` with ``--print_config`` (no model is built) from the repository
root, and the resolved config must hold the value the agent set.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from radiolm.cli import main

from .conftest import REPO

SWEEPS = sorted((REPO / "experiments" / "sweeps").glob("*.yaml"))
PAPER_SECTION = re.compile(r"\.\./shared/papers/\w+\.md|Appendix [A-Z]|§\d")


def agent_args(values: dict[str, Any]) -> list[str]:
    """``${args}`` of one run: W&B's own formatting (``--key=value``) where wandb is importable."""
    try:
        from wandb.sdk.launch.sweeps.utils import create_sweep_command_args
    except ImportError:  # pragma: no cover - another wandb layout: the format it documents
        return [f"--{k}={v}" for k, v in values.items()]
    return list(create_sweep_command_args({"args": {k: {"value": v} for k, v in values.items()}})["args"])


def agent_command(sweep: dict[str, Any], values: dict[str, Any]) -> list[str]:
    """The command line ``wandb agent`` runs for one set of values (``wandb_agent.py``: each ``${macro}`` item is
    replaced by its list, ``${program}`` by the sweep's program)."""
    macros = {
        "args": agent_args(values),
        "program": [sweep["program"]],
        "interpreter": ["python"],
        "env": ["/usr/bin/env"],
    }
    command: list[str] = []
    for item in sweep.get("command") or ["${env}", "${interpreter}", "${program}", "${args}"]:
        item = str(item)
        command += macros.get(item[2:-1], []) if item.startswith("${") and item.endswith("}") else [item]
    return command


def runs(parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """Sets of values in which every value of every parameter appears at least once (not the whole grid)."""
    choices = {}
    for key, spec in parameters.items():
        if "values" in spec:
            choices[key] = list(spec["values"])
        elif "value" in spec:
            choices[key] = [spec["value"]]
        else:  # a distribution: its bounds
            choices[key] = [spec["min"], spec["max"]]
    n = max(len(v) for v in choices.values())
    return [{key: values[i % len(values)] for key, values in choices.items()} for i in range(n)]


def lookup(config: Any, key: str) -> Any:
    """The value at a dotted command-line key in a printed config; a list (``trainer.callbacks``) is searched for
    the element that has the rest of the key in its ``init_args``, as jsonargparse applies it."""
    head, _, rest = key.partition(".")
    if isinstance(config, list):
        for element in config:
            try:
                return lookup(element.get("init_args", element), key)
            except KeyError:
                continue
        raise KeyError(key)
    value = config[head]
    return lookup(value, rest) if rest else value


def test_there_is_a_sweep_for_each_method_that_has_its_experiments() -> None:
    assert {p.stem for p in SWEEPS} >= {"two_stage_lr", "bidirectional_lr", "dia_llama_lambda", "r2gengpt_lr"}


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_sweep_parses_and_cites_its_paper(path: Path) -> None:
    text = path.read_text()
    sweep = yaml.safe_load(text)
    assert {"program", "method", "metric", "parameters", "command"} <= set(sweep), path.name
    assert sweep["method"] in ("grid", "random", "bayes")
    assert sweep["metric"]["name"] == "val/selection" and sweep["metric"]["goal"] == "maximize"
    assert "${args}" in sweep["command"] and sweep["command"][1] == "fit"
    experiment = sweep["command"][sweep["command"].index("-c") + 1]
    assert (REPO / experiment).is_file(), f"{path.name}: no {experiment}"
    comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    assert PAPER_SECTION.search(comments), f"{path.name}: cite the paper section of the search in a comment"
    assert f"make sweep-{path.stem.replace('_', '-')}" in comments
    assert f"sweep-{path.stem.replace('_', '-')}:" in (REPO / "Makefile").read_text()


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_agent_commands_reach_the_cli(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)  # where the agent runs: the commands' paths are relative to the repository
    sweep = yaml.safe_load(path.read_text())
    for values in runs(sweep["parameters"]):
        command = agent_command(sweep, values)
        assert command[0] == "lightning" and all(f"--{k}={v}" in command for k, v in values.items())
        with pytest.raises(SystemExit) as exit_info:
            main([*command[1:], "--print_config"])
        out, err = capsys.readouterr()
        assert exit_info.value.code in (0, None), f"{' '.join(command)}\n{err}"
        config = yaml.safe_load(out)
        for key, value in values.items():
            if isinstance(value, str) and value.endswith(".yaml"):  # a part file: the config holds its content
                part = yaml.safe_load((REPO / value).read_text())
                got = lookup(config, key)
                assert got["class_path"] == part["class_path"], (path.name, key, value)
                assert {k: got["init_args"][k] for k in part.get("init_args", {})} == part.get("init_args", {})
            else:
                assert lookup(config, key) == value, (path.name, key, value)
