"""Every experiment YAML through the real entry point (``radiolm.cli.main``) with its tiny-model overlay.

``tests/conf/<experiment>.yaml`` is the overlay: the second ``-c`` swaps the real models for tiny ones of the same
kind (found under ``models/`` in the ``tiny_workdir`` fixture's folder), sets one batch of fit, validate and test
on the CPU, and makes the batches small. An experiment without an overlay fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from radiolm.cli import main
from radiolm.tables import continual_metrics, load_spec
from radiolm.tables import row_command as tables_row_command

from .conftest import CONF, REPO

ALL_EXPERIMENTS = sorted((REPO / "experiments").glob("*.yaml"))  # _base/, data/, tables/ hold fragments
METRICS = {"bleu4", "meteor", "rouge_l", "cider", "ce_f1_micro_14"}
"""What a run's test metrics hold (all but CMRG-LLM's); a method's own selection metrics are added below."""
CMRG_METRICS = {"bleu3", "bleu4", "rouge_l", "cider"}
"""CMRG-LLM's protocol (§3.1) reports these four only."""
METHOD_METRICS = {"two_stage_": {"f1_cxb_14", "f1_cxb_5"}}


DATA_FRAGMENTS = {
    **{f"r2gengpt_{m}_iu_xray": "iu_xray" for m in ("shallow", "delta", "deep")},
    **{f"r2gengpt_{m}_mimic_cxr": "mimic_cxr_r2gen" for m in ("shallow", "delta", "deep")},  # `--layout r2gen`
    "bidirectional_iu_xray": "iu_xray",
    "bidirectional_t2v_swin_iu_xray": "iu_xray",
    "bidirectional_mimic_cxr": "mimic_cxr",
    "bidirectional_phantom": "phantom",
    "bidirectional_phantom_v2t": "phantom",
    "two_stage_gpt2_small": "mimic_cxr_curated",
    "two_stage_gpt2_large": "mimic_cxr_curated",
    "two_stage_open_llama_7b": "mimic_cxr_curated",
    "two_stage_phantom": "phantom",
    "demo": "phantom",
    "dia_llama": "ctrg_chest",
    "dia_llama_phantom": "phantom_ct",
    "cmrg_llm": "cmrg",
    "cmrg_llm_phantom": "cmrg_phantom",
}
"""The ``experiments/data/`` fragment each experiment's ``data:`` includes."""


def data_of(experiment: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the fragment, the init_args the experiment changes), checked: ``data:`` is ``data/<fragment>.yaml`` or
    ``{include: data/<fragment>.yaml, init_args: {...}}`` and every changed value differs from the fragment's."""
    name = DATA_FRAGMENTS.get(experiment.stem)
    assert name, f"{experiment.name}: add its data fragment to DATA_FRAGMENTS"
    data = yaml.safe_load(experiment.read_text())["data"]
    spec = {"include": data} if isinstance(data, str) else data
    assert spec.get("include") == f"data/{name}.yaml" and set(spec) <= {"include", "init_args"}, (
        f"{experiment.name}: `data:` must be `data/{name}.yaml` or include it and change only init_args, got {data}"
    )
    fragment = yaml.safe_load((REPO / "experiments" / "data" / f"{name}.yaml").read_text())
    changes = spec.get("init_args") or {}
    copied = sorted(k for k, v in changes.items() if fragment["init_args"].get(k) == v)
    assert not copied, f"{experiment.name}: data.init_args {copied} repeat data/{name}.yaml; drop them"
    return fragment, changes


def test_every_experiment_names_its_data_fragment() -> None:
    unnamed = [p.name for p in ALL_EXPERIMENTS if p.stem not in DATA_FRAGMENTS]
    assert not unnamed, f"add to DATA_FRAGMENTS the experiments/data/ fragment of {unnamed}"


@pytest.mark.parametrize("experiment", ALL_EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_data_is_its_fragment(experiment: Path) -> None:
    fragment, _ = data_of(experiment)
    assert fragment["class_path"].startswith("radiolm.data.")  # the fragment names the DataModule


def overlay(experiment: Path) -> Path:
    """``tests/conf/<experiment>.yaml``; an experiment must have one (a failure, never a skip)."""
    path = CONF / experiment.name
    assert path.is_file(), f"{experiment.name}: no tiny-model overlay; write {path.relative_to(REPO)} (see tests/conf)"
    return path


def test_experiments_exist() -> None:
    names = {p.stem for p in ALL_EXPERIMENTS}
    assert "demo" in names
    assert {f"r2gengpt_{m}_{d}" for m in ("shallow", "delta", "deep") for d in ("iu_xray", "mimic_cxr")} <= names


def test_every_overlay_has_its_experiment() -> None:
    homes = (REPO / "experiments", REPO / "docs" / "examples")  # docs/examples: the example of adding_a_method.md
    stale = sorted(p.name for p in CONF.glob("*.yaml") if not any((home / p.name).is_file() for home in homes))
    assert not stale, f"tests/conf overlays without an experiments/ file: {stale}"


def test_no_experiment_selects_on_test_studies() -> None:
    """Every DataModule refuses validation studies that are test studies and skips validation on a split without
    any (``validate_on_test``); no experiment or data fragment turns that off, so no monitor sees a test study."""
    files = sorted((REPO / "experiments").rglob("*.yaml"))
    assert not [p.name for p in files if "validate_on_test: true" in p.read_text()]


R2GENGPT_GLOBAL_BATCH = {
    **{f"r2gengpt_{m}_iu_xray": 16 for m in ("shallow", "delta", "deep")},  # 8 x 2 GPUs (scripts/1-1 .. 3-1)
    "r2gengpt_shallow_mimic_cxr": 32,  # 8 x 4 GPUs (scripts/4-1.shallow_run.sh)
    "r2gengpt_delta_mimic_cxr": 32,  # 8 x 4 (scripts/5-1.delta_run.sh)
    "r2gengpt_deep_mimic_cxr": 24,  # 6 x 4 (scripts/6-1.deep_run.sh; §4.2: four GPUs, mini-batch 6)
}
"""R2GenGPT's global batch in its official training scripts; ``devices: auto`` would change it with the machine."""


@pytest.mark.parametrize("experiment", sorted(R2GENGPT_GLOBAL_BATCH))
def test_r2gengpt_global_batch_is_the_official_one(experiment: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "-c", str(REPO / "experiments" / f"{experiment}.yaml"), "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    trainer, batch = config["trainer"], config["data"]["init_args"]["batch_size"]
    assert isinstance(trainer["devices"], int), "devices: auto makes the global batch depend on the machine"
    global_batch = batch * trainer["devices"] * trainer["num_nodes"] * trainer["accumulate_grad_batches"]
    assert global_batch == R2GENGPT_GLOBAL_BATCH[experiment]


def test_bidirectional_table_4_rows_share_r2gengpt_deep_s_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    """Table 4 of the bidirectional paper puts R2GenGPT + T2V next to R2GenGPT (deep, IU-Xray): the two resolved
    configs differ only in the method, its T2V parts and the views file T2V reads."""

    def resolved(name: str) -> dict[str, Any]:
        with pytest.raises(SystemExit):
            main(["fit", "-c", str(REPO / "experiments" / f"{name}.yaml"), "--print_config"])
        config: dict[str, Any] = yaml.safe_load(capsys.readouterr().out)
        return config

    r2gengpt, t2v = resolved("r2gengpt_deep_iu_xray"), resolved("bidirectional_t2v_swin_iu_xray")
    assert r2gengpt["trainer"] == t2v["trainer"] and r2gengpt["seed_everything"] == t2v["seed_everything"]
    assert {k: v for k, v in r2gengpt["data"]["init_args"].items() if k != "views_path"} == {
        k: v for k, v in t2v["data"]["init_args"].items() if k != "views_path"
    }
    shared = r2gengpt["model"]["init_args"]
    added = {k: v for k, v in t2v["model"]["init_args"].items() if shared.get(k) != v}
    assert set(added) <= {
        "text_encoder", "textual_mapper", "image_decoder", "reconstruction_mapper", "lambda_tvc", "lambda_rec",
        "clip_dim", "clip_temperature", "lambda_clip", "t2v_template", "view_text", "t2v_teacher_inputs",
        "image_resize", "train_crop",
    }, sorted(added)  # fmt: skip
    assert added.get("image_resize") is None and added.get("train_crop", "center") == "center"  # R2GenGPT's resize
    assert {k for k in shared if k not in t2v["model"]["init_args"]} == set()


@pytest.mark.parametrize("experiment", ALL_EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_runs_fit_and_test(experiment: Path, tiny_workdir: Path) -> None:
    main(["fit", "-c", str(experiment), "-c", str(overlay(experiment))])
    # a continual run tests every seen task after each stage, in stage-<t>-<name>/test-<s>-<name>/ of the run folder
    predictions = sorted(tiny_workdir.rglob("predictions-test-*.jsonl"))
    assert predictions, "fit must end with test and write predictions"
    records = [json.loads(line) for line in predictions[-1].read_text().splitlines()]
    assert records and {"id", "prediction", "reference", "labels"} <= set(records[0])
    assert len({r["id"] for r in records}) == len(records)
    metrics = json.loads(sorted(tiny_workdir.rglob("metrics-test-*.json"))[-1].read_text())
    if experiment.stem.startswith("cmrg_llm"):
        assert set(metrics) >= CMRG_METRICS and "meteor" not in metrics, sorted(metrics)
        return
    expected = METRICS.union(*(m for prefix, m in METHOD_METRICS.items() if experiment.stem.startswith(prefix)))
    assert expected <= set(metrics), sorted(expected - set(metrics))


@pytest.mark.parametrize("experiment", ALL_EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_print_config_resolves(experiment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each experiment resolves; its data is its fragment's, but for the keys it changes (no drift)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", str(experiment), "--print_config"])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "class_path: radiolm.methods" in out
    fragment, changes = data_of(experiment)
    data = yaml.safe_load(out)["data"]
    assert data["class_path"] == fragment["class_path"]
    expected = {**fragment["init_args"], **changes}
    assert {k: _resolved_as(data["init_args"][k], v) for k, v in expected.items()} == expected


def _resolved_as(resolved: Any, given: Any) -> Any:
    """``resolved`` cut to what ``given`` names: nested DataModules (a continual data set's tasks) resolve with
    their defaults filled in, which the fragment does not repeat."""
    if isinstance(given, dict) and isinstance(resolved, dict):
        return {k: _resolved_as(resolved.get(k), v) for k, v in given.items()}
    if isinstance(given, list) and isinstance(resolved, list) and len(given) == len(resolved):
        return [_resolved_as(r, g) for r, g in zip(resolved, given, strict=True)]
    return resolved


SLOW_TABLE_SPECS = {"cmrg"}
"""Specs whose rows run in the slow tier: CMRG-LLM's 12 GPU rows each train a two-stage sequence (about 30 s each);
their strategies are pinned in tests/test_cmrg_strategies.py and the phantom spec's rows run in the default tier."""
TABLE_ROWS = [
    pytest.param(spec, row, id=f"{spec.stem}/{name}", marks=[pytest.mark.slow] if spec.stem in SLOW_TABLE_SPECS else [])
    for spec in sorted((REPO / "experiments" / "tables").glob("*.yaml"))
    for name, row in {row.name: row for table in load_spec(spec) for row in table.rows}.items()
]
"""Every row of every ``experiments/tables/*.yaml`` spec (``make table-*``), once: a row that two tables of a spec
share is one run (same name, config and args, checked by ``load_spec``)."""
CONTINUAL_FRAGMENTS = {"cmrg", "cmrg_phantom"}
"""Data fragments of continual experiments: their table rows run two stages (``tests/conf/extra/cmrg_two_tasks.yaml``,
a third config, not an experiment's overlay)."""


@pytest.mark.parametrize(("spec", "row"), TABLE_ROWS)
def test_table_row_runs_fit_and_test(spec: Path, row: Any, tiny_workdir: Path) -> None:
    """The command ``radiolm table`` runs for the row (its experiment, run name and overrides), with the experiment's
    tiny overlay after the experiment: the row's overrides resolve and its model trains and tests."""
    command = tables_row_command(spec, row)[3:]  # ["fit", "-c", config, "--run_name", ..., *args]
    config = REPO / row.config
    # a row may replace the experiment's data by a fragment (the phantom benchmark's CMRG-LLM row): the runner runs
    # from the repository root, so its path is the repository's
    args = [re.sub(r"^--data=(experiments/.+)$", lambda m: f"--data={REPO / m[1]}", a) for a in command[3:]]
    replaced = any(a.startswith("--data=") for a in args)
    continual = DATA_FRAGMENTS.get(config.stem) in CONTINUAL_FRAGMENTS and not replaced
    shorter = ["-c", str(CONF / "extra" / "cmrg_two_tasks.yaml")] if continual else []
    main([command[0], "-c", str(config), "-c", str(overlay(config)), *shorter, *args])
    assert sorted(tiny_workdir.rglob("predictions-test*.jsonl")), f"{spec.name} row {row.name}: no test predictions"
    if continual:  # the table reads v_t from the matrix: every column of the row's spec that t = 2 fills
        (matrix,) = tiny_workdir.rglob("continual-matrix.json")
        metrics = continual_metrics(json.loads(matrix.read_text()))
        keys = {c.key for table in load_spec(spec) for c in table.columns if c.key.endswith("_v2")}
        assert keys and keys <= set(metrics), sorted(keys - set(metrics))
