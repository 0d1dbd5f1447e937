"""RadFM's perceiver + fc load into PerceiverResampler (Dia-LLaMA's official my_embedding_layer.py loads them).

The checkpoint is written here with RadFM's key names and tiny shapes; the reference output is computed straight
from those tensors with the Flamingo resampler's equations as RadFM's ``helpers.py`` writes them (q scaled by
dh^-0.5, ``to_kv`` chunked into k then v, latents attend to [media; latents]), then ``fc``.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor
from torch.nn import functional as F

from radiolm.benchmarks.random_weights import randomize
from radiolm.errors import MissingAssetError, RadioLMError
from radiolm.parts import PerceiverResampler

C, D, N, DEPTH, HEADS, DH, FF = 8, 12, 3, 2, 2, 4, 2  # tiny: RadFM's are 768, 5120, 32, 6, 8, 64, 4


def radfm_state(llm_width: int = D, seed: int = 0) -> dict[str, Tensor]:
    """A RadFM-style checkpoint: vision encoder keys (ignored here), perceiver and fc, random values."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g) * 0.5

    p = "embedding_layer.perceiver."
    state = {"embedding_layer.vision_encoder.to_patch_embedding.1.weight": r(C), p + "latents": r(N, C)}
    for i in range(DEPTH):
        a, f = f"{p}layers.{i}.0.", f"{p}layers.{i}.1."
        state |= {a + "norm_media.weight": 1 + r(C), a + "norm_media.bias": r(C)}
        state |= {a + "norm_latents.weight": 1 + r(C), a + "norm_latents.bias": r(C)}
        state |= {a + "to_q.weight": r(HEADS * DH, C), a + "to_kv.weight": r(2 * HEADS * DH, C)}
        state |= {a + "to_out.weight": r(C, HEADS * DH)}
        state |= {f + "0.weight": 1 + r(C), f + "0.bias": r(C), f + "1.weight": r(FF * C, C)}
        state |= {f + "3.weight": r(C, FF * C)}
    state |= {p + "norm.weight": 1 + r(C), p + "norm.bias": r(C)}
    state |= {"embedding_layer.fc.weight": r(llm_width, C), "embedding_layer.fc.bias": r(llm_width)}
    state["lang_model.model.embed_tokens.weight"] = r(5, llm_width)
    return state


def reference(s: dict[str, Tensor], media: Tensor) -> Tensor:
    """RadFM's resampler + fc from its equations over the raw checkpoint tensors: ``[B, M, C] -> [B, N, D]``."""
    p = "embedding_layer.perceiver."

    def ln(x: Tensor, k: str) -> Tensor:
        return F.layer_norm(x, (C,), s[k + ".weight"], s[k + ".bias"])

    def heads(x: Tensor) -> Tensor:  # "b n (h d) -> b h n d"
        return x.view(x.shape[0], x.shape[1], HEADS, DH).transpose(1, 2)

    lat = s[p + "latents"].expand(media.shape[0], -1, -1)
    for i in range(DEPTH):
        a, f = f"{p}layers.{i}.0.", f"{p}layers.{i}.1."
        x, l_ = ln(media, a + "norm_media"), ln(lat, a + "norm_latents")
        q = heads(l_ @ s[a + "to_q.weight"].T) * DH**-0.5
        k, v = (torch.cat([x, l_], dim=1) @ s[a + "to_kv.weight"].T).chunk(2, dim=-1)
        attn = torch.softmax(q @ heads(k).transpose(-1, -2), dim=-1)
        out = (attn @ heads(v)).transpose(1, 2).reshape(lat.shape[0], N, HEADS * DH)
        lat = out @ s[a + "to_out.weight"].T + lat
        h = F.gelu(ln(lat, f + "0") @ s[f + "1.weight"].T) @ s[f + "3.weight"].T
        lat = h + lat
    lat = ln(lat, p + "norm")
    return lat @ s["embedding_layer.fc.weight"].T + s["embedding_layer.fc.bias"]


def build(path: object = None, out_dim: int = D, **kwargs: object) -> PerceiverResampler:
    return PerceiverResampler(
        C, out_dim, num_latents=N, depth=DEPTH, heads=HEADS, dim_head=DH, ff_mult=FF,
        checkpoint_path=None if path is None else str(path), **kwargs,
    )  # fmt: skip


@pytest.mark.parametrize("suffix", [".bin", ".safetensors"])
def test_loaded_perceiver_matches_radfm_reference(tmp_path, suffix):
    state = radfm_state()
    path = tmp_path / f"pytorch_model{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    media = torch.randn(2, 7, C, generator=torch.Generator().manual_seed(1))
    expected = reference(state, media)
    loaded = build(path).eval()
    torch.testing.assert_close(loaded(media), expected, rtol=1e-5, atol=1e-5)
    # and a random one does not give it (the test would catch a load that did nothing)
    assert not torch.allclose(build().eval()(media), expected, atol=1e-2)


def test_fc_width_mismatch_refuses_by_default(tmp_path):
    torch.save(radfm_state(llm_width=D + 4), tmp_path / "radfm.bin")
    with pytest.raises(RadioLMError, match=r"embedding_layer\.fc\.weight maps 8 -> 16.*12 wide.*fc_mismatch: skip"):
        build(tmp_path / "radfm.bin")


def test_fc_width_mismatch_skip_loads_perceiver_keeps_random_proj(tmp_path):
    state = radfm_state(llm_width=D + 4)
    torch.save(state, tmp_path / "radfm.bin")
    torch.manual_seed(3)
    random_proj = build().proj.weight.detach().clone()
    torch.manual_seed(3)
    with pytest.warns(UserWarning, match=r"8 -> 16.*12 wide.*proj.*random"):
        loaded = build(tmp_path / "radfm.bin", fc_mismatch="skip")
    torch.testing.assert_close(loaded.proj.weight.detach(), random_proj)
    torch.testing.assert_close(loaded.latents.detach(), state["embedding_layer.perceiver.latents"])
    torch.testing.assert_close(
        loaded.layers[1][0].to_kv.weight.detach(), state["embedding_layer.perceiver.layers.1.0.to_kv.weight"]
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("embedding_layer.perceiver.layers.1.0.to_q.weight"), r"missing \[.*layers\.1\.0\.to_q"),
        (
            lambda s: s.__setitem__("embedding_layer.perceiver.frame_embs", torch.zeros(4, C)),
            r"unexpected \[.*perceiver\.frame_embs",
        ),
        (
            lambda s: s.__setitem__("embedding_layer.perceiver.latents", torch.zeros(N + 1, C)),
            r"perceiver\.latents: shape \(4, 8\) in the file, \(3, 8\) in the model.*num_latents",
        ),
        (lambda s: s.pop("embedding_layer.fc.bias"), r"missing \['embedding_layer\.fc\.bias'\]"),
        (
            lambda s: s.__setitem__("embedding_layer.fc.weight", torch.zeros(D, C + 1)),
            r"fc\.weight reads width 9, the perceiver's width is 8",
        ),
    ],
    ids=["missing", "unexpected", "shape", "fc-missing", "fc-in-width"],
)
def test_bad_checkpoint_names_the_key(tmp_path, edit, message):
    state = radfm_state()
    edit(state)
    torch.save(state, tmp_path / "radfm.bin")
    with pytest.raises(RadioLMError, match=message) as err:
        build(tmp_path / "radfm.bin")
    assert str(tmp_path / "radfm.bin") in str(err.value)


def test_wrong_prefix_and_missing_file(tmp_path):
    torch.save(radfm_state(), tmp_path / "radfm.bin")
    with pytest.raises(RadioLMError, match=r"no key starts with 'model\.perceiver\.'.*checkpoint_prefix"):
        build(tmp_path / "radfm.bin", checkpoint_prefix="model.")
    with pytest.raises(MissingAssetError, match="checkpoint_path"):
        build(tmp_path / "absent.bin")


def test_random_weights_benchmark_drops_the_perceiver_checkpoint():
    from jsonargparse import Namespace

    mapper = Namespace(class_path="radiolm.parts.PerceiverResampler", init_args=Namespace(checkpoint_path="x.bin"))
    config = Namespace(model=Namespace(class_path="m", init_args=Namespace(visual_mapper=mapper)))
    notes = randomize(config)
    assert mapper.init_args.checkpoint_path is None and any("perceiver" in n for n in notes)
