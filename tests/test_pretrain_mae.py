"""`radiolm pretrain mae`: MAE pre-training of an experiment's ViT-MAE, and the checkpoint plugged back in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from radiolm.cli import main
from radiolm.errors import MissingAssetError
from radiolm.parts import VisionEncoder
from radiolm.parts.image_decoder import MAEImageDecoder

from .conftest import CONF, REPO

EXPERIMENT = ["-c", str(REPO / "experiments" / "bidirectional_phantom.yaml")]
TINY = ["-c", str(CONF / "bidirectional_phantom.yaml")]  # a tiny ViT-MAE (32 px, 8 px patches) and MAE decoder


def test_pretraining_lowers_the_loss_and_its_checkpoint_feeds_both_parts(tiny_workdir: Path) -> None:
    save = tiny_workdir / "mae"
    main(["pretrain", "mae", *EXPERIMENT, *TINY, "--epochs", "12", "--batch-size", "4", "--lr", "3e-3",
          "--save", str(save)])  # fmt: skip
    record = json.loads((save / "pretraining.json").read_text())
    losses = [row["loss"] for row in record["epochs"]]
    assert len(losses) == 12 and record["mask_ratio"] == 0.75
    assert losses[-1] < 0.8 * losses[0], losses
    config = json.loads((save / "config.json").read_text())
    assert (config["hidden_size"], config["patch_size"], config["decoder_hidden_size"]) == (32, 8, 16)
    assert config["norm_pix_loss"] is False  # the target is what the method's reconstruction loss compares with

    saved = load_file(str(save / "model.safetensors"))
    encoder = VisionEncoder(name=str(save), backend="hf", pretrained=True, trainable="full")
    patch = encoder.model.embeddings.patch_embeddings.projection.weight
    torch.testing.assert_close(patch, saved["vit.embeddings.patch_embeddings.projection.weight"])
    assert encoder.model.config.mask_ratio == 0.0  # an encoder sees every patch
    decoder = MAEImageDecoder(32, (4, 4), 8, name=str(save))
    torch.testing.assert_close(decoder.decoder.decoder_pred.weight, saved["decoder.decoder_pred.weight"])

    # the path of the bidirectional phantom experiments: both parts named by the checkpoint folder
    parts = "--model.init_args.vision_encoder.init_args"
    main(["fit", *EXPERIMENT, *TINY, f"{parts}.name={save}", f"{parts}.pretrained=true",
          f"--model.init_args.image_decoder.init_args.name={save}"])  # fmt: skip


def test_a_missing_suite_checkpoint_names_the_command_that_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingAssetError, match="make phantom-mae"):
        VisionEncoder(name="data/phantom-vit-mae", backend="hf", pretrained=True)


def test_pretraining_refuses_an_encoder_that_is_not_a_vit_mae(
    tiny_workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = ["-c", str(REPO / "experiments" / "demo.yaml"), "-c", str(CONF / "demo.yaml")]
    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "mae", *demo, "--epochs", "1", "--save", str(tiny_workdir / "no")])
    assert exit_info.value.code != 0 and "must be a ViT-MAE" in capsys.readouterr().err
    assert not (tiny_workdir / "no").exists()
