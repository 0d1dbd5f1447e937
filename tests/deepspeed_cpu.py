"""Write a ZeRO-2 checkpoint on the CPU as Lightning's ``DeepSpeedStrategy`` does, and load it back (a test helper).

    DS_ACCELERATOR=cpu python tests/deepspeed_cpu.py LLM_DIR OUT_DIR PORT

Lightning runs ``DeepSpeedStrategy`` on CUDA only, but DeepSpeed's engine runs on a CPU (gloo, one rank). So: a tiny
R2GenGPT (the frozen tiny LLM of ``LLM_DIR``, a trainable encoder and mapper) takes one ZeRO-2 step in a DeepSpeed
engine; the strategy built from ``experiments/_base/deepspeed_zero2.yaml`` writes ``OUT_DIR/last.ckpt`` with its own
``save_checkpoint`` (after the module's ``on_save_checkpoint``, as Lightning calls them); a fresh module (another
seed) in an inference engine loads it as the strategy's ``load_checkpoint`` does for ``lightning test``
(``load_module_strict=module.strict_loading``). ``OUT_DIR/states.pt`` holds both modules' state dicts.
Run in its own process by ``tests/test_checkpoint_export.py``: DeepSpeed initialises ``torch.distributed``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import deepspeed
import lightning
import torch
import yaml
from lightning.pytorch.strategies import DeepSpeedStrategy

from radiolm.batch import ReportBatch
from radiolm.methods import R2GenGPT
from radiolm.parts import LanguageModel, VisionEncoder

REPO = Path(__file__).resolve().parents[1]


def build(llm: str, seed: int) -> R2GenGPT:
    torch.manual_seed(seed)
    encoder = VisionEncoder("test_resnet", backend="timm", pretrained=False, trainable="full", image_size=64)
    return R2GenGPT(vision_encoder=encoder, language_model=LanguageModel(llm), metrics=["nlg"])


def main(llm: str, out: Path, port: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    # The shared-memory all-reduce speeds up many CPU ranks; one rank needs none (and it compiles for minutes).
    sys.modules["deepspeed.comm.torch"].build_shm_op = lambda: None  # (`deepspeed.comm.torch` is torch itself)
    deepspeed.init_distributed(dist_backend="gloo")
    init_args = yaml.safe_load((REPO / "experiments" / "_base" / "deepspeed_zero2.yaml").read_text())["init_args"]
    strategy = DeepSpeedStrategy(**init_args)

    model = build(llm, seed=0)
    optimizer = torch.optim.AdamW([p for _, p in model.trainable_parameters()], lr=1e-2)
    config = {"train_micro_batch_size_per_gpu": 2, "zero_allow_untested_optimizer": True}
    config["zero_optimization"] = strategy.config["zero_optimization"]
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
    torch.manual_seed(0)
    batch = ReportBatch(
        ids=["a", "b"],
        reports=["No pleural effusion.", "Moderate cardiomegaly."],
        labels=torch.zeros(2, 14),
        images=torch.randn(2, 1, 3, 64, 64),
        view_mask=torch.ones(2, 1, dtype=torch.bool),
        views=[["frontal"], ["frontal"]],
    )
    engine.backward(model.compute_losses(batch)["loss"])
    engine.step()

    checkpoint = {"epoch": 0, "global_step": 1, "pytorch-lightning_version": lightning.__version__}
    checkpoint |= {"state_dict": model.state_dict(), "optimizer_states": [optimizer.state_dict()]}
    model.on_save_checkpoint(checkpoint)  # Lightning's dump_checkpoint calls the hook, then the strategy saves
    strategy.model = engine  # the strategy's deepspeed_engine
    strategy.save_checkpoint(checkpoint, out / "last.ckpt")

    fresh = build(llm, seed=1)
    fresh._trainer = SimpleNamespace(strategy=strategy)  # type: ignore[assignment]  # strict_loading reads it
    inference, *_ = deepspeed.initialize(
        model=fresh, config={"train_micro_batch_size_per_gpu": 1}, model_parameters=[], dist_init_required=False
    )
    _, client = inference.load_checkpoint(
        str(out / "last.ckpt"),
        load_optimizer_states=False,
        load_lr_scheduler_states=False,
        load_module_strict=fresh.strict_loading,
    )
    fresh.on_load_checkpoint(client)
    torch.save(
        {
            "trained": model.state_dict(),
            "loaded": fresh.state_dict(),
            "trainable": [n for n, _ in model.trainable_parameters()],
            "strict_loading": fresh.strict_loading,
            "client_keys": sorted(client),
        },
        out / "states.pt",
    )


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3])
