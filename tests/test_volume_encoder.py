"""The 3D ViT of Dia-LLaMA / RadFM (radiolm/parts/volume_encoder.py) and the perceiver (parts/mappers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from radiolm.errors import MissingAssetError, RadioLMError
from radiolm.parts.mappers import PerceiverResampler
from radiolm.parts.volume_encoder import VolumeEncoder

TINY = {"img_size": (32, 32, 8), "patch_size": (16, 16, 4), "hidden_size": 24, "num_layers": 1, "mlp_dim": 32}


def test_radfm_shape_gives_1024_tokens_of_768() -> None:
    """Dia-LLaMA §3.2: 256 x 256 x 64 in patches of 32 x 32 x 4 -> 8 * 8 * 16 = 1024 tokens, 12 layers of 768."""
    with torch.device("meta"):
        encoder = VolumeEncoder()
        tokens = encoder(torch.empty(2, 1, 64, 256, 256))  # [B, C, D, H, W]
    assert encoder.num_patches == 1024 and encoder.grid == (8, 8, 16)
    assert tuple(tokens.shape) == (2, 1024, 768)
    assert len(encoder.model.transformer.layers) == 12
    # RadFM's ViT3D (3 channels, 8 heads x 64, MLP 2048), position tables of the grid: patch embedding
    # 2*12288 + 12288*768 + 768 + 2*768, positions (8 + 8 + 16) * 256, 12 blocks of 4,725,248
    assert sum(p.numel() for p in encoder.parameters()) == 66_175_232


def test_monai_backend_has_the_same_token_grid() -> None:
    with torch.device("meta"):
        encoder = VolumeEncoder(backend="monai", num_heads=12, mlp_dim=3072, in_channels=1)
        tokens = encoder(torch.empty(1, 1, 64, 256, 256))
    assert tuple(tokens.shape) == (1, 1024, 768)


def test_perceiver_gives_32_tokens_of_llm_width() -> None:
    """Eq. 4: 1024 patch features of 768 -> N = 32 visual embeddings of the LLM's width."""
    with torch.device("meta"):
        perceiver = PerceiverResampler(768, 4096)
        out = perceiver(torch.empty(2, 1024, 768))
    assert tuple(out.shape) == (2, 32, 4096)


def test_tokens_follow_the_depth_axis_of_report_batch_volumes() -> None:
    """A volume [B, C, D, H, W] is read as (H, W, D): only the depth slab of one patch changes its token."""
    torch.manual_seed(0)
    encoder = VolumeEncoder(**TINY, num_heads=2, dim_head=8, in_channels=1).eval()
    encoder.model.transformer.layers = torch.nn.ModuleList()  # patch embedding + position only
    volume = torch.randn(1, 1, 8, 32, 32)
    changed = volume.clone()
    changed[0, 0, 4:8, 0:16, 16:32] += 1.0  # depth slab 1, row patch 0, column patch 1
    diff = (encoder(changed) - encoder(volume)).abs().sum(-1)[0]  # [M] in (h, w, d) order
    assert diff.nonzero().flatten().tolist() == [0 * 4 + 1 * 2 + 1]


def test_grey_volume_is_repeated_and_resized() -> None:
    encoder = VolumeEncoder(**TINY, num_heads=2, dim_head=8, in_channels=3)
    assert tuple(encoder(torch.randn(2, 1, 5, 20, 20)).shape) == (2, 8, 24)
    strict = VolumeEncoder(**TINY, num_heads=2, dim_head=8, resize=False)
    with pytest.raises(RadioLMError, match="resize"):
        strict(torch.randn(1, 1, 5, 20, 20))


def test_radfm_weights_load_from_a_local_file(tmp_path: Path) -> None:
    source = VolumeEncoder(**TINY, num_heads=2, dim_head=8)
    state = {f"embedding_layer.vision_encoder.{k}": v for k, v in source.model.state_dict().items()}
    torch.save(state, tmp_path / "pytorch_model.bin")
    loaded = VolumeEncoder(**TINY, num_heads=2, dim_head=8, checkpoint_path=str(tmp_path / "pytorch_model.bin"))
    x = torch.randn(1, 3, 8, 32, 32)
    assert torch.equal(source.eval()(x), loaded.eval()(x))
    with pytest.raises(MissingAssetError, match="checkpoint_path"):
        VolumeEncoder(**TINY, num_heads=2, dim_head=8, checkpoint_path=str(tmp_path / "missing.bin"))
    with pytest.raises(RadioLMError, match="checkpoint_prefix"):
        VolumeEncoder(
            **TINY,
            num_heads=2,
            dim_head=8,
            checkpoint_path=str(tmp_path / "pytorch_model.bin"),
            checkpoint_prefix="vision.",
        )
