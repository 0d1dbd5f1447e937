"""``radiolm checkpoint export``: a run's trainable weights as safetensors + its config, loadable by ``lightning test``
and ``radiolm analyze``; and checkpoints that DeepSpeed writes (ZeRO-2, frozen parameters excluded)."""

from __future__ import annotations

import importlib.util
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
TINY += ["--model.init_args.metrics=[ce]", "--model.init_args.decoding.max_new_tokens=8"]  # no METEOR JVM per test


def safetensors_of(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()  # noqa: SIM118


BEST_OF_TRAIN_LOSS = {
    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
    "init_args": {"monitor": "train/loss", "mode": "min", "save_top_k": 1, "save_last": True,
                  "every_n_train_steps": 1, "filename": "best-{step}"},
}  # fmt: skip
"""A checkpoint callback that records a best without validation (the tiny overlay has none)."""


def test_export_round_trips_a_demo_checkpoint(tiny_workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The best checkpoint the run recorded is exported; its weights equal the checkpoint's trainable weights
    exactly; `lightning test` from the export gives the same metrics and predictions; `load_run` reads it."""
    (tiny_workdir / "callbacks.yaml").write_text(yaml.safe_dump({"trainer": {"callbacks": [BEST_OF_TRAIN_LOSS]}}))
    main(["fit", "-c", str(EXPERIMENT), *TINY, "-c", "callbacks.yaml", "--trainer.max_steps=3",
          "--trainer.default_root_dir=run", "--test_after_fit=false"])  # fmt: skip
    last = torch.load(tiny_workdir / "run/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    (recorded,) = [s for k, s in last["callbacks"].items() if k.startswith("ModelCheckpoint")]
    best = Path(recorded["best_model_path"])
    capsys.readouterr()
    main(["checkpoint", "export", "run", "--out", "export"])
    out = capsys.readouterr().out
    assert f"read {best} (best (train/loss={float(recorded['best_model_score']):.4g}); lightning, epoch " in out
    export = tiny_workdir / "export"

    saved = torch.load(best, map_location="cpu", weights_only=True)
    tensors, metadata = safetensors_of(export / "model.safetensors")
    assert tensors.keys() == saved["state_dict"].keys() and tensors
    assert all(torch.equal(tensors[k], v) for k, v in saved["state_dict"].items())
    assert not any(k.startswith("language_model.") for k in tensors)  # the frozen tiny LLM stays out
    assert metadata["global_step"] == str(saved["global_step"]) and metadata["kind"] == "lightning"
    assert (export / "config.yaml").read_bytes() == (tiny_workdir / "run" / "config.yaml").read_bytes()
    summary = json.loads((export / "export.json").read_text())
    assert summary["which"].startswith("best") and summary["parameters"] == sum(t.numel() for t in tensors.values())

    # lightning test from the export gives the same test metrics and predictions as from the original checkpoint
    for name, config, ckpt in (
        ("orig", "run/config.yaml", best),
        ("exported", "export/config.yaml", "export/model.ckpt"),
    ):
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

    # without a best checkpoint the run's last one is exported, and the output says so
    best.unlink()
    main(["checkpoint", "export", "run", "--out", "export-last"])
    assert f"read {Path('run/checkpoints/last.ckpt')} (last; lightning, epoch " in capsys.readouterr().out
    tensors, _ = safetensors_of(tiny_workdir / "export-last" / "model.safetensors")
    assert all(torch.equal(tensors[k], v) for k, v in last["state_dict"].items())


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


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="needs DeepSpeed (pip install .[deepspeed])")
def test_deepspeed_zero2_checkpoint_is_trainable_only_and_exports(
    tmp_path: Path, tiny_llm: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On the CPU, what DeepSpeed allows: a ZeRO-2 engine takes a step, the strategy of deepspeed_zero2.yaml saves
    (tests/deepspeed_cpu.py); the folder holds no frozen weight, loads back non-strictly into a fresh module, and
    exports the same tensors as Lightning's own ZeRO conversion."""
    env = {
        **os.environ,
        "DS_ACCELERATOR": "cpu",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    port = str(29500 + os.getpid() % 1000)
    script = [sys.executable, str(REPO / "tests" / "deepspeed_cpu.py"), str(tiny_llm), str(tmp_path), port]
    done = subprocess.run(script, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "last.ckpt"
    states = torch.load(tmp_path / "states.pt", map_location="cpu", weights_only=True)
    trained, trainable = states["trained"], set(states["trainable"])
    written = torch.load(folder / "checkpoint" / "mp_rank_00_model_states.pt", map_location="cpu", weights_only=True)
    assert not any(k.startswith("language_model.") for k in written["module"]) and not written["frozen_param_shapes"]
    assert written["radiolm_trainable_only"] and written["global_step"] == 1  # Lightning's client state rides along
    # lightning test's path: strict_loading is off under exclude_frozen_parameters; every weight comes back
    assert states["strict_loading"] is False
    assert all(torch.equal(v, states["loaded"][k]) for k, v in trained.items())

    weights = read_trainable_weights(folder)
    buffers = {k for k in written["buffer_names"] if not k.startswith("language_model.")}
    assert weights.kind == "deepspeed" and weights.state_dict.keys() == trainable | buffers and buffers
    assert all(torch.equal(v, trained[k]) for k, v in weights.state_dict.items())

    from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

    converted = convert_zero_checkpoint_to_fp32_state_dict(folder, tmp_path / "lightning.pt")["state_dict"]
    assert all(torch.equal(converted[k], weights.state_dict[k]) for k in trainable)

    config = {"trainer": {"strategy": yaml.safe_load((REPO / "experiments/_base/deepspeed_zero2.yaml").read_text())}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    capsys.readouterr()
    main(
        [
            "checkpoint",
            "export",
            str(folder),
            "--out",
            str(tmp_path / "export"),
            "--config",
            str(tmp_path / "config.yaml"),
        ]
    )
    out = capsys.readouterr().out
    assert f"read {folder} (as given; deepspeed, epoch 0, step 1)" in out and "-> auto" in out
    tensors, _ = safetensors_of(tmp_path / "export" / "model.safetensors")
    assert tensors.keys() == weights.state_dict.keys()
    assert all(torch.equal(tensors[k], v) for k, v in weights.state_dict.items())
    assert yaml.safe_load((tmp_path / "export" / "config.yaml").read_text())["trainer"]["strategy"] == "auto"


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="needs DeepSpeed (pip install .[deepspeed])")
@pytest.mark.skipif(not torch.cuda.is_available(), reason="DeepSpeedStrategy runs on CUDA only")
def test_dia_llama_zero2_fit_writes_trainable_only_and_test_reads_it(tiny_workdir: Path) -> None:
    """Two ZeRO-2 steps of the tiny Dia-LLaMA (LoRA LLM, 3D encoder) with the strategy of its experiment: the folder
    holds only trainable weights (LoRA yes, base LLM no); `lightning test --ckpt_path` reads it back, and so does the
    export."""
    experiment = [
        "-c", str(REPO / "experiments" / "dia_llama.yaml"), "-c", str(CONF / "dia_llama.yaml"),
        f"--trainer.strategy={REPO / 'experiments' / '_base' / 'deepspeed_zero2.yaml'}",
        "--trainer.accelerator=gpu", "--trainer.devices=1", "--trainer.precision=32-true",
        "--trainer.fast_dev_run=false", "--trainer.logger=false",
    ]  # fmt: skip
    callbacks = {"trainer": {"callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                            "init_args": {"save_last": True, "save_top_k": 0}}]}}  # fmt: skip
    (tiny_workdir / "callbacks.yaml").write_text(yaml.safe_dump(callbacks))
    main(["fit", *experiment, "-c", "callbacks.yaml", "--trainer.max_steps=2", "--trainer.default_root_dir=run",
          "--test_after_fit=false"])  # fmt: skip
    folder = tiny_workdir / "run" / "checkpoints" / "last.ckpt"
    assert folder.is_dir()
    written = torch.load(folder / "checkpoint" / "mp_rank_00_model_states.pt", map_location="cpu", weights_only=True)
    trainable = {name for group in written["param_shapes"] for name in group}
    assert set(written["module"]) <= trainable | set(written["buffer_names"]) and not written["frozen_param_shapes"]
    assert any("lora_" in k for k in trainable) and not any("base_layer" in k for k in written["module"])

    main(["test", *experiment, f"--ckpt_path={folder}", "--trainer.default_root_dir=tested"])
    assert list((tiny_workdir / "tested").glob("metrics-test-*.json"))
    main(["checkpoint", "export", "run", "--out", "export"])
    tensors, _ = safetensors_of(tiny_workdir / "export" / "model.safetensors")
    assert trainable <= tensors.keys()
    assert all(torch.equal(tensors[k], written["module"][k].float().cpu()) for k in trainable)
    main(["test", "-c", "export/config.yaml", "--ckpt_path=export/model.ckpt", "--trainer.default_root_dir=exported"])
    assert list((tiny_workdir / "exported").glob("metrics-test-*.json"))
