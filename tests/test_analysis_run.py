"""`radiolm.analysis.run.load_run`: a finished run comes back with its trained weights and its data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from radiolm.analysis.run import batches, find_checkpoint, load_run
from radiolm.cli import main
from radiolm.errors import RadioLMError

from .conftest import REPO


def test_load_run_restores_trained_weights(workdir: Path, tiny_llm: Path) -> None:
    main(
        [
            "fit", "-c", str(REPO / "experiments" / "demo.yaml"),
            "--trainer.max_steps=2", "--trainer.accelerator=cpu", "--trainer.precision=32-true",
            "--test_after_fit=false",
            f"--model.init_args.language_model.init_args.name_or_path={tiny_llm}",
            "--model.init_args.vision_encoder.init_args.name=test_resnet",
            "--model.init_args.vision_encoder.init_args.image_size=64",
            "--data.init_args.n=12", "--data.init_args.image_size=64", "--data.init_args.num_workers=0",
            "--data.init_args.eval_batch_size=2",
        ]
    )  # fmt: skip
    (run_dir,) = sorted((workdir / "runs" / "demo").glob("version_*"))
    checkpoint = find_checkpoint(run_dir, "best")  # no best-*.ckpt in the demo: falls back to last.ckpt
    assert checkpoint.name == "last.ckpt"
    run = load_run(run_dir, "last", data_overrides={"num_workers": 0})
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    own = run.model.state_dict()
    assert saved and all(torch.equal(own[k], v) for k, v in saved.items())
    assert not run.model.training
    assert run.datamodule.image_transform.size == 64  # linked from the model as the CLI does
    first = next(batches(run, "test", limit=2))
    assert len(first) == 2 and first.images is not None and first.images.shape[-1] == 64


def test_load_run_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(RadioLMError, match=r"config\.yaml: missing"):
        load_run(tmp_path)
    (tmp_path / "config.yaml").write_text("model: {}\n")
    with pytest.raises(RadioLMError, match="checkpoints: no best-"):
        find_checkpoint(tmp_path, "best")
    with pytest.raises(RadioLMError, match=r"--ckpt nope\.ckpt: no such checkpoint file"):
        find_checkpoint(tmp_path, "nope.ckpt")
