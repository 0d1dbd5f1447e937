"""radiolm.methods and radiolm.parts re-export their public classes (lazily), and YAML names them by the short path."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys

import pytest

from .conftest import REPO

PACKAGES = ["radiolm.methods", "radiolm.parts"]
SHORT = re.compile(r"class_path[:=]\s*['\"]?(radiolm\.(?:methods|parts)\.[\w.]+)")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_resolves_to_its_class(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__ == sorted(module.__all__) and set(module.__all__) == set(module._MODULES)
    for name in module.__all__:
        value = getattr(module, name)
        assert value.__name__ == name and value.__module__ == f"{package}.{module._MODULES[name]}"
        assert inspect.isclass(value)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        module.Nope  # noqa: B018


def test_importing_the_packages_is_cheap() -> None:
    """The names load their modules on first use: the packages themselves import no torch, transformers, timm."""
    code = (
        "import sys, radiolm.parts, radiolm.methods; "
        "print(sorted(m for m in ('torch', 'transformers', 'timm', 'lightning', 'monai') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_yaml_and_tests_use_the_short_names() -> None:
    """``radiolm.methods.R2GenGPT``, ``radiolm.parts.VisionEncoder``: never the defining module's path."""
    files = [*REPO.glob("experiments/**/*.yaml"), *REPO.glob("tests/**/*.py")]
    seen = set()
    for path in files:
        for match in SHORT.finditer(path.read_text()):
            name = match.group(1)
            package, _, attr = name.rpartition(".")
            assert package in PACKAGES, f"{path.relative_to(REPO)}: {name} is not the short public name"
            assert attr in importlib.import_module(package).__all__, f"{path.relative_to(REPO)}: {name} is not public"
            seen.add(name)
    assert {"radiolm.methods.R2GenGPT", "radiolm.parts.VisionEncoder", "radiolm.parts.PromptTemplate"} <= seen
