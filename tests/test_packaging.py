"""Packaging: a regular (not editable) install ships every module and data file and runs from its own copy.

The wheel is built from a copy of the checkout (the files git tracks or would track, so nothing of this checkout's
build folders or links leaks in) and installed into a fresh folder. Every check then runs ``python -S`` with only
that folder and the interpreter's site-packages folders on the path: ``-S`` processes no ``.pth`` file, so the
editable install of the suite (a finder that maps ``radiolm`` to a checkout) cannot stand in for a missing file.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from radiolm.cli import COMMANDS, Group

from .conftest import REPO

CACHES = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist", ".*")


def _source_copy(out: Path) -> Path:
    """The checkout's files as a fresh clone plus uncommitted work would have them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if listed.returncode != 0:  # not a git checkout (an unpacked sdist): everything but caches and builds
        shutil.copytree(REPO, out, ignore=CACHES, symlinks=True)
        return out
    for name in listed.stdout.split("\0"):
        path = REPO / name
        if name and (path.is_file() or path.is_symlink()):  # a deleted file is still listed until committed
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out / name, follow_symlinks=False)
    return out


def _shipped(source: Path) -> set[str]:
    """The files a wheel must hold: ``radiolm/**`` as they are, ``callbacks/**`` under ``radiolm/callbacks/``."""
    files = {p.relative_to(source).as_posix() for p in (source / "radiolm").rglob("*") if p.is_file()}
    files |= {"radiolm/" + p.relative_to(source).as_posix() for p in (source / "callbacks").rglob("*") if p.is_file()}
    return {f for f in files if "__pycache__" not in f}


class Installed:
    """The wheel installed into ``target``; :meth:`python` runs the interpreter on it alone."""

    def __init__(self, source: Path, target: Path) -> None:
        self.source, self.target = source, target
        self.cwd = target.parent / "cwd"  # an empty working directory: nothing importable from it
        self.cwd.mkdir()
        site_dirs = [*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
        path = [str(target), *(d for d in dict.fromkeys(site_dirs) if Path(d).is_dir())]
        unset = {"PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "PYTHONSAFEPATH"}
        self.env = {k: v for k, v in os.environ.items() if k not in unset} | {"PYTHONPATH": os.pathsep.join(path)}

    def python(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-S", *args], cwd=self.cwd, env=self.env, capture_output=True, text=True, check=False
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("packaging")
    source = _source_copy(root / "source")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "--quiet"]
    offline = ["--no-deps", "--no-index"]
    subprocess.run(
        [*pip, "wheel", *offline, "--no-build-isolation", "--wheel-dir", str(root / "dist"), str(source)],
        check=True, capture_output=True, cwd=root,
    )  # fmt: skip
    (wheel,) = (root / "dist").glob("radiolm-*.whl")
    target = root / "site"
    subprocess.run([*pip, "install", *offline, "--target", str(target), str(wheel)], check=True, capture_output=True)
    return Installed(source, target)


def test_wheel_ships_every_module_and_data_file(installed: Installed) -> None:
    files = {p.relative_to(installed.target).as_posix() for p in (installed.target / "radiolm").rglob("*")}
    missing = sorted(_shipped(installed.source) - files)
    assert not missing, f"not in the wheel: {missing}"
    assert "radiolm/metrics/chexpert_phrases/cues.txt" in files and "radiolm/callbacks/report_samples.py" in files


def test_every_installed_module_imports_from_the_install(installed: Installed) -> None:
    code = """
import importlib, json, pkgutil, sys
import radiolm
names, failed = [], []
for info in pkgutil.walk_packages(radiolm.__path__, "radiolm.", onerror=lambda name: failed.append(name)):
    names.append(info.name)
    try:
        importlib.import_module(info.name)
    except Exception as e:
        failed.append(f"{info.name}: {e!r}")
files = {n: getattr(m, "__file__", None) for n, m in sys.modules.items() if n.split(".")[0] == "radiolm"}
print(json.dumps({"names": names, "failed": failed, "files": files}))
"""
    done = installed.python("-c", code)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["failed"] == []
    expected = {"radiolm.cli", "radiolm.callbacks.report_samples", "radiolm.analysis.per_disease_f1"}
    expected |= {"radiolm.benchmarks.dia_llama_step", "radiolm.metrics.commands.label"}
    assert expected <= set(result["names"])
    outside = {n: f for n, f in result["files"].items() if f and not f.startswith(str(installed.target))}
    assert not outside, f"imported from outside the install: {outside}"


@pytest.mark.parametrize("command", [[], ["analyze"], ["data"]], ids=["radiolm", "analyze", "data"])
def test_installed_help(installed: Installed, command: list[str]) -> None:
    done = installed.python("-m", "radiolm", *command, "--help")
    assert done.returncode == 0, done.stderr
    table: dict = COMMANDS
    for name in command:
        entry = table[name]
        assert isinstance(entry, Group)
        table = entry.commands
    for name, entry in table.items():
        assert f"  {name} " in done.stdout and entry.help in done.stdout


def test_console_scripts(installed: Installed) -> None:
    (entry_points,) = installed.target.glob("radiolm-*.dist-info/entry_points.txt")
    text = entry_points.read_text()
    assert "radiolm = radiolm.cli:main" in text and "lightning = radiolm.cli:main" in text


def test_installed_analysis_runs(installed: Installed) -> None:
    """The symptom of the hand-written package list: `radiolm analyze <name>` failed in a regular install."""
    done = installed.python("-m", "radiolm", "analyze", "per-disease-f1", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: radiolm analyze per-disease-f1")
