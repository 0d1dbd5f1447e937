"""`radiolm table`: spec parsing, dry run, collecting runs into the paper's layout, and one real row end to end."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from radiolm.cli import main as cli_main
from radiolm.errors import RadioLMError
from radiolm.tables import (
    BEST_EPOCH,
    check_margins,
    collect_row,
    load_spec,
    main,
    render_paper,
    render_table,
    row_command,
    stopped_continual_run,
)

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


def test_paper_rows_in_dry_run_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A row's ``paper:`` numbers: printed by ``--dry-run`` before the commands, and under the row in the table."""
    spec = write(
        tmp_path / "grid.yaml",
        SPEC.replace('max_epochs=1"]}', 'max_epochs=1"],\n     paper: {bleu4: 0.173, radcliq: null}}'),
    )
    (table,) = load_spec(spec)
    assert table.rows[0].paper == {"bleu4": 0.173} and table.rows[1].paper == {}  # null: the paper has no value
    main([str(spec), "--dry-run"])
    out = capsys.readouterr().out
    assert "### Table 9: a test: the paper's numbers" in out and "| Model A | 0.173 |  |  |" in out
    assert out.index("| Model A | 0.173") < out.index("python -m radiolm fit")
    assert out.rstrip().endswith("--run_name grid/b")
    run = tmp_path / "runs" / "grid" / "a" / "version_0"
    write(run / "metrics-test-2.json", json.dumps({"bleu4": 0.15}))
    markdown = render_table(table, {"a": collect_row(tmp_path / "runs", spec, table.rows[0]), "b": None})
    table_part, paper_part = markdown.split("### Table 9: a test: the paper's numbers")
    assert "| Model A | 0.150 |  |  |\n| Model B |" in table_part
    assert "| Model A | 0.173 |  |  |" in paper_part and "Model B" not in paper_part
    assert render_paper(load_spec(write(tmp_path / "plain.yaml", SPEC))[0]) == ""


@pytest.mark.parametrize(
    ("spec", "rows"),
    [
        ("r2gengpt.yaml", 6),  # Tables 1 (IU-Xray, MIMIC-CXR) and 2 (MIMIC-CXR rows again): six runs
        ("two_stage.yaml", 12),  # Table 1, Appendix C Table 2, frozen-encoder arm
        ("bidirectional.yaml", 10),  # Tables 1-2 reuse the full model's Table 3 runs
    ],
)
def test_paper_specs_carry_the_papers_numbers(spec: str, rows: int) -> None:
    """Every row with a paper number gives one for each column the paper reports, within the metric's range."""
    path = REPO / "experiments" / "tables" / spec
    tables = load_spec(path)
    assert len({row.name for table in tables for row in table.rows}) == rows
    assert all(table.protocol for table in tables)
    with_paper = [(table, row) for table in tables for row in table.rows if row.paper]
    assert with_paper
    for table, row in with_paper:
        assert all(0 < v < 2 for v in row.paper.values()), (table.title, row.name)
        if "BLEU-1" in [c.header for c in table.columns]:
            assert row.paper["bleu1"] > row.paper["bleu2"] > row.paper["bleu3"] > row.paper["bleu4"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("title: x\ncolumns: [{key: a}]\nrows: [{name: r, config: c, paper: {b: 1}}]\n", "['b'] are not columns"),
        ("title: x\ncolumns: [{key: a}]\nrows: [{name: r, config: c, paper: {a: x}}]\n", "numbers only"),
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
    metrics = json.loads((workdir / "runs" / "tiny" / "table.json").read_text())["rows"]["demo"]
    assert metrics is not None and 0.0 <= metrics["bleu4"] <= 1.0
    assert f"| demo | {metrics['bleu4']:.3f} | {metrics['ce_f1_micro_14']:.3f} |" in out
    assert (workdir / "runs" / "tiny" / "table.md").read_text().startswith("### tiny")
    # A second call does not train again: the row has test metrics.
    main([str(spec)])
    assert "has test metrics, not run again" in capsys.readouterr().out


BENCH = """
title: bench
columns:
  - {key: ce_f1_micro_5, header: CE F1}
  - {key: minutes, header: minutes, digits: 1}
curves: {loss: train/loss, metrics: [val/ce_f1_micro_5]}
rows:
  - {name: base, label: Baseline, kind: baseline, config: experiments/demo.yaml, args: ["--data.init_args.n=12"]}
  - name: good
    label: Good model
    config: experiments/demo.yaml
    margin: {over: base, key: ce_f1_micro_5, at_least: 0.30}
  - name: weak
    label: Weak model
    config: experiments/demo.yaml
    margin: {over: base, key: ce_f1_micro_5, at_least: 0.30}
  - name: new
    label: New model
    config: experiments/demo.yaml
    margin: {over: base, key: ce_f1_micro_5, at_least: 0.30}
"""


def test_baseline_rows_margins_and_minutes(tmp_path: Path) -> None:
    """A baseline row runs `radiolm baseline -c`; margins are checked against it; the runner's time fills minutes."""
    spec = write(tmp_path / "bench.yaml", BENCH)
    (table,) = load_spec(spec)
    base = table.rows[0]
    assert row_command(spec, base, python="python", runs_root=Path("runs")) == [
        "python", "-m", "radiolm", "baseline", "-c", "experiments/demo.yaml", "--data.init_args.n=12",
        "--out", "runs/bench/base",
    ]  # fmt: skip
    runs = tmp_path / "runs" / "bench"
    write(runs / "base" / "metrics-test-baseline.json", json.dumps({"ce_f1_micro_5": 0.05}))
    write(runs / "good" / "version_0" / "metrics-test-7.json", json.dumps({"ce_f1_micro_5": 0.40}))
    write(runs / "good" / "row-time.json", json.dumps({"seconds": 750.0}))
    write(runs / "weak" / "version_0" / "metrics-test-7.json", json.dumps({"ce_f1_micro_5": 0.30}))
    results = {row.name: collect_row(tmp_path / "runs", spec, row) for row in table.rows}
    assert results["good"] is not None and results["good"]["minutes"] == 12.5
    checks = {c.row: c for c in check_margins(table, results)}
    assert checks["good"].met is True and checks["weak"].met is False and checks["new"].met is None
    markdown = render_table(table, results)
    assert "| Good model | 0.400 | 12.5 |" in markdown
    assert "Good model: `ce_f1_micro_5` at least +0.30 over Baseline: 0.400 - 0.050 = +0.350: met." in markdown
    assert "Weak model: `ce_f1_micro_5` at least +0.30 over Baseline: 0.300 - 0.050 = +0.250: NOT met." in markdown
    assert "New model: `ce_f1_micro_5` at least +0.30 over Baseline: not measured yet." in markdown


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("{name: a, config: c, kind: sweep}", "rows[0].kind: 'sweep'"),
        ("{name: a, config: c, margin: {over: b, key: k, at_least: 0.1}}", "row 'a'.margin.over: no row named 'b'"),
        ("{name: a, config: c, margin: {over: a}}", "rows[0].margin: a mapping {over: ROW"),
    ],
)
def test_bad_row_kind_or_margin(tmp_path: Path, row: str, message: str) -> None:
    spec = write(tmp_path / "bad.yaml", f"title: x\ncolumns: []\nrows: [{row}]\n")
    with pytest.raises(RadioLMError, match=r"bad\.yaml") as info:
        load_spec(spec)
    assert message in str(info.value)


def test_learning_curves_per_row_and_overview(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`radiolm analyze learning-curves` reads the CSV logger's file of the newest version of each run."""
    csv = "epoch,step,train/loss,val/ce_f1_micro_5\n0,4,5.0,\n0,9,3.0,\n0,9,,0.10\n1,14,2.0,\n1,19,1.5,\n1,19,,0.45\n"
    write(tmp_path / "runs" / "a" / "version_0" / "metrics.csv", "epoch,step,train/loss\n0,4,9.0\n")
    write(tmp_path / "runs" / "a" / "version_1" / "metrics.csv", csv)  # the newer version is drawn
    write(tmp_path / "runs" / "b" / "version_0" / "metrics.csv", "epoch,step,train/loss\n0,4,7.0\n")
    cli_main(
        ["analyze", "learning-curves", "--run", f"A={tmp_path / 'runs' / 'a'}", "--run", f"B={tmp_path / 'runs' / 'b'}",
         "--metric", "val/ce_f1_micro_5", "--out", str(tmp_path / "out")]
    )  # fmt: skip
    assert (tmp_path / "runs" / "a" / "version_1" / "learning-curve.png").stat().st_size > 1000
    assert (tmp_path / "runs" / "b" / "version_0" / "learning-curve.png").is_file()
    assert (tmp_path / "out" / "learning-curves.png").is_file()
    series = json.loads((tmp_path / "out" / "learning-curves.json").read_text())["runs"]
    assert series["A"]["train/loss"] == [[4, 5.0], [9, 3.0], [14, 2.0], [19, 1.5]]
    assert series["A"]["val/ce_f1_micro_5"] == [[9, 0.1], [19, 0.45]]
    assert series["B"]["val/ce_f1_micro_5"] == []  # never validated: the loss only
    assert "learning-curves.png" in capsys.readouterr().out


def test_learning_curves_say_what_they_cannot_draw(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A key that no run logged (a typo) is named in a warning; a label given twice is an error, not a replacement."""
    write(tmp_path / "a" / "metrics.csv", "epoch,step,train/loss\n0,4,9.0\n")
    with caplog.at_level(logging.WARNING, logger="radiolm"):
        cli_main(["analyze", "learning-curves", "--run", f"A={tmp_path / 'a'}", "--metric", "val/ce_f1_mikro_5",
                  "--out", str(tmp_path / "out")])  # fmt: skip
    assert "no run logged 'val/ce_f1_mikro_5'" in caplog.text and "metrics.csv" in caplog.text
    from radiolm.analysis.learning_curves import main as learning_curves

    with pytest.raises(RadioLMError, match="--run A= is given twice"):
        learning_curves(["--run", f"A={tmp_path / 'a'}", "--run", f"A={tmp_path}", "--out", str(tmp_path / "out")])


def test_phantom_benchmark_rows_share_their_baseline_s_studies(capsys: pytest.CaptureFixture[str]) -> None:
    """Each margin compares a method with the baseline of the same studies: the X-ray rows resolve to the demo's
    phantom (n, seed, split, report section), the CT row to its baseline's."""

    def data(row: Any) -> dict[str, Any]:
        with pytest.raises(SystemExit):
            cli_main(["fit", "-c", str(REPO / row.config), *[a for a in row.args if a.startswith("--data")],
                      "--print_config"])  # fmt: skip
        init = yaml.safe_load(capsys.readouterr().out)["data"]["init_args"]
        return {k: init.get(k) for k in ("n", "seed", "split", "report_key", "language")}

    (table,) = load_spec(REPO / "experiments" / "tables" / "phantom_benchmark.yaml")
    rows = {row.name: row for row in table.rows}
    for row in table.rows:
        if row.margin is not None:
            assert data(row) == data(rows[row.margin.over]), row.name


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
    paper = markdown.split("### Table 1: continual: the paper's numbers\n\nPaper: the paper, Table 1")[1]
    assert "| SeqFT (paper) | 0.117 | 0.209 |  |" in paper
    main([str(spec), "--dry-run"])
    out = capsys.readouterr().out
    assert out.rstrip().endswith("python -m radiolm fit -c experiments/cmrg_llm_phantom.yaml --run_name cl/seqft")
    assert "| SeqFT (paper) | 0.117 | 0.209 |  |" in out
    # a run that stopped before its last stage is not a result: the row runs again
    partial = ScoreMatrix(["A", "B", "C"])
    partial.set(0, 0, {"bleu4": 0.4})
    partial.write(run)
    assert collect_row(tmp_path / "runs", spec, table.rows[0]) is None
    # ... and the runner resumes it at the stage where it stopped, not from stage 1 in a new run folder
    resume = stopped_continual_run(tmp_path / "runs", spec, table.rows[0])
    assert resume == run
    assert row_command(spec, table.rows[0], python="python", resume=resume)[-2:] == ["--ckpt_path", str(run)]


def test_paper_values_must_name_the_columns(tmp_path: Path) -> None:
    spec = write(tmp_path / "bad.yaml", CONTINUAL_SPEC.replace("bleu4_v3: 0.209", "bleu4_v9: 0.209"))
    with pytest.raises(RadioLMError, match=r"bad\.yaml: paper\.rows\[0\]\.values.*\['bleu4_v9'\] are not columns"):
        load_spec(spec)
    spec = write(tmp_path / "bad.yaml", CONTINUAL_SPEC.replace("bleu4_v3: 0.209", "bleu4_v3: n/a"))
    with pytest.raises(RadioLMError, match=r"bad\.yaml: paper\.rows\[0\]\.values.*numbers only"):
        load_spec(spec)
    # null: the paper has no number for that cell (as in a row's own paper:)
    spec = write(tmp_path / "ok.yaml", CONTINUAL_SPEC.replace("bleu4_v3: 0.209", "bleu4_v3: null"))
    assert "bleu4_v3" not in load_spec(spec)[0].paper[-1].values


def test_every_paper_table_spec_carries_the_paper_s_numbers() -> None:
    """`make table-<paper> DRY=1` prints the paper's rows for every table of every paper's spec (issue 14); the
    phantom specs and the phantom benchmark have no paper numbers to print."""
    specs = [p for p in sorted((REPO / "experiments" / "tables").glob("*.yaml")) if "phantom" not in p.stem]
    assert {p.stem for p in specs} >= {"r2gengpt", "two_stage", "bidirectional", "dia_llama", "cmrg"}
    for spec in specs:
        for table in load_spec(spec):
            if table.title.startswith("Frozen encoder"):
                continue  # the two-stage paper gives no numbers for its frozen-encoder arm
            assert table.paper and all(row.values for row in table.paper), f"{spec.name}: {table.title}"


def test_each_table_of_a_multi_table_spec_draws_its_own_overview(tmp_path: Path) -> None:
    """Two tables with curves in one spec: two overviews, neither overwriting the other."""
    table = """
  - title: {name}
    columns: [{{key: bleu4, header: BLEU-4}}]
    curves: {{loss: train/loss, metrics: [val/bleu4]}}
    rows: [{{name: {name}, config: experiments/demo.yaml}}]"""
    spec = write(tmp_path / "two.yaml", "tables:" + table.format(name="a") + table.format(name="b"))
    for name, loss in (("a", 2.0), ("b", 1.0)):
        write(tmp_path / "runs" / "two" / name / "version_0" / "metrics.csv", f"step,train/loss\n5,{loss}\n")
    main([str(spec), "--collect", "--runs", str(tmp_path / "runs")])
    out = tmp_path / "runs" / "two"
    assert not (out / "learning-curves.png").exists()
    for i, name in enumerate(["a", "b"], 1):
        series = json.loads((out / f"table-{i}" / "learning-curves.json").read_text())["runs"]
        assert list(series) == [name]
        assert (out / name / "version_0" / "learning-curve.png").is_file()
