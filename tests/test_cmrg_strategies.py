"""CMRG-LLM's Table 1 baselines and Table 2 switches (``../shared/papers/cmrg_llm_continual.md`` §3.2) on tiny
models: what each strategy trains, keeps and adds to the loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from radiolm.batch import ReportBatch
from radiolm.continual.strategies import CMRG, DER, EWC, STRATEGIES, PerTaskFT, ProgPrompt, Replay, resolve_strategy
from radiolm.errors import RadioLMError
from radiolm.methods.cmrg_llm import CMRGLLM

from .test_cmrg_llm import make_batch, make_model, train_steps


def outside_llm(model: CMRGLLM) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if not n.startswith("language_model.")}


def trained(model: CMRGLLM) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def loader(seed: int = 1) -> list[ReportBatch]:
    """Two batches of four studies with distinct ids (a task's training loader)."""
    batches = [make_batch(seed), make_batch(seed + 1)]
    for k, batch in enumerate(batches):
        batch.ids = [f"t{seed}-b{k}-s{i}" for i in range(len(batch))]
    return batches


def test_names_resolve_and_a_bad_name_says_what_to_use() -> None:
    assert sorted(STRATEGIES) == ["cmrg", "der", "ewc", "per_task_ft", "progprompt", "replay", "seqft"]
    assert isinstance(resolve_strategy("replay"), Replay)
    ewc = EWC(lam=7.0)
    assert resolve_strategy(ewc) is ewc
    with pytest.raises(RadioLMError, match=r"unknown strategy 'lwf'.*class_path"):
        resolve_strategy("lwf")
    with pytest.raises(RadioLMError, match="ratio must be > 0"):
        Replay(ratio=0)


def test_replay_fills_the_buffer_evenly_and_mixes_it_at_the_ratio(
    tiny_llm: Path, tiny_swin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    strategy = Replay(buffer_size=4, ratio=0.5, seed=3)
    model = make_model(tiny_llm, tiny_swin, strategy=strategy, contrastive=False)
    model.end_stage(0, loader(1))
    assert [b.ids[0] for b in strategy.buffer.tasks["XE1"]] != []
    assert len(strategy.buffer.tasks["XE1"]) == 4
    again = Replay(buffer_size=4, ratio=0.5, seed=3).buffer
    again.fill("XE1", 0, loader(1))  # a resumed run rebuilds the same buffer
    assert [b.ids for b in again.tasks["XE1"]] == [b.ids for b in strategy.buffer.tasks["XE1"]]
    model.set_stage(1)
    model.end_stage(1, loader(5))
    assert {k: len(v) for k, v in strategy.buffer.tasks.items()} == {"XE1": 2, "XE2": 2}  # 4 split over 2 tasks
    model.set_stage(2)  # CTC: buffered X-ray studies keep the X-ray path
    seen: list[tuple[str, list[str]]] = []
    original = CMRGLLM.lm_loss

    def spy(self: CMRGLLM, batch: ReportBatch) -> torch.Tensor:
        seen.append((self.active_domain, list(batch.ids)))
        return original(self, batch)

    monkeypatch.setattr(CMRGLLM, "lm_loss", spy)
    model.train()
    batch = make_batch(9)  # B = 4 new studies -> round(0.5 * 4) = 2 buffered ones
    losses = model.compute_losses(batch)
    buffered = {b.ids[0]: task for task, studies in strategy.buffer.tasks.items() for b in studies}
    assert sum(len(ids) for _, ids in seen) == 2
    assert all(buffered[i] == domain for domain, ids in seen for i in ids)  # each with its own domain
    assert model.active_domain == "CTC"
    torch.testing.assert_close(losses["loss"], (4 * losses["lm"] + 2 * losses["replay_lm"]) / 6)
    model.eval()
    assert "replay_lm" not in model.compute_losses(batch)  # only training steps replay


def test_replay_buffer_too_small_for_the_tasks_is_an_error() -> None:
    """Fewer places than tasks would empty every share: Replay would silently be SeqFT."""
    buffer = Replay(buffer_size=1, ratio=0.5).buffer
    buffer.fill("XE1", 0, loader(1))
    with pytest.raises(RadioLMError, match="buffer_size 1 cannot hold one study of each of 2 tasks"):
        buffer.fill("XE2", 1, loader(5))


def test_a_batch_splits_into_studies_and_moves_whole() -> None:
    batch = make_batch(9)
    one = batch.study(2)
    assert one.ids == [batch.ids[2]] and one.reports == [batch.reports[2]] and len(one) == 1
    torch.testing.assert_close(one.images, batch.images[2:3])
    assert one.images.data_ptr() != batch.images.data_ptr()  # cloned: a buffered study does not hold the batch
    moved = batch.map_tensors(lambda x: x.double() if x.is_floating_point() else x)
    assert moved.images.dtype == torch.float64 and moved.labels.dtype == batch.labels.dtype and moved.ids == batch.ids


def test_ewc_penalty_is_zero_at_the_anchor_and_its_fisher_is_the_squared_gradient(
    tiny_llm: Path, tiny_swin: Path
) -> None:
    strategy = EWC(lam=2.0, fisher_batches=1)
    model = make_model(tiny_llm, tiny_swin, strategy=strategy, contrastive=False)
    model.eval()
    batch = loader(1)[0]
    states, targets, _ = model.report_states(batch)
    head = model.language_model.base.get_output_embeddings()
    torch.nn.functional.cross_entropy(head(states).float(), targets).backward()
    expected = {n: p.grad.detach().pow(2) for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model.end_stage(0, [batch])
    (fisher,) = strategy.fishers
    assert set(fisher) == {n for n, p in model.named_parameters() if p.requires_grad} >= set(expected)
    assert any(v.sum() > 0 for v in fisher.values())
    for name, value in fisher.items():  # A and P_h get no gradient from an X-ray L^LM: zero
        torch.testing.assert_close(value, expected.get(name, torch.zeros_like(value)))
    assert strategy.penalty(model).item() == 0.0  # at the anchor
    model.set_stage(1)
    model.train()
    losses = model.compute_losses(batch)
    torch.testing.assert_close(losses["ewc"], torch.tensor(0.0))
    train_steps(model, make_batch(4), steps=2)
    away = strategy.penalty(model)
    assert away.item() > 0
    by_hand = sum((fisher[n] * (p.detach() - strategy.anchors[0][n]).pow(2)).sum() for n, p in model.named_parameters()
                  if n in fisher)  # fmt: skip
    torch.testing.assert_close(away, by_hand)
    losses = model.compute_losses(batch)
    torch.testing.assert_close(losses["loss"], losses["lm"] + 1.0 * losses["ewc"])  # lambda / 2 = 1


def test_der_stores_the_report_logits_and_replays_them(tiny_llm: Path, tiny_swin: Path) -> None:
    strategy = DER(buffer_size=2, ratio=0.5, alpha=0.5)
    model = make_model(tiny_llm, tiny_swin, strategy=strategy, contrastive=False)
    model.end_stage(0, loader(1))
    studies, outputs = strategy.buffer.tasks["XE1"], strategy.buffer.outputs["XE1"]
    assert len(studies) == len(outputs) == 2
    model.eval()
    head = model.language_model.base.get_output_embeddings()
    with torch.no_grad():
        for study, stored in zip(studies, outputs, strict=True):
            states, targets, _ = model.report_states(study)
            assert stored.shape == states.shape and len(targets) == stored.shape[0]  # one row per report token
            torch.testing.assert_close(head(stored), head(states))  # the logits over the report tokens
    model.set_stage(1)
    model.train()
    model.vision_encoder.eval()  # no drop-path noise: the same weights give the same logits
    batch = make_batch(3)
    losses = model.compute_losses(batch)
    torch.testing.assert_close(losses["der"], torch.tensor(0.0), atol=1e-6, rtol=0)
    train_steps(model, make_batch(4), steps=2)
    model.vision_encoder.eval()
    losses = model.compute_losses(batch)
    assert losses["der"].item() > 0
    torch.testing.assert_close(losses["loss"], losses["lm"] + 0.5 * losses["der"])


def test_progprompt_adds_a_token_per_task_and_keeps_the_old_ones_frozen(tiny_llm: Path, tiny_swin: Path) -> None:
    model = make_model(tiny_llm, tiny_swin, strategy=ProgPrompt())
    batch = make_batch()
    assert model.encode(batch).shape[1] == 1 + 4  # [f^t_1, q]
    train_steps(model, batch, steps=1)
    token_1 = model.prompts["XE1"].domain_token.detach().clone()
    model.set_stage(1)
    assert not model.prompts["XE1"].domain_token.requires_grad and model.prompts["XE2"].domain_token.requires_grad
    prefix = model.encode(batch)
    assert prefix.shape[1] == 2 + 4  # [f^t_2, f^t_1, q]: the new token first (ProgPrompt §3)
    torch.testing.assert_close(prefix[:, 1], token_1.expand(4, -1))
    train_steps(model, batch, steps=1)
    model.set_stage(2)
    train_steps(model, batch, steps=1)
    assert torch.equal(model.prompts["XE1"].domain_token, token_1)  # kept, unchanged
    assert model.encode(batch).shape[1] == 3 + 4
    model.use_domain("XE1")
    assert model.encode(batch).shape[1] == 1 + 4  # task 1 with its own chain
    first_only = make_model(tiny_llm, tiny_swin, strategy=ProgPrompt(train_shared="first"))
    first_only.set_stage(1)
    assert trained(first_only) == {"prompts.prompts.XE2.domain_token"}


def test_per_task_ft_starts_every_task_from_the_same_weights(tiny_llm: Path, tiny_swin: Path) -> None:
    model = make_model(tiny_llm, tiny_swin, strategy=PerTaskFT())
    initial = outside_llm(model)
    batch = make_batch()
    train_steps(model, batch, steps=1)
    model.end_stage(0, [])
    after_1 = outside_llm(model)
    assert any(not torch.equal(after_1[n], initial[n]) for n in initial)
    model.set_stage(1)
    assert all(torch.equal(v, initial[n]) for n, v in outside_llm(model).items())  # the pretrained start again
    assert {n for n in trained(model) if not n.startswith("language_model.")} == set(initial)  # all of it trains
    train_steps(model, batch, steps=1)
    model.end_stage(1, [])
    after_2 = outside_llm(model)
    model.use_domain("XE1")  # task 1 with its own cached weights
    assert all(torch.equal(v, after_1[n]) for n, v in outside_llm(model).items())
    model.use_domain("XE2")
    assert all(torch.equal(v, after_2[n]) for n, v in outside_llm(model).items())
    with pytest.raises(RadioLMError, match="'CTC' has not been trained"):
        model.use_domain("CTC")


@pytest.mark.parametrize(
    ("switch", "part"),
    [
        ("own_queries", "queries"),
        ("own_domain_token", "domain_token"),
        ("own_projection", "projection"),
    ],
)
def test_table_2_switches_share_the_first_domains_part_frozen(
    tiny_llm: Path, tiny_swin: Path, switch: str, part: str
) -> None:
    """Table 2 (§3.2): "freezing one of them": later domains use the first domain's q / f^t / P, frozen."""
    model = make_model(tiny_llm, tiny_swin, strategy=CMRG(**{switch: False}))
    full = make_model(tiny_llm, tiny_swin)
    for stage in (1, 2):
        model.set_stage(stage)
        full.set_stage(stage)
        name = model.names[stage]
        lost = trained(full) - trained(model)
        if part == "projection" and stage == 1:
            assert lost == set()  # XE2 shares XE1's P anyway (§2.3)
        else:
            assert lost and all(f"prompts.prompts.{name}.{part}" in n for n in lost), lost
        assert not any(n.startswith("prompts.prompts.XE1.") for n in trained(model))
    batch = make_batch()
    model.eval()
    with torch.no_grad():
        source = model.strategy.sources(model, "CTC")
        if part == "projection":
            assert model.prompts.projection("CTC") is model.prompts.projection("XE1")
        else:
            assert (source.queries if part == "queries" else source.tokens[0]) == "XE1"
            token = model.encode(batch)[:, 0]
            if part == "domain_token":
                torch.testing.assert_close(token, model.prompts["XE1"].domain_token.expand(4, -1))
