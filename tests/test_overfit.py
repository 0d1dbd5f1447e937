"""Overfit tests (issue 15): every method, and every switch of it, learns a fixed batch of studies.

Each case builds its method as the experiment does, by the real CLI (:func:`radiolm.benchmarks.experiment.build`
on ``experiments/<name>.yaml`` + the tiny overlay ``tests/conf/<name>.yaml`` + the switch as the tables / sweeps set
it), takes a fixed batch of :data:`STUDIES` training studies with distinct reports (the experiment's own DataModule,
its short impression section), trains it in-process with a plain loop of the experiment's optimizer (a high,
constant learning rate), and then checks that

* the report's negative log-likelihood is near zero (:data:`NEAR_ZERO`) and every other loss term has fallen to at
  most :data:`FALL` of its first value (a term whose gradient is cut does not fall: see
  :func:`test_a_cut_gradient_fails_the_overfit`);
* greedy generation reproduces the batch's reports: corpus BLEU-4 (the suite's :func:`~radiolm.metrics.nlg.
  compute_nlg`) at least :data:`MIN_BLEU4`;
* every part with trainable parameters has changed and no frozen parameter has (the two-stage encoder in stage 1,
  a frozen LLM, a frozen encoder).

The language model: a frozen (R2GenGPT, bidirectional) or LoRA (two-stage, Dia-LLaMA) random LLM cannot be steered
to any text (its output head gives near-uniform logits), so, as the real methods start from a pretrained LLM, each
data set's tiny Llama is first pretrained as a plain language model on the batch's reports, each after a random
number of random tokens (the prompt it will see is not known to it). It then knows the reports but not which one an
image has: the loss can only reach zero, and the generated reports only match, when the image reaches the LLM.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

import radiolm.methods.bidirectional as bidirectional_module
from radiolm.batch import ReportBatch
from radiolm.benchmarks.experiment import build
from radiolm.callbacks import EncoderUnfreeze
from radiolm.methods import CMRGLLM
from radiolm.metrics.nlg import compute_nlg
from radiolm.parts.prototype_memory import DiseasePrototypeMemory

from .conftest import CONF, REPO, make_tiny_llm, write_views

STUDIES = 4
"""Studies in the fixed batch (each with its own report)."""
NEAR_ZERO = 0.1
"""The report's mean negative log-likelihood per token after training (nats)."""
FALL = 0.5
"""Every other loss term ends at most at this fraction of its first value (unless a case says otherwise)."""
MIN_BLEU4 = 0.9
"""Corpus BLEU-4 of the greedy reports against the batch's reports."""

GREEDY = [
    "--model.init_args.decoding.num_beams=1",
    "--model.init_args.decoding.min_new_tokens=1",
    "--model.init_args.decoding.max_new_tokens=40",
    "--model.init_args.decoding.repetition_penalty=1.0",
    "--model.init_args.decoding.length_penalty=1.0",
    "--model.init_args.decoding.no_repeat_ngram_size=0",
]
"""Plain greedy decoding: the test is about learning, not about the papers' search settings (which, like
R2GenGPT's 40 minimum new tokens, would forbid a short report)."""

NO_T2V = "--model.init_args.text_encoder=null"
NO_REC = "--model.init_args.image_decoder=null"
DIA_BASELINE = [
    "--model.init_args.prompt_type=none",
    "--model.init_args.disease_attention=false",
    "--model.init_args.prototype_memory=false",
]


@dataclass(frozen=True)
class Case:
    """One method with one setting of its switches.

    Attributes:
        experiment: ``experiments/<experiment>.yaml`` (and its overlay in ``tests/conf``).
        args: The switch, as command-line overrides (as the experiment tables set it).
        data: Which data set the case reads (cases on the same data share the pretrained LLM).
        steps: Optimizer steps.
        lr: Constant learning rate of the experiment's optimizer.
        stage: Two-stage fine-tuning's stage (1: encoder frozen by ``EncoderUnfreeze``, 2: trained); ``None``.
        fall: Every loss term but the report's ends at most at this fraction of its first value.
        task: A continual method's stage (0-based): the model trains what that stage trains (``set_stage``) on that
            task's studies, after the stages before it on theirs (as the sequence runs); ``None``: not continual.
        unused: Trainable parts that no loss of this switch reaches (they may stay as they are).
    """

    experiment: str
    args: tuple[str, ...] = ()
    data: str = ""
    steps: int = 60
    lr: float = 3e-2
    stage: int | None = None
    fall: float = FALL
    task: int | None = None
    unused: tuple[str, ...] = ()


IMPRESSION = ("--data.init_args.report_key=impression",)  # IU-Xray layout: the phantom's short section
SMALL_TVC = "--model.init_args.lambda_tvc=0.001"
"""lambda_1 of Eq. 3 at which V2T still overfits (the finding of issue 15 on the bidirectional method, README):
L_TVC (Eq. 2, summed over the LLM width) starts at about 100x L_VTC here and pulls each E_v towards the LLM's
states for its report; at the experiments' lambda_1 = 1 V2T's loss rises (1.63 -> 2.08 in 60 steps) and every
report is the same, at 1/64 (a mean over the width) V2T reaches BLEU-4 0.55 in 120 steps (0.31 with Rec)."""


def two_stage(stage: int) -> Case:
    # the tiny ViT-MAE of the overlay (the experiment's encoder kind): at 1e-2 stage 2 wrote one report for all
    # four studies in 100 and 200 steps (stage 1 passed), at 3e-2 both stages did
    return Case("two_stage_phantom", (), "cxr-two-stage", steps=200, lr=5e-3, stage=stage)


def bidirectional(experiment: str, *args: str, steps: int = 60, fall: float = FALL) -> Case:
    # 1e-2: at 3e-2 the ViT-MAE, now with its sin-cos position embeddings, upset V2T + CLIP and L_TVC
    return Case(experiment, args, "cxr-bidirectional", steps, lr=1e-2, fall=fall)


def dia_llama(*args: str) -> Case:
    return Case("dia_llama_phantom", args, "ct", steps=100, lr=3e-3)  # 1e-2 upsets the 3D ViT trained from scratch


def cmrg(task: int, *args: str, data: str, steps: int = 80, lr: float = 1e-2, unused: tuple[str, ...] = ()) -> Case:
    """CMRG-LLM's stage ``task`` (0-based) of the phantom sequence XE1 -> XE2 -> XC -> CTC, after the stages before
    it, each on its task's batch, as the sequence runs them (a new domain's prompt starts as the last one's,
    ``prompt_init: previous``): stage 1 trains E, M, q, P, LN, f^t; stage 2 q, LN, f^t (P shared with XE1, frozen);
    stages 3-4 q, P, LN, f^t, and the 2D-3D adapter on CT (§2.3); P_h trains in stage 1 only. L^SC (Eq. 2,
    supervised contrastive) cannot reach zero: an anchor with |P| positives scores at least log |P| (stage 1's
    batch: 1.03 -> 0.693 = ln 2, its floor), and from stage 2 the earlier class centres join its positives and
    denominators; hence ``fall`` 0.75, then 0.9."""
    fall = 0.75 if task == 0 else 0.9
    return Case("cmrg_llm_phantom", args, data, steps, lr=lr, task=task, fall=fall, unused=unused)


CASES = {
    "r2gengpt-shallow-frozen": Case("r2gengpt_shallow_iu_xray", IMPRESSION, "iu_xray"),
    "r2gengpt-delta-lora": Case("r2gengpt_delta_iu_xray", IMPRESSION, "iu_xray"),
    "r2gengpt-deep-full": Case("r2gengpt_deep_iu_xray", IMPRESSION, "iu_xray", lr=1e-2),  # 3e-2 upsets a full Swin
    "two-stage-stage1": two_stage(1),
    "two-stage-stage2": two_stage(2),
    "bidirectional-v2t": bidirectional("bidirectional_phantom_v2t"),
    "bidirectional-v2t-clip": bidirectional("bidirectional_phantom_v2t", "--model.init_args.clip_dim=16"),
    "bidirectional-v2t-rec": bidirectional("bidirectional_phantom", NO_T2V),
    "bidirectional-v2t-t2v": bidirectional("bidirectional_phantom", NO_REC, SMALL_TVC, steps=80, fall=0.8),
    "bidirectional-v2t-t2v-rec": bidirectional("bidirectional_phantom", SMALL_TVC, steps=80, fall=0.8),
    "dia-llama-baseline": dia_llama(*DIA_BASELINE),
    "dia-llama-text-dpm-daa": dia_llama(),
    "dia-llama-text-no-daa": dia_llama("--model.init_args.disease_attention=false"),
    "dia-llama-text-no-dpm": dia_llama("--model.init_args.prototype_memory=false"),
    "dia-llama-token": dia_llama("--model.init_args.prompt_type=token"),
    "dia-llama-feature": dia_llama("--model.init_args.prompt_type=feature"),
    "cmrg-stage1-xe1": cmrg(0, data="cmrg-xe1"),
    "cmrg-stage2-xe2": cmrg(1, data="cmrg-xe2", steps=120),
    "cmrg-stage3-xc": cmrg(2, data="cmrg-xc", steps=120),
    "cmrg-stage4-ctc": cmrg(3, data="cmrg-ctc", steps=320),
    # P_h trains in every stage (train_hidden_projection: every; §2.3 leaves it open): slow tier, see SLOW
    "cmrg-stage4-ctc-hidden-projection-every": cmrg(
        3, "--model.init_args.train_hidden_projection=every", data="cmrg-ctc", steps=320, lr=3e-3
    ),
    # without L^SC nothing reaches P_h; SeqFT trains every part in every stage, the 2D-3D adapter on X-rays too
    "cmrg-stage1-no-sc": cmrg(
        0, "--model.init_args.contrastive=false", data="cmrg-xe1", steps=120, unused=("hidden_projection",)
    ),
    "seqft-stage2-xe2": cmrg(1, "--model.init_args.strategy=seqft", data="cmrg-xe2", unused=("volume_adapter",)),
}


@dataclass
class Overfit:
    """What a case's training did.

    Attributes:
        first: Each loss term at the first step.
        last: Each loss term after training (eval mode).
        references: The batch's reports.
        predictions: The greedy reports after training.
        bleu4: Corpus BLEU-4 of ``predictions`` against ``references``.
        unchanged_parts: Parts with trainable parameters none of which changed.
        changed_frozen: Frozen parameters that changed.
    """

    first: dict[str, float]
    last: dict[str, float]
    references: list[str]
    predictions: list[str]
    bleu4: float
    fall: float = FALL
    unchanged_parts: list[str] = field(default_factory=list)
    changed_frozen: list[str] = field(default_factory=list)

    def check(self) -> None:
        """Raise an AssertionError naming each criterion the case misses."""
        nll = next(k for k in ("lm", "vtc", "loss") if k in self.last)  # the report's likelihood term
        problems = []
        if self.last[nll] > NEAR_ZERO:
            problems.append(f"report NLL `{nll}` {self.first[nll]:.3f} -> {self.last[nll]:.3f} > {NEAR_ZERO}")
        for k in sorted(set(self.last) - {"loss", nll}):
            if self.last[k] > self.fall * self.first[k]:
                problems.append(f"loss term `{k}` did not fall: {self.first[k]:.4f} -> {self.last[k]:.4f}")
        if self.bleu4 < MIN_BLEU4:
            pairs = "; ".join(f"{p!r} for {r!r}" for p, r in zip(self.predictions, self.references, strict=True))
            problems.append(f"BLEU-4 {self.bleu4:.3f} < {MIN_BLEU4}: {pairs}")
        if self.unchanged_parts:
            problems.append(f"trainable parts that did not change: {self.unchanged_parts}")
        if self.changed_frozen:
            problems.append(f"frozen parameters that changed: {self.changed_frozen[:5]}")
        assert not problems, "did not overfit: " + " | ".join(problems)


def case_batches(case: Case, datamodule: Any) -> list[tuple[int | None, ReportBatch]]:
    """``(stage, fixed batch)`` in training order, the case's own last: one batch of the experiment's DataModule, or
    for a continual method's stage ``t`` the stages ``0..t`` in turn, each on its task's batch (as the sequence runs:
    a stage starts from what the earlier ones left, ``prompt_init: previous`` included)."""
    if case.task is None:
        return [(None, fixed_batch(datamodule))]
    return [(t, fixed_batch(datamodule.tasks[t].data)) for t in range(case.task + 1)]


def fixed_batch(datamodule: Any) -> ReportBatch:
    """The first :data:`STUDIES` training studies with distinct reports, collated once (fixed crops too)."""
    datamodule.prepare_data()
    datamodule.setup("fit")
    dataset = datamodule.datasets["train"]
    chosen: dict[str, int] = {}
    for i, report in enumerate(dataset.reports()):
        chosen.setdefault(report, i)
        if len(chosen) == STUDIES:
            break
    assert len(chosen) == STUDIES, f"the training split has {len(chosen)} distinct reports, fewer than {STUDIES}"
    return datamodule.collate([dataset[i] for i in chosen.values()])


def pretrain_report_llm(out: Path, reports: list[str], steps: int = 100, seed: int = 0) -> Path:
    """A tiny Llama (width 64, BPE on the reports) trained as a language model on ``reports``, each after 0-39
    random tokens (loss on the report and eos only), so that it continues any prompt with one of them."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    make_tiny_llm(out, vocab_size=600, hidden_size=64, seed=seed, corpus=reports)
    tok = AutoTokenizer.from_pretrained(out)
    model = LlamaForCausalLM.from_pretrained(out)
    g = torch.Generator().manual_seed(seed)
    rows, starts = [], []
    for report in reports * 8:
        junk = torch.randint(4, len(tok), (int(torch.randint(0, 40, (1,), generator=g)),), generator=g).tolist()
        rows.append([tok.bos_token_id, *junk, *tok(report, add_special_tokens=False).input_ids, tok.eos_token_id])
        starts.append(1 + len(junk))
    ids = torch.full((len(rows), max(map(len, rows))), tok.pad_token_id)
    labels, mask = torch.full_like(ids, -100), torch.zeros_like(ids)
    for i, (row, start) in enumerate(zip(rows, starts, strict=True)):
        ids[i, : len(row)], mask[i, : len(row)] = torch.tensor(row), 1
        labels[i, start : len(row)] = torch.tensor(row[start:])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def overfit_dir(
    tmp_path_factory: pytest.TempPathFactory, phantom_root: Path, tiny_llm: Path, tiny_swin: Path
) -> Iterator[Path]:
    """One working directory for the module (the phantoms are written once): ``models/tiny-{llm,swin}``,
    ``data/iu_xray`` (phantom studies with ``views.json``)."""
    root = tmp_path_factory.mktemp("overfit")
    (root / "models").mkdir()
    (root / "models" / "tiny-llm").symlink_to(tiny_llm, target_is_directory=True)
    (root / "models" / "tiny-swin").symlink_to(tiny_swin, target_is_directory=True)
    shutil.copytree(phantom_root, root / "data" / "iu_xray")
    write_views(root / "data" / "iu_xray")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        yield root


@pytest.fixture(scope="module")
def report_llms() -> dict[str, Path]:
    """The pretrained LLM of each data set, made on first use."""
    return {}


def cli_args(case: Case, llm: str | None = None) -> list[str]:
    """``-c experiments/X.yaml -c tests/conf/X.yaml`` + greedy decoding + the switch + the case's lr (+ its LLM)."""
    experiment = REPO / "experiments" / f"{case.experiment}.yaml"
    args = ["-c", str(experiment), "-c", str(CONF / experiment.name), *GREEDY, *case.args]
    args.append(f"--model.init_args.optimizer.init_args.lr={case.lr}")
    if llm is not None:
        args.append(f"--model.init_args.language_model.init_args.name_or_path={llm}")
    return args


def report_llm(case: Case, llms: dict[str, Path], root: Path) -> Path:
    """The LLM pretrained on the reports of the case's fixed batch (built with the overlay's tiny LLM first)."""
    if case.data not in llms:
        stages = case_batches(case, build(cli_args(case), False, {"logger": False}).datamodule)
        reports = [report for _, batch in stages for report in batch.reports]
        llms[case.data] = pretrain_report_llm(root / "models" / f"reports-{case.data}", reports)
    return llms[case.data]


def train(model: Any, batch: ReportBatch, steps: int, before_step: Any = None) -> dict[str, float]:
    """``steps`` optimizer steps of the model's own optimizer on ``batch``; each loss term at the first step."""
    optimizer = model.optimizer_factory([p for _, p in model.trainable_parameters()])
    first: dict[str, float] = {}
    for step in range(steps):
        if before_step is not None:
            before_step(step)
        losses = model.compute_losses(batch)
        first = first or {k: float(v.detach()) for k, v in losses.items()}
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
    return first


def overfit(case: Case, llm: Path) -> Overfit:
    """Build the case's method by the CLI, train it on its fixed batch, generate, and measure (see the module)."""
    torch.manual_seed(0)
    built = build(cli_args(case, str(llm)), False, {"logger": False})
    model, stages = built.model, case_batches(case, built.datamodule)
    for stage, earlier in stages[:-1]:  # a continual method's earlier stages, each ended (radiolm.continual.sequence)
        if stage:
            model.set_stage(stage)
        model.train()
        train(model, earlier, case.steps)
        model.end_stage(stage, [earlier])
    stage, batch = stages[-1]
    if stage:
        model.set_stage(stage)
    unfreeze = None
    if case.stage is not None:  # the experiment's callback (experiments/_base/parts/two_stage_callbacks.yaml)
        unfreeze = EncoderUnfreeze(freeze_epochs=1)
        unfreeze.setup(None, model, "fit")  # type: ignore[arg-type]
    epoch = SimpleNamespace(current_epoch=(case.stage or 1) - 1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    if unfreeze is not None:
        unfreeze.on_train_batch_start(epoch, model, batch, 0)  # type: ignore[arg-type]
    trained = {n for n, p in model.named_parameters() if p.requires_grad}

    def before_step(step: int) -> None:
        if unfreeze is not None:
            unfreeze.on_train_batch_start(epoch, model, batch, step)  # type: ignore[arg-type]

    first = train(model, batch, case.steps, before_step)
    model.eval()
    with torch.no_grad():
        last = {k: float(v) for k, v in model.compute_losses(batch).items()}
        predictions = model.generate(batch)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    parts = {n.split(".")[0] for n in trained}
    return Overfit(
        first,
        last,
        list(batch.reports),
        predictions,
        compute_nlg(predictions, batch.reports, batch.language or None, meteor=False)["bleu4"],  # jieba words (zh)
        case.fall,
        unchanged_parts=sorted(
            p for p in parts - set(case.unused) if not any(n.split(".")[0] == p for n in changed & trained)
        ),
        changed_frozen=sorted(changed - trained),
    )


SLOW = {
    # the sequence with P_h training in every stage is sensitive to its budget: at 3e-3 for 320 steps (each stage)
    # the CT stage passes with the report NLL at 0.087 (the mark: 0.1), at 480 steps it stops at 0.162, at 1e-2 at
    # 0.80 (one report for all four studies); the experiments' `first` passes at 1e-2 with 0.028
    "cmrg-stage4-ctc-hidden-projection-every",
}
"""Cases that pass with a narrow margin: not in the default tier, where a different CPU's rounding could tip them."""


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in CASES])
def test_overfit(name: str, overfit_dir: Path, report_llms: dict[str, Path]) -> None:
    case = CASES[name]
    overfit(case, report_llm(case, report_llms, overfit_dir)).check()


def _detached(function: Any) -> Any:
    """``function`` with its result cut from the graph (same value, no gradient)."""

    def cut(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs).detach()

    return cut


CUTS = {
    # Dia-LLaMA's L_DP (Eq. 6): the disease branch gets no gradient; its term stays where it started
    "dia-llama-dp": ("dia-llama-text-dpm-daa", DiseasePrototypeMemory, "loss", r"loss term `dp` did not fall"),
    # CMRG-LLM's L^SC (Eq. 2): P_h gets no gradient, the prompt states none from it
    "cmrg-sc": ("cmrg-stage1-xe1", CMRGLLM, "supcon", r"trainable parts that did not change: \['hidden_projection'\]"),
    # the bidirectional CLIP baseline's InfoNCE (footnote 4): its two projections get no gradient
    "bidirectional-clip": (
        "bidirectional-v2t-clip",
        bidirectional_module,
        "clip_infonce",
        r"loss term `clip` did not fall",
    ),
}


@pytest.mark.parametrize("cut", list(CUTS))
def test_a_cut_gradient_fails_the_overfit(
    cut: str, overfit_dir: Path, report_llms: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15's "done when": the overfit fails when one loss term's gradient is cut."""
    name, owner, attribute, expected = CUTS[cut]
    case = CASES[name]
    llm = report_llm(case, report_llms, overfit_dir)
    monkeypatch.setattr(owner, attribute, _detached(getattr(owner, attribute)))
    result = overfit(case, llm)
    with pytest.raises(AssertionError, match=expected):
        result.check()
