"""Progress without a terminal: `lightning fit ... > log 2>&1` shows that training and generation move."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from radiolm.callbacks import ProgressLog
from radiolm.callbacks.progress_log import format_duration

from .conftest import REPO

TRAIN_LINE = re.compile(
    r"^radiolm: epoch (\d+)/(\d+) step (\d+)/(\d+) loss [\d.]+ \| [\d.]+ samples/s \| elapsed \S+, ETA \S+$", re.M
)
TEST_LINE = re.compile(r"^radiolm: test: (\d+)/(\d+) studies generated \| [\d.]+ studies/s \| ETA \S+$", re.M)


def test_format_duration() -> None:
    assert format_duration(4.6) == "5s"
    assert format_duration(75.2) == "1m15s"
    assert format_duration(3725) == "1h02m"


def test_every_n_steps_is_checked() -> None:
    with pytest.raises(ValueError, match="every_n_steps"):
        ProgressLog(every_n_steps=0)


def test_fit_to_a_log_file_shows_progress(workdir: Path, tiny_llm: Path) -> None:
    """The demo as a user runs it with its output in a file (no terminal): progress lines for training (every
    `every_n_steps` and the first step), for test generation, and the precision line; no progress-bar junk."""
    log_file = workdir / "log"
    args = [
        sys.executable,
        "-m",
        "radiolm",
        "fit",
        "-c",
        str(REPO / "experiments/demo.yaml"),
        f"--model.init_args.language_model.init_args.name_or_path={tiny_llm}",
        "--model.init_args.vision_encoder.init_args.name=test_resnet",
        "--data.init_args.n=40",
        "--data.init_args.image_size=64",
        "--data.init_args.batch_size=4",
        "--data.init_args.eval_batch_size=4",
        "--data.init_args.num_workers=0",
        "--trainer.max_epochs=1",
        "--trainer.max_steps=4",
        "--trainer.limit_test_batches=2",
        "--trainer.logger=false",
        "--model.init_args.metrics=[ce]",  # no METEOR JVM in the subprocess: this test reads progress lines
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log_file.open("w") as f:
        subprocess.run(args, stdout=f, stderr=subprocess.STDOUT, cwd=workdir, env=env, check=True, timeout=600)
    text = log_file.read_text()
    steps = [int(m.group(3)) for m in TRAIN_LINE.finditer(text)]
    assert steps[:1] == [1], text[-3000:]
    assert all(int(m.group(4)) == 4 for m in TRAIN_LINE.finditer(text))
    tests = [(int(m.group(1)), int(m.group(2))) for m in TEST_LINE.finditer(text)]
    assert tests == [(4, 8), (8, 8)], text[-3000:]
    assert re.search(r"^radiolm: CPU (with|without) native bf16", text, re.M)
    assert "\r" not in text  # the progress bar is off without a terminal


def test_progress_every_n_steps(workdir: Path, tiny_llm: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from radiolm.cli import main

    main(
        [
            "fit",
            "-c",
            str(REPO / "experiments/demo.yaml"),
            f"--model.init_args.language_model.init_args.name_or_path={tiny_llm}",
            "--model.init_args.vision_encoder.init_args.name=test_resnet",
            "--data.init_args.n=60",
            "--data.init_args.image_size=64",
            "--data.init_args.batch_size=2",
            "--data.init_args.num_workers=0",
            "--trainer.max_steps=11",
            "--trainer.logger=false",
            "--trainer.callbacks+=radiolm.callbacks.ProgressLog",
            "--trainer.callbacks.every_n_steps=5",
            "--trainer.callbacks.when=always",
            "--test_after_fit=false",
        ]
    )
    err = capfd.readouterr().err
    assert [int(m.group(3)) for m in TRAIN_LINE.finditer(err)] == [1, 5, 10], err[-3000:]
