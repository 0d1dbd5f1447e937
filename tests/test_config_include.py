"""``include:`` in config files (radiolm/config_include.py): merge rules, relative paths, errors that name the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from radiolm.cli import main
from radiolm.config_include import ConfigIncludeError, merge, resolve_includes

from .conftest import REPO


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_merge_updates_nested_mappings_and_replaces_the_rest() -> None:
    base = {"class_path": "A", "init_args": {"batch_size": 8, "n": 1, "size": [1, 2]}}
    changes = {"init_args": {"batch_size": 4, "size": [3]}}
    assert merge(base, changes) == {"class_path": "A", "init_args": {"batch_size": 4, "n": 1, "size": [3]}}
    assert base["init_args"]["batch_size"] == 8  # the fragment itself is not changed


def test_include_is_relative_to_the_including_file(tmp_path: Path) -> None:
    write(tmp_path / "frags" / "inner.yaml", "init_args: {a: 1, b: 2}\n")
    write(tmp_path / "frags" / "outer.yaml", "class_path: X\ninclude: inner.yaml\ninit_args: {b: 3}\n")
    value = {"data": {"include": "frags/outer.yaml", "init_args": {"c": 4}}, "other": [{"include": "frags/inner.yaml"}]}
    assert resolve_includes(value, tmp_path) == {
        "data": {"class_path": "X", "init_args": {"a": 1, "b": 3, "c": 4}},
        "other": [{"init_args": {"a": 1, "b": 2}}],
    }


def test_bad_includes_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigIncludeError, match=r"exp\.yaml: `include: .*missing\.yaml`: no such file"):
        resolve_includes({"data": {"include": "missing.yaml"}}, tmp_path, "exp.yaml")
    write(tmp_path / "list.yaml", "- 1\n- 2\n")
    with pytest.raises(ConfigIncludeError, match=r"list\.yaml \(included by exp\.yaml\): must be a YAML mapping"):
        resolve_includes({"data": {"include": "list.yaml"}}, tmp_path, "exp.yaml")
    write(tmp_path / "loop.yaml", "include: loop.yaml\n")
    with pytest.raises(ConfigIncludeError, match="includes itself"):
        resolve_includes({"include": "loop.yaml"}, tmp_path, "exp.yaml")
    with pytest.raises(ConfigIncludeError, match="takes a path"):
        resolve_includes({"include": 3}, tmp_path, "exp.yaml")


def test_the_cli_resolves_an_include_and_its_changes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An experiment next to experiments/ includes the IU-Xray fragment and changes one key; a typo is one line."""
    experiment = REPO / "experiments" / "r2gengpt_shallow_iu_xray.yaml"
    changed = write(tmp_path / "exp.yaml", f"data:\n  include: {REPO}/experiments/data/iu_xray.yaml\n"
                    "  init_args:\n    batch_size: 3\n")  # fmt: skip
    with pytest.raises(SystemExit):
        main(["fit", "-c", str(experiment), "-c", str(changed), "--print_config"])
    out = capsys.readouterr().out
    assert "batch_size: 3" in out and "cleaning: r2gen_iu" in out and "class_path: radiolm.data.IUXrayDataModule" in out
    broken = write(tmp_path / "broken.yaml", "data:\n  include: data/no_such_fragment.yaml\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", str(experiment), "-c", str(broken)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "broken.yaml: `include: " in err and "no_such_fragment.yaml`: no such file" in err
