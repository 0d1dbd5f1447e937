"""`radiolm pretrain mae`: MAE pre-training of an experiment's ViT-MAE, and the checkpoint plugged back in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from radiolm.cli import main
from radiolm.errors import MissingAssetError, RadioLMError
from radiolm.parts import VisionEncoder, VolumeEncoder
from radiolm.parts.image_decoder import MAEImageDecoder
from radiolm.pretrain.volume_mae import VolumeMAE

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


CT_EXPERIMENT = ["-c", str(REPO / "experiments" / "dia_llama_phantom.yaml")]
CT_FROM_SCRATCH = ["-c", str(REPO / "experiments" / "_base" / "phantom_mae3d_from_scratch.yaml")]
CT_TINY = ["-c", str(CONF / "dia_llama_phantom.yaml")]  # a tiny 3D ViT: 32 x 32 x 8 in 16 x 16 x 4 patches, M = 8


def tiny_volume_encoder(**kwargs: object) -> VolumeEncoder:
    sizes = {"img_size": (32, 32, 8), "patch_size": (16, 16, 4), "in_channels": 1, "hidden_size": 24}
    sizes |= {"num_layers": 1, "num_heads": 2, "dim_head": 8, "mlp_dim": 32, "pos_table": (2, 2, 2)}
    return VolumeEncoder(**(sizes | kwargs))  # type: ignore[arg-type]


def test_volume_pretraining_lowers_the_loss_and_the_encoder_loads_its_checkpoint(tiny_workdir: Path) -> None:
    save = tiny_workdir / "mae3d"
    main(["pretrain", "mae", *CT_EXPERIMENT, *CT_FROM_SCRATCH, *CT_TINY, "--epochs", "10", "--batch-size", "4",
          "--lr", "3e-3", "--save", str(save)])  # fmt: skip
    losses = [row["loss"] for row in json.loads((save / "pretraining.json").read_text())["epochs"]]
    assert len(losses) == 10 and losses[-1] < 0.8 * losses[0], losses

    saved = load_file(str(save / "model.safetensors"))
    assert {key.split(".")[0] for key in saved} == {"encoder", "decoder"}
    encoder = tiny_volume_encoder(checkpoint_path=str(save / "model.safetensors"), checkpoint_prefix="encoder.")
    for key, value in encoder.model.state_dict().items():
        torch.testing.assert_close(value, saved[f"encoder.{key}"])

    # the path of experiments/dia_llama_phantom.yaml: the encoder named by the checkpoint file
    volume = "--model.init_args.volume_encoder.init_args"
    main(["fit", *CT_EXPERIMENT, *CT_TINY, f"{volume}.checkpoint_path={save / 'model.safetensors'}"])


def test_volume_mae_encodes_the_visible_quarter_and_scores_the_hidden_patches() -> None:
    torch.manual_seed(0)
    mae = VolumeMAE(tiny_volume_encoder(), mask_ratio=0.75)
    seen: list[tuple[int, ...]] = []
    mae.volume_encoder.model.transformer.register_forward_hook(lambda _m, args, _o: seen.append(args[0].shape))
    volumes = torch.rand(3, 1, 8, 32, 32)
    loss = mae(volumes)
    assert seen == [(3, 2, 24)]  # M = 2 * 2 * 2 = 8 patches, 2 of them visible per volume
    loss.backward()
    assert mae.volume_encoder.model.to_patch_embedding[2].weight.grad.abs().sum() > 0
    # a volume tiled from one patch, and a decoder that predicts that patch everywhere: nothing to reconstruct
    tiled = torch.rand(1, 1, 4, 16, 16).repeat(1, 1, 2, 2, 2)  # [B, C, D, H, W], every 16 x 16 x 4 patch the same
    with torch.no_grad():
        mae.decoder_pred.weight.zero_()
        mae.decoder_pred.bias.copy_(mae.volume_encoder.model.patchify(mae.volume_encoder.prepare(tiled))[0, 0])
        assert mae(tiled).item() == pytest.approx(0.0, abs=1e-12)
        assert mae(torch.rand(1, 1, 8, 32, 32)).item() > 0.01


def test_volume_pretraining_refuses_a_monai_encoder() -> None:
    with pytest.raises(RadioLMError, match="backend: radfm"):
        VolumeMAE(VolumeEncoder(backend="monai", img_size=(32, 32, 8), patch_size=(16, 16, 4), in_channels=1,
                                hidden_size=24, num_layers=1, num_heads=2, mlp_dim=32))  # fmt: skip


def test_a_missing_volume_checkpoint_names_the_command_that_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingAssetError, match="make phantom-mae3d"):
        tiny_volume_encoder(checkpoint_path="data/phantom-vit3d-mae/model.safetensors", checkpoint_prefix="encoder.")
