"""Packaging: the top-level callbacks/ folder is the import package radiolm.callbacks in a regular install too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import REPO


def test_regular_install_maps_callbacks(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", str(REPO), "--no-deps", "--no-build-isolation", "--quiet",
         "--target", str(target)],
        check=True, capture_output=True, cwd=tmp_path,
    )  # fmt: skip
    code = "import radiolm, radiolm.callbacks as c; print(radiolm.__file__); print(c.ReportSamples.__module__)"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
    ).stdout.split()  # fmt: skip
    assert out[0].startswith(str(target))  # the installed copy, not the checkout
    assert out[1] == "radiolm.callbacks.report_samples"


def test_console_scripts_declared() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert 'radiolm = "radiolm.cli:main"' in text and 'lightning = "radiolm.cli:main"' in text
