"""``radiolm table SPEC.yaml``: run a paper's table grid and write it in the paper's layout.

A spec (``experiments/tables/*.yaml``) names the runs (rows) and the metrics (columns)::

    title: "Table 1: ..."
    source: two_stage_finetune.md §5, Table 1
    protocol: two_stage                       # optional: the evaluation protocol the rows must be scored with
    columns:
      - {key: bleu4, header: BLEU-4}          # a key of metrics-test-*.json, or best_epoch
    unavailable:                              # optional: why a column may stay empty (a footnote)
      radcliq: "needs the RadGraph model (--radgraph-model)"
    rows:
      - name: gpt2-s-2stage                   # run folder runs/<spec stem>/<name>/version_N
        label: 2-stage GPT2-S
        config: experiments/two_stage_gpt2_small.yaml
        args: ["--model.init_args.freeze_epochs=0"]
        paper: {bleu4: 0.058, rouge_l: 0.226}     # optional: the paper's numbers for this row (column key -> value)
        margin: {over: baseline, key: bleu4, at_least: 0.05}   # optional: must beat row `baseline` by 0.05
      - name: baseline                        # kind baseline: `radiolm baseline -c CONFIG` (most common report)
        label: most common training report
        kind: baseline
        config: experiments/two_stage_gpt2_small.yaml
    curves: {loss: train/loss, metrics: [val/f1_cxb_14]}   # optional: learning-curve PNGs of the fit rows

A continual run (CMRG-LLM: the data is a ``ContinualDataModule``) fills its row from its ``continual-matrix.json``
instead: the key ``<metric>_v<t>`` is the paper's ``v_t`` (the mean over tasks ``s <= t`` of task ``s`` tested after
stage ``t``, CMRG-LLM §3.1), e.g. ``bleu4_v2``; ``forgetting_<metric>`` and ``bwt_<metric>`` are extras (not in
the paper). A table may carry the paper's numbers for its columns, printed under the run table and by ``--dry-run``::

    paper:
      source: cmrg_llm_continual.md §3.2, Table 1
      rows:
        - {label: SeqFT, values: {bleu4_v2: 0.117, bleu4_v3: 0.209}}

A spec with several tables lists them under ``tables:``, each with its own title / columns / rows. Each row runs
``python -m radiolm fit -c CONFIG --run_name <stem>/<name> ARGS`` in its own process (``fit`` ends with ``test``
on the best checkpoint); the newest ``metrics-test-*.json`` under ``runs/<stem>/<name>/`` fills the row. The table
is printed and written to ``runs/<stem>/table.md`` (and ``table.json``). A ``kind: baseline`` row runs
``radiolm baseline -c CONFIG ARGS`` instead: the most common training report of the experiment's data, scored by
its protocol. The runner times each row it runs (``row-time.json`` in the row's folder, with the CPU's bf16 support:
the ``minutes`` column); a row's ``margin`` is checked under the table (met / NOT met); ``curves`` draws the
training loss and validation metrics against steps, one PNG per fit row and an overview
(``runs/<stem>/learning-curves.png``; ``table-<i>/learning-curves.png`` when several tables of a spec have curves;
:mod:`radiolm.analysis.learning_curves`). With ``protocol:``, the table names it and flags a row whose metrics
were computed under another protocol (``metrics-test-*.json`` records its ``protocol``; the rows' experiments set
it in ``model.init_args.evaluation``, docs/protocols.md). ``--dry-run`` prints the commands; ``--collect`` only
rebuilds the table from runs that exist; ``--rows a,b`` runs a subset. A row's ``paper:`` numbers (on the suite's
scale: fractions, where a paper prints percentages), and a table's ``paper: {source, rows: [{label, values}]}`` (rows
the paper printed that are not runs, e.g. a quoted method), are printed after the table, and
``--dry-run`` prints the paper's rows before the commands.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from radiolm.continual.matrix import NOT_IN_PAPER
from radiolm.errors import RadioLMError

__all__ = [
    "Column",
    "Curves",
    "Margin",
    "MarginCheck",
    "PaperRow",
    "Row",
    "TableSpec",
    "check_margins",
    "collect_row",
    "continual_metrics",
    "load_spec",
    "main",
    "render_paper",
    "render_table",
    "row_command",
    "run_row",
]

BEST_EPOCH = "best_epoch"
"""A derived column: the epoch (1-based) whose validation ``selection`` was highest, i.e. epochs to converge."""
MINUTES = "minutes"
"""A derived column: the row's wall-clock minutes, as the runner measured them (``row-time.json``)."""
ROW_TIME = "row-time.json"
KINDS = ("fit", "baseline")


@dataclass
class Column:
    key: str
    header: str
    digits: int = 3


@dataclass
class Margin:
    """A row must beat row ``over`` on metric ``key`` by at least ``at_least`` (absolute)."""

    over: str
    key: str
    at_least: float


@dataclass
class Row:
    name: str
    label: str
    config: str
    args: list[str] = field(default_factory=list)
    kind: str = "fit"
    margin: Margin | None = None
    paper: dict[str, float] = field(default_factory=dict)


@dataclass
class Curves:
    """Which logged series the learning-curve pictures show (keys of the CSV logger's ``metrics.csv``)."""

    loss: str = "train/loss"
    metrics: list[str] = field(default_factory=lambda: ["val/selection"])


@dataclass
class PaperRow:
    """A row as the paper printed it (its numbers, not a run)."""

    label: str
    values: dict[str, float]


@dataclass
class TableSpec:
    title: str
    columns: list[Column]
    rows: list[Row]
    source: str = ""
    unavailable: dict[str, str] = field(default_factory=dict)
    protocol: str = ""
    curves: Curves | None = None
    paper: list[PaperRow] = field(default_factory=list)
    paper_source: str = ""


def _fail(path: Path, where: str, what: str) -> RadioLMError:
    return RadioLMError(f"{path}: {where}: {what} (see the format in `radiolm table --help`)")


def _parse_table(path: Path, raw: Any, where: str) -> TableSpec:
    if not isinstance(raw, dict):
        raise _fail(path, where, "a table is a mapping with title, columns and rows")
    missing = [k for k in ("title", "columns", "rows") if k not in raw]
    if missing:
        raise _fail(path, where, f"missing {missing}")
    columns: list[Column] = []
    for i, col in enumerate(raw["columns"]):
        if not isinstance(col, dict) or "key" not in col:
            raise _fail(path, f"{where}columns[{i}]", "needs `key` (and `header`)")
        columns.append(Column(str(col["key"]), str(col.get("header", col["key"])), int(col.get("digits", 3))))
    rows, names = [], set()
    for i, row in enumerate(raw["rows"]):
        if not isinstance(row, dict) or not {"name", "config"} <= set(row):
            raise _fail(path, f"{where}rows[{i}]", "needs `name` and `config`")
        if row["name"] in names:
            raise _fail(path, f"{where}rows[{i}]", f"duplicate row name {row['name']!r}")
        names.add(row["name"])
        args = row.get("args") or []
        if not isinstance(args, list):
            raise _fail(path, f"{where}rows[{i}].args", "a list of command-line overrides")
        kind = str(row.get("kind", "fit"))
        if kind not in KINDS:
            raise _fail(path, f"{where}rows[{i}].kind", f"{kind!r}; use one of {list(KINDS)}")
        margin = None
        if row.get("margin") is not None:
            raw_margin = row["margin"]
            if not isinstance(raw_margin, dict) or not {"over", "key", "at_least"} <= set(raw_margin):
                raise _fail(path, f"{where}rows[{i}].margin", "a mapping {over: ROW, key: METRIC, at_least: NUMBER}")
            margin = Margin(str(raw_margin["over"]), str(raw_margin["key"]), float(raw_margin["at_least"]))
        label = str(row.get("label", row["name"]))
        paper = _parse_paper(path, f"{where}rows[{i}].paper", row.get("paper"), columns)
        rows.append(Row(str(row["name"]), label, str(row["config"]), [str(a) for a in args], kind, margin, paper))
    for row in rows:
        if row.margin is not None and row.margin.over not in names:
            raise _fail(path, f"{where}row {row.name!r}.margin.over", f"no row named {row.margin.over!r} in this table")
    curves = None
    if raw.get("curves") is not None:
        raw_curves = raw["curves"]
        if not isinstance(raw_curves, dict) or set(raw_curves) - {"loss", "metrics"}:
            raise _fail(path, f"{where}curves", "a mapping {loss: LOGGED_KEY, metrics: [LOGGED_KEY, ...]}")
        metrics = raw_curves.get("metrics", ["val/selection"])
        curves = Curves(
            str(raw_curves.get("loss", "train/loss")),
            [str(m) for m in ([metrics] if isinstance(metrics, str) else metrics)],
        )
    protocol = str(raw.get("protocol") or "")
    if protocol:
        from radiolm.metrics.protocols import PRESETS

        if protocol not in PRESETS:
            raise _fail(path, f"{where}protocol", f"unknown protocol {protocol!r}; use one of {list(PRESETS)}")
    unavailable = dict(raw.get("unavailable") or {})
    raw_paper: Any = raw.get("paper") or {}
    if not isinstance(raw_paper, dict) or not isinstance(raw_paper.get("rows", []), list):
        raise _fail(path, f"{where}paper", "a mapping with `source` and `rows` (each `label` and `values`)")
    paper_rows = []
    for i, prow in enumerate(raw_paper.get("rows") or []):
        values = prow.get("values") if isinstance(prow, dict) else None
        if not isinstance(values, dict) or "label" not in prow:
            raise _fail(path, f"{where}paper.rows[{i}]", "needs `label` and `values` ({column key: number})")
        numbers = _parse_paper(path, f"{where}paper.rows[{i}].values", values, columns)
        paper_rows.append(PaperRow(str(prow["label"]), numbers))
    # A run row's own ``paper:`` is the same thing written next to its run: the paper's line for that row.
    paper_rows = [PaperRow(row.label, row.paper) for row in rows if row.paper] + paper_rows
    return TableSpec(
        str(raw["title"]),
        columns,
        rows,
        str(raw.get("source", "")),
        unavailable,
        protocol,
        curves,
        paper_rows,
        str(raw_paper.get("source", "")),
    )


def _parse_paper(path: Path, where: str, raw: Any, columns: list[Column]) -> dict[str, float]:
    """A row's ``paper:`` numbers: column keys of its table -> numbers (``null``: the paper has no value)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _fail(path, where, "a mapping of column keys to the paper's numbers")
    keys = [c.key for c in columns]
    unknown = [k for k in raw if k not in keys]
    if unknown:
        raise _fail(path, where, f"{unknown} are not columns of this table ({keys})")
    try:
        return {str(k): float(v) for k, v in raw.items() if v is not None}
    except (TypeError, ValueError):
        raise _fail(path, where, f"numbers only, got {raw}") from None


def load_spec(path: str | Path) -> list[TableSpec]:
    """The tables of a spec file (one, or several under ``tables:``). Row names are unique across the file."""
    path = Path(path)
    if not path.is_file():
        raise RadioLMError(f"{path}: no such table spec; the specs are in experiments/tables/")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise RadioLMError(f"{path}: not YAML ({e})") from None
    if isinstance(raw, dict) and "tables" in raw:
        tables = [_parse_table(path, t, f"tables[{i}].") for i, t in enumerate(raw["tables"])]
    else:
        tables = [_parse_table(path, raw, "")]
    # A row that appears in two tables (the shared baseline) runs once: same name -> same run.
    seen: dict[str, Row] = {}
    for table in tables:
        for row in table.rows:
            first = seen.get(row.name)
            if first is not None and (first.config, first.args, first.kind) != (row.config, row.args, row.kind):
                raise _fail(path, f"row {row.name!r}", "the same name with another config or args in two tables")
            seen[row.name] = row
    return tables


def row_command(
    spec_path: Path, row: Row, python: str = sys.executable, runs_root: Path = Path("runs"), resume: Path | None = None
) -> list[str]:
    """The command that runs a row: fit (then test on the best checkpoint) into ``runs/<stem>/<name>``, or for a
    baseline row ``radiolm baseline`` on the experiment's data into the same folder. ``resume``: a continual run's
    folder that stopped before its last stage (``fit --ckpt_path`` goes on from the stage where it stopped)."""
    if row.kind == "baseline":
        out = str(runs_root / spec_path.stem / row.name)
        return [python, "-m", "radiolm", "baseline", "-c", row.config, *row.args, "--out", out]
    run_name = f"{spec_path.stem}/{row.name}"
    command = [python, "-m", "radiolm", "fit", "-c", row.config, "--run_name", run_name, *row.args]
    return command + (["--ckpt_path", str(resume)] if resume is not None else [])


def _newest_matrix(folder: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest ``continual-matrix.json`` under a row's folder and its content (``None``: not a continual run)."""
    matrices = sorted(folder.glob("**/continual-matrix.json"), key=lambda p: p.stat().st_mtime)
    return (matrices[-1], json.loads(matrices[-1].read_text())) if matrices else None


def _stopped(matrix: dict[str, Any]) -> bool:
    """A continual run that ended before its last stage (not a result; the runner resumes it)."""
    return bool(matrix["stages_done"] < len(matrix["tasks"]))


def stopped_continual_run(runs_root: Path, spec_path: Path, row: Row) -> Path | None:
    """The row's newest continual run folder when it stopped before its last stage, else ``None``."""
    newest = _newest_matrix(runs_root / spec_path.stem / row.name)
    if newest is None:
        return None
    path, matrix = newest
    return path.parent if _stopped(matrix) else None


def _epoch_of(path: Path) -> int:
    return int(path.stem.rsplit("-", 1)[-1])


def continual_metrics(matrix: dict[str, Any]) -> dict[str, Any]:
    """A continual run's row from its ``continual-matrix.json``: ``<metric>_v<t>`` (1-based ``t``) is ``v_t``
    (CMRG-LLM §3.1), ``forgetting_<metric>`` / ``bwt_<metric>`` the extras (not in the paper), and the stages done."""
    out: dict[str, Any] = {"stages_done": matrix["stages_done"], "stages": len(matrix["tasks"])}
    for metric, averages in matrix["average"].items():
        out.update({f"{metric}_v{t + 1}": v for t, v in enumerate(averages) if v is not None})
    extras = matrix.get(NOT_IN_PAPER) or {}
    for name, short in (("forgetting", "forgetting"), ("backward_transfer", "bwt")):
        out.update({f"{short}_{m}": v for m, v in (extras.get(name) or {}).items() if v is not None})
    return out


def _minutes(folder: Path) -> dict[str, float]:
    """:data:`MINUTES` from the runner's ``row-time.json`` in a row's folder (``{}`` when it did not time it)."""
    path = folder / ROW_TIME
    return {MINUTES: json.loads(path.read_text())["seconds"] / 60} if path.is_file() else {}


def collect_row(runs_root: Path, spec_path: Path, row: Row) -> dict[str, Any] | None:
    """Test metrics of the row's newest run (``None`` when it has not run), plus :data:`BEST_EPOCH`; a continual
    run's :func:`continual_metrics` once all its stages are done (``None`` before)."""
    folder = runs_root / spec_path.stem / row.name
    newest = _newest_matrix(folder)
    if newest is not None:
        path, matrix = newest
        if _stopped(matrix):
            return None  # the runner resumes it (stopped_continual_run)
        protocols = [json.loads(p.read_text()).get("protocol") for p in path.parent.glob("**/metrics-test-*")]
        found = {p for p in protocols if p}
        return {
            **continual_metrics(matrix),
            **({"protocol": found.pop()} if len(found) == 1 else {}),
            **_minutes(folder),
        }
    tests = sorted(folder.glob("**/metrics-test-*.json"), key=lambda p: p.stat().st_mtime)
    if not tests:
        return None
    metrics: dict[str, Any] = {**json.loads(tests[-1].read_text()), **_minutes(folder)}
    vals = [
        (json.loads(p.read_text()).get("selection"), _epoch_of(p)) for p in tests[-1].parent.glob("metrics-val-*.json")
    ]
    vals = [(s, e) for s, e in vals if s is not None]
    if vals:
        metrics[BEST_EPOCH] = max(vals, key=lambda v: (v[0], -v[1]))[1] + 1
    return metrics


@dataclass
class MarginCheck:
    """A row's :class:`Margin`, checked: ``met`` is ``None`` when either row has no value yet."""

    row: str
    over: str
    key: str
    at_least: float
    value: float | None
    baseline: float | None
    met: bool | None
    sentence: str


def check_margins(table: TableSpec, results: dict[str, dict[str, Any] | None]) -> list[MarginCheck]:
    """Each row's margin over its baseline row, with a sentence for the table's notes."""
    labels = {row.name: row.label for row in table.rows}
    checks = []
    for row in table.rows:
        if row.margin is None:
            continue
        m = row.margin
        value = (results.get(row.name) or {}).get(m.key)
        base = (results.get(m.over) or {}).get(m.key)
        if value is None or base is None:
            met, outcome = None, "not measured yet"
        else:
            met = value - base >= m.at_least - 1e-12
            outcome = f"{value:.3f} - {base:.3f} = {value - base:+.3f}: {'met' if met else 'NOT met'}"
        sentence = f"{row.label}: `{m.key}` at least {m.at_least:+.2f} over {labels[m.over]}: {outcome}."
        checks.append(MarginCheck(row.name, m.over, m.key, m.at_least, value, base, met, sentence))
    return checks


def _cells(table: TableSpec, metrics: dict[str, Any] | None) -> list[str]:
    cells = []
    for col in table.columns:
        value = None if metrics is None else metrics.get(col.key)
        cells.append("" if value is None else (str(int(value)) if col.key == BEST_EPOCH else f"{value:.{col.digits}f}"))
    return cells


def render_paper(table: TableSpec) -> str:
    """The paper's numbers of ``table`` (its ``paper:`` rows) in the table's columns; ``""`` when it has none."""
    if not table.paper:
        return ""
    lines = [f"### {table.title}: the paper's numbers", "", f"Paper: {table.paper_source or table.source}", ""]
    lines += ["| | " + " | ".join(c.header for c in table.columns) + " |"]
    lines += ["|---|" + "|".join("---:" for _ in table.columns) + "|"]
    lines += [f"| {prow.label} | " + " | ".join(_cells(table, prow.values)) + " |" for prow in table.paper]
    return "\n".join(lines) + "\n"


def render_table(table: TableSpec, results: dict[str, dict[str, Any] | None]) -> str:
    """Markdown in the paper's layout: one row per run, one column per metric, empty cells explained below, then
    the paper's numbers where the spec gives them (:func:`render_paper`)."""
    lines = [f"### {table.title}", ""]
    if table.source:
        lines += [f"Paper: {table.source}", ""]
    if table.protocol:
        lines += [f"Evaluation protocol: `{table.protocol}` (docs/protocols.md)", ""]
    lines += ["| | " + " | ".join(c.header for c in table.columns) + " |"]
    lines += ["|---|" + "|".join("---:" for _ in table.columns) + "|"]
    empty: set[str] = set()
    not_run = []
    for row in table.rows:
        metrics = results.get(row.name)
        if metrics is None:
            not_run.append(row.label)
        if metrics is not None:
            empty.update(c.key for c in table.columns if metrics.get(c.key) is None)
        lines.append(f"| {row.label} | " + " | ".join(_cells(table, metrics)) + " |")
    notes = [f"- {', '.join(not_run)}: not run yet."] if not_run else []
    if table.protocol:
        other = {
            row.label: str((results.get(row.name) or {}).get("protocol", "default"))
            for row in table.rows
            if results.get(row.name) is not None
        }
        notes += [
            f"- {label}: scored with the `{name}` protocol, not `{table.protocol}`: not comparable with the paper."
            for label, name in other.items()
            if name != table.protocol
        ]
    for key in sorted(empty):
        header = next(c.header for c in table.columns if c.key == key)
        reason = table.unavailable.get(key, f"the runs' metrics have no `{key}`")
        notes.append(f"- {header} empty: {reason}.")
    notes += [f"- {check.sentence}" for check in check_margins(table, results)]
    paper = render_paper(table)
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n" + (f"\n{paper}" if paper else "")


def run_row(spec_path: Path, row: Row, runs_root: Path) -> None:
    """Run one row in its own process; write its wall-clock time and the CPU's bf16 support to ``row-time.json``.
    A continual row that stopped before its last stage is resumed there (the time is then the resumed part's).

    Raises:
        RadioLMError: the row's command failed.
    """
    from radiolm.precision import cpu_has_native_bf16

    resume = stopped_continual_run(runs_root, spec_path, row)
    command = row_command(spec_path, row, runs_root=runs_root, resume=resume)
    print(f"radiolm table: {row.name}: {shlex.join(command)}", flush=True)
    start = time.monotonic()
    done = subprocess.run(command, check=False)
    seconds = time.monotonic() - start
    print(f"radiolm table: {row.name}: exit {done.returncode} after {seconds:.0f} s", flush=True)
    if done.returncode != 0:
        raise RadioLMError(f"row {row.name!r} failed (exit {done.returncode}); its command is printed above")
    folder = runs_root / spec_path.stem / row.name
    folder.mkdir(parents=True, exist_ok=True)
    timing = {
        "seconds": round(seconds, 1),
        "command": command[1:],
        "cpu_native_bf16": cpu_has_native_bf16(),
        **({"resumed": str(resume)} if resume is not None else {}),
    }
    (folder / ROW_TIME).write_text(json.dumps(timing, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    """``radiolm table SPEC.yaml [--dry-run] [--collect] [--rerun] [--rows a,b] [--runs runs/]``."""
    parser = argparse.ArgumentParser(
        prog="radiolm table",
        description="Run a table's grid (one `radiolm fit` per row; fit ends with test) and write it as markdown.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("spec", type=Path, help="table spec, e.g. experiments/tables/two_stage_phantom.yaml")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--collect", action="store_true", help="run nothing; build the table from existing runs")
    parser.add_argument("--rerun", action="store_true", help="run rows that already have test metrics again")
    parser.add_argument("--rows", help="comma-separated row names to run (default: all)")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="the loggers' save_dir (default runs/)")
    args = parser.parse_args(argv)
    tables = load_spec(args.spec)
    rows = {row.name: row for table in tables for row in table.rows}
    chosen = list(rows) if not args.rows else [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in chosen if r not in rows]
    if unknown:
        raise RadioLMError(f"--rows: unknown {unknown}; the rows of {args.spec} are {list(rows)}")
    if args.dry_run:
        papers = [render_paper(table) for table in tables]
        if any(papers):
            print("\n".join(p for p in papers if p))
        for name in chosen:
            print(shlex.join(row_command(args.spec, rows[name], python="python")))
        return
    if not args.collect:
        for name in chosen:
            if collect_row(args.runs, args.spec, rows[name]) is not None and not args.rerun:
                print(f"radiolm table: {name}: has test metrics, not run again (--rerun to run it)", flush=True)
                continue
            run_row(args.spec, rows[name], args.runs)
    results = {name: collect_row(args.runs, args.spec, row) for name, row in rows.items()}
    markdown = "\n".join(render_table(table, results) for table in tables)
    out = args.runs / args.spec.stem
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(markdown, encoding="utf-8")
    margins = [asdict(check) for table in tables for check in check_margins(table, results)]
    (out / "table.json").write_text(json.dumps({"rows": results, "margins": margins}, indent=2) + "\n")
    print(markdown)
    print(f"wrote {out / 'table.md'} and table.json")
    with_curves = [table for table in tables if table.curves is not None]
    if with_curves:
        from radiolm.analysis.learning_curves import plot_learning_curves
    for i, table in enumerate(with_curves, 1):
        assert table.curves is not None
        fit_rows = {row.label: args.runs / args.spec.stem / row.name for row in table.rows if row.kind == "fit"}
        # each table of a multi-table spec has its own overview (table-1/learning-curves.png, ...)
        target = out if len(with_curves) == 1 else out / f"table-{i}"
        for path in plot_learning_curves(fit_rows, table.curves.loss, table.curves.metrics, target):
            print(f"wrote {path}")
