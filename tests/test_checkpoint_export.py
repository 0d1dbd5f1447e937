"""``radiolm checkpoint export``: a run's trainable weights as safetensors + its config, loadable by ``lightning test``
and ``radiolm analyze``; and checkpoints that DeepSpeed writes (ZeRO-2, frozen parameters excluded)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open

from radiolm.checkpoint.export import plain_strategy
from radiolm.checkpoint.read import read_trainable_weights
from radiolm.cli import main

from .conftest import CONF, REPO

EXPERIMENT = REPO / "experiments" / "demo.yaml"
TINY = ["-c", str(CONF / "demo.yaml"), "--trainer.fast_dev_run=false", "--trainer.logger=false"]


def safetensors_of(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()  # noqa: SIM118


def test_export_round_trips_a_demo_checkpoint(tiny_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Weights equal the checkpoint's trainable weights exactly; `lightning test` and `load_run` read the export."""
    main(["fit", "-c", str(EXPERIMENT), *TINY, "--trainer.max_steps=2", "--trainer.default_root_dir=run",
          "--test_after_fit=false"])  # fmt: skip
    last = tiny_workdir / "run" / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    main(["checkpoint", "export", "run", "--out", "export"])
    out = capsys.readouterr().out
    assert f"read {Path('run/checkpoints/last.ckpt')} (last; lightning, epoch " in out  # the demo keeps only last
    assert ", step 2)" in out
    export = tiny_workdir / "export"

    saved = torch.load(last, map_location="cpu", weights_only=True)
    tensors, metadata = safetensors_of(export / "model.safetensors")
    assert tensors.keys() == saved["state_dict"].keys() and tensors
    assert all(torch.equal(tensors[k], v) for k, v in saved["state_dict"].items())
    assert not any(k.startswith("language_model.") for k in tensors)  # the frozen tiny LLM stays out
    assert metadata["global_step"] == "2" and metadata["kind"] == "lightning"
    assert (export / "config.yaml").read_bytes() == (tiny_workdir / "run" / "config.yaml").read_bytes()
    summary = json.loads((export / "export.json").read_text())
    assert summary["which"] == "last" and summary["parameters"] == sum(t.numel() for t in tensors.values())

    # lightning test from the export gives the same test metrics and predictions as from the original checkpoint
    for name, config, ckpt in (("orig", "run/config.yaml", last), ("exported", "export/config.yaml", "export/model.ckpt")):
        main(["test", "-c", config, f"--ckpt_path={ckpt}", f"--trainer.default_root_dir={name}"])
    for pattern in ("metrics-test-*.json", "predictions-test-*.jsonl"):
        (orig,), (exported,) = (list((tiny_workdir / n).glob(pattern)) for n in ("orig", "exported"))
        assert orig.read_text() == exported.read_text() and orig.stat().st_size > 0, pattern

    # radiolm analyze's loader takes the export folder as a run
    from radiolm.analysis.run import load_run

    run = load_run(export, data_overrides={"num_workers": 0})
    own = run.model.state_dict()
    assert run.checkpoint.name == "model.safetensors"
    assert all(torch.equal(own[k], v) for k, v in tensors.items())


def test_export_picks_the_best_checkpoint_the_run_recorded(tiny_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    callback = {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                "init_args": {"monitor": "train/loss", "mode": "min", "save_top_k": 1, "save_last": True,
                              "every_n_train_steps": 1, "filename": "best-{step}"}}  # fmt: skip
    (tiny_workdir / "callbacks.yaml").write_text(yaml.safe_dump({"trainer": {"callbacks": [callback]}}))
    main(["fit", "-c", str(EXPERIMENT), *TINY, "-c", "callbacks.yaml", "--trainer.max_steps=3",
          "--trainer.default_root_dir=run", "--test_after_fit=false"])  # fmt: skip
    last = torch.load(tiny_workdir / "run/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    (state,) = [s for k, s in last["callbacks"].items() if k.startswith("ModelCheckpoint")]
    capsys.readouterr()
    main(["checkpoint", "export", "run", "--out", "export"])
    out = capsys.readouterr().out
    best = Path(state["best_model_path"])
    assert f"read {best} (best (train/loss={float(state['best_model_score']):.4g})" in out
    tensors, _ = safetensors_of(tiny_workdir / "export" / "model.safetensors")
    expected = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    assert all(torch.equal(tensors[k], v) for k, v in expected.items()) and tensors.keys() == expected.keys()


def test_bad_paths_give_one_line_naming_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def error(*args: str) -> str:
        with pytest.raises(SystemExit) as exit_info:
            main(["checkpoint", "export", *args, "--out", str(tmp_path / "out")])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        return err

    missing = tmp_path / "runs" / "nope"
    assert error(str(missing)).startswith(f"radiolm: error: {missing}: no such run folder, checkpoint file")
    assert f"{tmp_path}: not a run folder (no checkpoints/)" in error(str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    assert f"{tmp_path / 'checkpoints'}: no best*.ckpt or last.ckpt" in error(str(tmp_path))
    junk = tmp_path / "checkpoints" / "last.ckpt"
    junk.write_text("not a checkpoint")
    assert f"{tmp_path / 'config.yaml'}: missing" in error(str(junk))
    (tmp_path / "config.yaml").write_text("model: {}\n")
    assert f"{junk}: cannot read it as a checkpoint" in error(str(junk))
    torch.save({"state_dict": {"w": torch.zeros(1)}}, junk)
    assert f"{junk}: not written by a radiolm method" in error(str(junk))
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_zero2_yaml_excludes_frozen_parameters_and_export_drops_deepspeed() -> None:
    """The strategy every ZeRO-2 experiment includes keeps frozen weights out of its checkpoints; the export's config
    evaluates without DeepSpeed."""
    strategy = yaml.safe_load((REPO / "experiments" / "_base" / "deepspeed_zero2.yaml").read_text())
    assert strategy["class_path"] == "lightning.pytorch.strategies.DeepSpeedStrategy"
    assert strategy["init_args"]["stage"] == 2 and strategy["init_args"]["exclude_frozen_parameters"] is True
    config = {"trainer": {"strategy": strategy, "max_steps": 3}}
    assert plain_strategy(config) and config["trainer"] == {"strategy": "auto", "max_steps": 3}
    assert plain_strategy({"trainer": {"strategy": "ddp"}}) == []
