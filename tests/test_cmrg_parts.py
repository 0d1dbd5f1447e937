"""CMRG-LLM's parts and losses (``../shared/papers/cmrg_llm_continual.md`` §2.2, §2.3) on hand-made tensors: L^SC
(Eq. 2) with and without the previous class centres, L^TP, the class centres, the 2D-3D adapter, the query
aggregator and the per-domain prompt set."""

from __future__ import annotations

import math

import pytest
import torch

from radiolm.parts.class_centres import ClassCentres
from radiolm.parts.domain_prompts import DomainPromptSet, QueryAggregator
from radiolm.parts.losses import centre_triplet_loss, multilabel_supcon_loss
from radiolm.parts.mappers import Adapter2D3D

E = math.e
# three samples in 2-D, raw inner products, tau = 1: <h0,h1> = 0, <h0,h2> = 1, <h1,h2> = 1
H = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
LABELS = torch.tensor([[1, 0], [0, 1], [1, 1]])  # sample 2 has both labels: positive of 0 and of 1; 0 and 1 are not


def test_supcon_eq2_by_hand() -> None:
    """S_0 = {2}, S_1 = {2}, S_2 = {0, 1}.

    Anchor 0: -log(e^1 / (e^0 + e^1)) = log(1 + e) - 1; anchor 1 the same; anchor 2: both positives have
    log(e / 2e), so log 2. L = mean over the three anchors.
    """
    loss = multilabel_supcon_loss(H, LABELS, temperature=1.0, normalize=False)
    expected = (2 * (math.log(1 + E) - 1) + math.log(2)) / 3
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.43989, abs=1e-5)
    # the sign: pulling the positives together lowers the loss
    closer = multilabel_supcon_loss(torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]]), LABELS, 1.0, normalize=False)
    assert closer < loss
    # temperature divides every inner product: tau = 0.25 is tau = 1 on 2 h (inner products x 4)
    quarter = multilabel_supcon_loss(H, LABELS, 0.25, normalize=False)
    torch.testing.assert_close(quarter, multilabel_supcon_loss(2 * H, LABELS, 1.0, normalize=False))


def test_supcon_normalizes_by_default() -> None:
    torch.testing.assert_close(multilabel_supcon_loss(3 * H, LABELS), multilabel_supcon_loss(H, LABELS))


def test_supcon_with_centres_by_hand() -> None:
    """Centre of class 0 at (2, 0); class 1 has none (masked). Positives S' add the centre of each own label.

    With the centres in the denominator (L = log(1 + e + e^2)):
      anchor 0: S' = {2, c_0}, logits (a1, a2, c_0) = (0, 1, 2): -((1 - L) + (2 - L)) / 2 = L - 1.5;
      anchor 1: S' = {2} (class 1 has no centre), logits (0, 1, <h1, c_0> = 0): log(2 + e) - 1;
      anchor 2: S' = {0, 1, c_0}, logits (1, 1, 2): M - 4/3 with M = log(2e + e^2).
    Without (the denominator of Eq. 2): anchor 0 is log(1 + e) - 1.5, anchor 1 log(1 + e) - 1, anchor 2 log 2e - 4/3.
    """
    centres = torch.tensor([[2.0, 0.0], [5.0, 5.0]])
    mask = torch.tensor([True, False])
    loss = multilabel_supcon_loss(H, LABELS, 1.0, centres, mask, normalize=False)
    big = math.log(1 + E + E**2)
    expected = ((big - 1.5) + (math.log(2 + E) - 1) + (math.log(2 * E + E**2) - 4 / 3)) / 3
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    batch_only = multilabel_supcon_loss(H, LABELS, 1.0, centres, mask, centres_in_denominator=False, normalize=False)
    expected = ((math.log(1 + E) - 1.5) + (math.log(1 + E) - 1) + (math.log(2 * E) - 4 / 3)) / 3
    assert batch_only.item() == pytest.approx(expected, abs=1e-6)


def test_supcon_without_positives_is_zero_with_a_gradient() -> None:
    h = torch.randn(2, 4, requires_grad=True)
    loss = multilabel_supcon_loss(h, torch.tensor([[1, 0], [0, 1]]))
    assert loss.item() == 0.0
    loss.backward()
    assert h.grad is not None


def test_supcon_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="centres must be"):
        multilabel_supcon_loss(H, LABELS, centres=torch.zeros(3, 2))


def test_triplet_by_hand() -> None:
    """Sample 0 sits on its related centre, away from "no finding": max(0 - 1 + 0.5, 0) = 0.
    Sample 1 = (0, 2) on the "no finding" side: max(2 - 0 + 0.5, 0) = 2.5. Mean 1.25 (unit vectors: 1.5 / 2)."""
    features = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    related = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    no_finding = torch.tensor([0.0, 1.0])
    assert centre_triplet_loss(features, related, no_finding, 0.5, normalize=False).item() == pytest.approx(1.25)
    assert centre_triplet_loss(features, related, no_finding, 0.5).item() == pytest.approx(0.75)
    # pulling toward the related centre lowers it (the sign printed in §2.3 would raise it)
    moved = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert centre_triplet_loss(moved, related, no_finding, 0.5, normalize=False).item() == pytest.approx(0.25)
    assert centre_triplet_loss(features[:0], related[:0], no_finding).item() == 0.0


def test_class_centres_single_label_rule_and_ema() -> None:
    centres = ClassCentres(dim=2, classes=["A", "Opacity", "B", "No Finding"], ignored=["Opacity"], momentum=0.5)
    positive = torch.tensor(
        [
            [1, 1, 0, 0],  # A + the ignored Opacity: single-label A
            [1, 0, 1, 0],  # A + B: two labels, no centre
            [0, 1, 0, 0],  # only the ignored Opacity: counts for Opacity
            [0, 0, 0, 1],  # No Finding
            [0, 0, 0, 0],  # nothing
        ]
    ).bool()
    assert centres.single_label(positive).tolist() == [0, -1, 1, 3, -1]
    features = torch.tensor([[1.0, 0.0], [9.0, 9.0], [0.0, 4.0], [2.0, 2.0], [7.0, 7.0]])
    centres.update(features, positive)
    assert centres.counts.tolist() == [1, 1, 0, 1]
    torch.testing.assert_close(centres.centres[0], torch.tensor([1.0, 0.0]))  # the first update sets the centre
    centres.update(torch.tensor([[3.0, 2.0]]), torch.tensor([[1, 0, 0, 0]]).bool())
    torch.testing.assert_close(centres.centres[0], torch.tensor([2.0, 1.0]))  # 0.5 * (1, 0) + 0.5 * (3, 2)
    assert not centres.valid.any()  # nothing is "previous" before a snapshot
    centres.snapshot()
    assert centres.valid.tolist() == [True, True, False, True]
    assert centres.no_finding() == 3
    with pytest.raises(ValueError, match="not among the classes"):
        ClassCentres(2, classes=["A"], ignored=["B"])


def test_class_centres_are_saved() -> None:
    keys = set(ClassCentres(4).state_dict())
    assert keys == {"centres", "counts", "previous", "previous_counts"}


def test_adapter_2d3d_moves_depth_to_channels() -> None:
    """Kernel 1, no activation: conv 1 sums the 2 slices, conv 2 scales the sum by 1, 2, 3 for the 3 channels."""
    adapter = Adapter2D3D(depth=2, hidden=1, kernel_size=1, activation="none")
    with torch.no_grad():
        first, second = adapter.layers[0], adapter.layers[2]
        first.weight.fill_(1.0)
        first.bias.zero_()
        second.weight.copy_(torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1, 1))
        second.bias.zero_()
    volume = torch.arange(8.0).view(1, 1, 2, 2, 2)  # slices [[0,1],[2,3]] and [[4,5],[6,7]]
    out = adapter(volume)
    assert tuple(out.shape) == (1, 3, 2, 2)
    torch.testing.assert_close(out[0, 0], torch.tensor([[4.0, 6.0], [8.0, 10.0]]))
    torch.testing.assert_close(out[0, 2], 3 * out[0, 0])
    assert tuple(Adapter2D3D(depth=8, hidden=4)(torch.randn(2, 1, 8, 16, 16)).shape) == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="set the adapter's depth"):
        adapter(torch.randn(1, 1, 3, 2, 2))


def test_query_aggregator_with_one_token_returns_its_value() -> None:
    """Softmax over one key is 1: every query gets out_proj(v_proj(token))."""
    torch.manual_seed(0)
    m = QueryAggregator(dim=8, heads=2)
    token = torch.randn(1, 1, 8)
    out = m(torch.randn(5, 8), token)
    assert tuple(out.shape) == (1, 5, 8)
    attn = m.attention
    value = token[0, 0] @ attn.in_proj_weight[16:].T + attn.in_proj_bias[16:]
    expected = value @ attn.out_proj.weight.T + attn.out_proj.bias
    torch.testing.assert_close(out[0], expected.expand(5, -1))
    with pytest.raises(ValueError, match="must divide"):
        QueryAggregator(dim=10, heads=3)


def test_domain_prompt_set_shares_p_and_averages_views_after_p() -> None:
    torch.manual_seed(0)
    prompts = DomainPromptSet(
        ["XE1", "XE2", "XC"], encoder_dim=8, llm_dim=6, num_queries=3, share_projection={"XE2": "XE1"}
    )
    assert prompts["XE2"].projection is None and prompts.projection("XE2") is prompts.projection("XE1")
    assert prompts.projection("XC") is not prompts.projection("XE1")
    m = QueryAggregator(8, 2)
    tokens = torch.randn(3, 4, 8)  # study 0: two views, study 1: one view
    encoded = torch.tensor([[True, True], [True, False]])
    out = prompts.visual_prompt("XE2", m, tokens, encoded)
    assert tuple(out.shape) == (2, 3, 6)
    per_view = prompts.projection("XE1")(m(prompts["XE2"].queries, tokens))
    expected = prompts["XE2"].norm(torch.stack([per_view[:2].mean(0), per_view[2]]))
    torch.testing.assert_close(out, expected)
    assert tuple(prompts.domain_token("XC", 2, torch.float32).shape) == (2, 1, 6)
    with pytest.raises(ValueError, match="earlier"):
        DomainPromptSet(["A", "B"], 8, 6, share_projection={"A": "B"})
    with pytest.raises(KeyError, match="unknown domain"):
        prompts["CTC"]
