"""ReportSamples through the real CLI: a tiny demo run (W&B offline) writes the sample pages into the run folder and a
W&B run whose files hold the sample tables with their images; and the run folder names its W&B run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import wandb
import yaml
from PIL import Image

from radiolm.callbacks import ReportSamples
from radiolm.cli import main
from radiolm.samples.table import TABLE_COLUMNS
from radiolm.wandb_run import RUN_FILE, find_wandb_run

from .conftest import CONF, REPO
from .wandb_records import history_values, run_tables


def loggers(save_dir: Path) -> list[dict[str, Any]]:
    """The suite's two loggers, W&B offline, independent of experiments/_base/loggers.yaml. An absolute save_dir:
    the wandb service process, when an earlier test started it, has another working directory."""
    return [
        {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(save_dir), "name": "demo"}},
        {
            "class_path": "lightning.pytorch.loggers.WandbLogger",
            "init_args": {"save_dir": str(save_dir), "project": "radiolm", "name": "demo", "offline": True},
        },
    ]


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="n and max_side"):
        ReportSamples(n=0)


@pytest.fixture()
def demo_run(tiny_workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One training step, one validation and one test batch of the demo with tiny models; the run folder."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    run = {
        "trainer": {
            "fast_dev_run": False,  # fast_dev_run drops the loggers
            "max_steps": 1,
            "limit_train_batches": 1,
            "limit_val_batches": 1,
            "limit_test_batches": 1,
            "logger": loggers(tiny_workdir / "runs"),
        },
        "model": {"init_args": {"metrics": ["ce"]}},  # no METEOR JVM: the pages need no NLG scores
    }
    (tiny_workdir / "run.yaml").write_text(yaml.safe_dump(run))
    main(["fit", "-c", str(REPO / "experiments/demo.yaml"), "-c", str(CONF / "demo.yaml"), "-c", "run.yaml"])
    assert wandb.run is None  # the command finished its run: its files are complete
    (run_dir,) = (tiny_workdir / "runs" / "demo").glob("version_*")
    return run_dir


def test_demo_run_writes_pages_and_a_wandb_sample_table(demo_run: Path) -> None:
    (predictions,) = demo_run.glob("predictions-test-*.jsonl")
    epoch = predictions.stem.rsplit("-", 1)[1]
    records = [json.loads(line) for line in predictions.read_text().splitlines()]
    page = (demo_run / f"samples-test-{epoch}.html").read_text(encoding="utf-8")  # next to the predictions
    assert (demo_run / "samples-val-0.html").is_file()
    assert page.count("data:image/png;base64,") == 2 * len(records)  # 2 test studies (n=3), 2 views each
    assert all(r["reference"].replace("&", "&amp;") in page for r in records)

    record = find_wandb_run(demo_run)
    assert record is not None and record["mode"] == "offline" and record["project"] == "radiolm"
    wandb_dir = Path(record["run_dir"])
    assert wandb_dir.is_absolute() and wandb_dir.name == f"offline-run-{wandb_dir.name[12:27]}-{record['id']}"
    assert record["step"] >= 1  # rewritten at teardown, after the logging

    logged = {key[: -len("/_type")] for row in history_values(wandb_dir) for key, v in row.items() if v == "table-file"}
    assert logged == {"val/samples", "test/samples"}
    prefix = f"run-{record['id']}-"  # artifacts run-<id>-<key without '/'>-<random tag>
    tables = {name[len(prefix) :].split("-")[0]: t for name, t in run_tables(wandb_dir).items()}
    assert set(tables) == {"valsamples", "testsamples"}
    table, files = tables["testsamples"]
    assert table["columns"] == TABLE_COLUMNS
    assert [row[0] for row in table["data"]] == sorted(r["id"] for r in records)
    by_id = {r["id"]: r for r in records}
    for row in table["data"]:
        assert row[2] == by_id[row[0]]["prediction"] and row[3] == by_id[row[0]]["reference"]
        assert row[1]["_type"] == "image-file"
        with Image.open(files[row[1]["path"]]) as image:
            assert image.size == (64 + 4 + 64, 64)  # frontal | lateral at the phantom's 64 px
    assert (demo_run / RUN_FILE).is_file()
