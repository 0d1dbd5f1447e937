"""`radiolm table`: spec parsing, dry run, collecting runs into the paper's layout, and one real row end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radiolm.errors import RadioLMError
from radiolm.tables import BEST_EPOCH, collect_row, load_spec, main, render_table, row_command

from .conftest import REPO

SPEC = """
title: "Table 9: a test"
source: nowhere §0
columns:
  - {key: bleu4, header: BLEU-4}
  - {key: radcliq, header: RadCliQ}
  - {key: best_epoch, header: Epochs}
unavailable:
  radcliq: "needs the RadGraph model"
rows:
  - {name: a, label: Model A, config: experiments/demo.yaml, args: ["--trainer.max_epochs=1"]}
  - {name: b, label: Model B, config: experiments/demo.yaml}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_spec_and_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write(tmp_path / "grid.yaml", SPEC)
    (table,) = load_spec(spec)
    assert [c.key for c in table.columns] == ["bleu4", "radcliq", "best_epoch"]
    command = ["python", "-m", "radiolm", "fit", "-c", "experiments/demo.yaml", "--run_name", "grid/a"]
    assert row_command(spec, table.rows[0], python="python") == [*command, "--trainer.max_epochs=1"]
    main([str(spec), "--dry-run"])
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "python -m radiolm fit -c experiments/demo.yaml --run_name grid/a --trainer.max_epochs=1",
        "python -m radiolm fit -c experiments/demo.yaml --run_name grid/b",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("title: x\nrows: []\n", "missing ['columns']"),
        ("title: x\ncolumns: [{header: B}]\nrows: []\n", "columns[0]: needs `key`"),
        ("title: x\ncolumns: []\nrows: [{name: a}]\n", "rows[0]: needs `name` and `config`"),
        ("title: x\ncolumns: []\nrows: [{name: a, config: c}, {name: a, config: c}]\n", "duplicate row name 'a'"),
        ("title: [unclosed\n", "not YAML"),
    ],
)
def test_bad_spec_names_the_problem(tmp_path: Path, text: str, message: str) -> None:
    spec = write(tmp_path / "bad.yaml", text)
    with pytest.raises(RadioLMError, match=r"bad\.yaml") as info:
        load_spec(spec)
    assert message in str(info.value)


def test_collect_fills_rows_and_explains_empty_cells(tmp_path: Path) -> None:
    spec = write(tmp_path / "grid.yaml", SPEC)
    (table,) = load_spec(spec)
    run = tmp_path / "runs" / "grid" / "a" / "version_0"
    write(run / "metrics-test-2.json", json.dumps({"n": 3, "bleu4": 0.12345}))
    for epoch, selection in [(0, 0.1), (1, 0.3), (2, 0.2)]:  # best validation at the second epoch
        write(run / f"metrics-val-{epoch}.json", json.dumps({"selection": selection}))
    results = {row.name: collect_row(tmp_path / "runs", spec, row) for row in table.rows}
    assert results["b"] is None
    assert results["a"] is not None and results["a"][BEST_EPOCH] == 2
    markdown = render_table(table, results)
    assert "| Model A | 0.123 |  | 2 |" in markdown
    assert "| Model B |  |  |  |" in markdown
    assert "- Model B: not run yet." in markdown
    assert "- RadCliQ empty: needs the RadGraph model." in markdown


def test_a_real_row_runs_fit_and_test(workdir: Path, tiny_llm: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One row through a real `radiolm fit` subprocess (tiny LLM, 12 phantom studies); the table shows its test."""
    args = [
        "--trainer.max_epochs=1", "--trainer.accelerator=cpu", "--trainer.precision=32-true",
        f"--model.init_args.language_model.init_args.name_or_path={tiny_llm}",
        "--model.init_args.vision_encoder.init_args.name=test_resnet",
        "--model.init_args.vision_encoder.init_args.image_size=64",
        "--data.init_args.n=12", "--data.init_args.image_size=64", "--data.init_args.num_workers=0",
    ]  # fmt: skip
    spec = write(
        workdir / "tiny.yaml",
        json.dumps(
            {
                "title": "tiny",
                "columns": [{"key": "bleu4", "header": "BLEU-4"}, {"key": "ce_f1_micro_14", "header": "F1-14"}],
                "rows": [{"name": "demo", "config": str(REPO / "experiments" / "demo.yaml"), "args": args}],
            }
        ),
    )
    main([str(spec)])
    out = capsys.readouterr().out
    metrics = json.loads((workdir / "runs" / "tiny" / "table.json").read_text())["demo"]
    assert metrics is not None and 0.0 <= metrics["bleu4"] <= 1.0
    assert f"| demo | {metrics['bleu4']:.3f} | {metrics['ce_f1_micro_14']:.3f} |" in out
    assert (workdir / "runs" / "tiny" / "table.md").read_text().startswith("### tiny")
    # A second call does not train again: the row has test metrics.
    main([str(spec)])
    assert "has test metrics, not run again" in capsys.readouterr().out


CONTINUAL_SPEC = """
title: "Table 1: continual"
columns:
  - {key: bleu4_v2, header: BLEU-4 t=2}
  - {key: bleu4_v3, header: BLEU-4 t=3}
  - {key: forgetting_bleu4, header: Forgetting}
rows:
  - {name: seqft, label: SeqFT, config: experiments/cmrg_llm_phantom.yaml}
paper:
  source: the paper, Table 1
  rows:
    - {label: SeqFT (paper), values: {bleu4_v2: 0.117, bleu4_v3: 0.209}}
"""


def test_a_continual_run_fills_its_row_with_v_t_from_the_matrix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CMRG-LLM §3.1: the cells are v_t = mean over s <= t of task s after stage t, read from continual-matrix.json;
    the paper's numbers print under the table and with --dry-run."""
    from radiolm.continual.matrix import ScoreMatrix

    spec = write(tmp_path / "cl.yaml", CONTINUAL_SPEC)
    (table,) = load_spec(spec)
    run = tmp_path / "runs" / "cl" / "seqft" / "version_0"
    matrix = ScoreMatrix(["A", "B", "C"])
    for s, t, value in [(0, 0, 0.4), (0, 1, 0.2), (1, 1, 0.5), (0, 2, 0.1), (1, 2, 0.3), (2, 2, 0.6)]:
        matrix.set(s, t, {"bleu4": value})
    matrix.write(run)
    write(run / "stage-3-C" / "test-1-A" / "metrics-test-0.json", json.dumps({"bleu4": 0.1, "protocol": "cmrg"}))
    metrics = collect_row(tmp_path / "runs", spec, table.rows[0])
    assert metrics is not None
    assert metrics["bleu4_v2"] == pytest.approx((0.2 + 0.5) / 2) and metrics["bleu4_v3"] == pytest.approx(1.0 / 3)
    assert metrics["bleu4_v1"] == pytest.approx(0.4) and metrics["stages_done"] == 3
    assert metrics["forgetting_bleu4"] == pytest.approx(((0.4 - 0.1) + (0.5 - 0.3)) / 2)  # not in the paper
    assert metrics["protocol"] == "cmrg"
    markdown = render_table(table, {"seqft": metrics})
    assert "| SeqFT | 0.350 | 0.333 | 0.250 |" in markdown
    assert "| SeqFT (paper) | 0.117 | 0.209 | - |" in markdown.split("The paper's numbers (the paper, Table 1):")[1]
    main([str(spec), "--dry-run"])
    out = capsys.readouterr().out
    assert out.startswith("python -m radiolm fit -c experiments/cmrg_llm_phantom.yaml --run_name cl/seqft\n")
    assert "| SeqFT (paper) | 0.117 | 0.209 | - |" in out
    # a run that stopped before its last stage is not a result: the row runs again
    partial = ScoreMatrix(["A", "B", "C"])
    partial.set(0, 0, {"bleu4": 0.4})
    partial.write(run)
    assert collect_row(tmp_path / "runs", spec, table.rows[0]) is None


def test_paper_values_must_name_the_columns(tmp_path: Path) -> None:
    spec = write(tmp_path / "bad.yaml", CONTINUAL_SPEC.replace("bleu4_v3: 0.209", "bleu4_v9: 0.209"))
    with pytest.raises(RadioLMError, match=r"bad\.yaml: paper\.rows\[0\].*unknown columns \['bleu4_v9'\]"):
        load_spec(spec)
