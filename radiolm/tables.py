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
is printed and written to ``runs/<stem>/table.md`` (and ``table.json``). With ``protocol:``, the table names it and
flags a row whose metrics were computed under another protocol (``metrics-test-*.json`` records its ``protocol``;
the rows' experiments set it in ``model.init_args.evaluation``, docs/protocols.md). ``--dry-run`` prints the commands;
``--collect`` only rebuilds the table from runs that exist; ``--rows a,b`` runs a subset.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from radiolm.errors import RadioLMError

__all__ = [
    "Column",
    "PaperRow",
    "Row",
    "TableSpec",
    "collect_row",
    "continual_metrics",
    "load_spec",
    "main",
    "render_paper",
    "render_table",
    "row_command",
]

BEST_EPOCH = "best_epoch"
"""A derived column: the epoch (1-based) whose validation ``selection`` was highest, i.e. epochs to converge."""


@dataclass
class Column:
    key: str
    header: str
    digits: int = 3


@dataclass
class Row:
    name: str
    label: str
    config: str
    args: list[str] = field(default_factory=list)


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
    columns = []
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
        rows.append(
            Row(str(row["name"]), str(row.get("label", row["name"])), str(row["config"]), [str(a) for a in args])
        )
    protocol = str(raw.get("protocol") or "")
    if protocol:
        from radiolm.metrics.protocols import PRESETS

        if protocol not in PRESETS:
            raise _fail(path, f"{where}protocol", f"unknown protocol {protocol!r}; use one of {list(PRESETS)}")
    unavailable = dict(raw.get("unavailable") or {})
    paper = raw.get("paper") or {}
    if not isinstance(paper, dict) or not isinstance(paper.get("rows", []), list):
        raise _fail(path, f"{where}paper", "a mapping with `source` and `rows` (each `label` and `values`)")
    keys = {c.key for c in columns}
    paper_rows = []
    for i, prow in enumerate(paper.get("rows") or []):
        values = prow.get("values") if isinstance(prow, dict) else None
        if not isinstance(values, dict) or "label" not in prow:
            raise _fail(path, f"{where}paper.rows[{i}]", "needs `label` and `values` ({column key: number})")
        if set(values) - keys:
            raise _fail(path, f"{where}paper.rows[{i}]", f"values for unknown columns {sorted(set(values) - keys)}")
        paper_rows.append(PaperRow(str(prow["label"]), {str(k): float(v) for k, v in values.items()}))
    return TableSpec(
        str(raw["title"]),
        columns,
        rows,
        str(raw.get("source", "")),
        unavailable,
        protocol,
        paper_rows,
        str(paper.get("source", "")),
    )


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
            if row.name in seen and (seen[row.name].config, seen[row.name].args) != (row.config, row.args):
                raise _fail(path, f"row {row.name!r}", "the same name with another config or args in two tables")
            seen[row.name] = row
    return tables


def row_command(spec_path: Path, row: Row, python: str = sys.executable) -> list[str]:
    """The command that runs a row: fit (then test on the best checkpoint) into ``runs/<stem>/<name>``."""
    return [python, "-m", "radiolm", "fit", "-c", row.config, "--run_name", f"{spec_path.stem}/{row.name}", *row.args]


def _epoch_of(path: Path) -> int:
    return int(path.stem.rsplit("-", 1)[-1])


def continual_metrics(matrix: dict[str, Any]) -> dict[str, Any]:
    """A continual run's row from its ``continual-matrix.json``: ``<metric>_v<t>`` (1-based ``t``) is ``v_t``
    (CMRG-LLM §3.1), ``forgetting_<metric>`` / ``bwt_<metric>`` the extras (not in the paper), and the stages done."""
    out: dict[str, Any] = {"stages_done": matrix["stages_done"], "stages": len(matrix["tasks"])}
    for metric, averages in matrix["average"].items():
        out.update({f"{metric}_v{t + 1}": v for t, v in enumerate(averages) if v is not None})
    extras = matrix.get("not in the paper") or {}
    for name, short in (("forgetting", "forgetting"), ("backward_transfer", "bwt")):
        out.update({f"{short}_{m}": v for m, v in (extras.get(name) or {}).items() if v is not None})
    return out


def collect_row(runs_root: Path, spec_path: Path, row: Row) -> dict[str, Any] | None:
    """Test metrics of the row's newest run (``None`` when it has not run), plus :data:`BEST_EPOCH`; a continual
    run's :func:`continual_metrics` once all its stages are done (``None`` before)."""
    folder = runs_root / spec_path.stem / row.name
    matrices = sorted(folder.glob("**/continual-matrix.json"), key=lambda p: p.stat().st_mtime)
    if matrices:
        matrix = json.loads(matrices[-1].read_text())
        if matrix["stages_done"] < len(matrix["tasks"]):
            return None  # stopped early: run again (resume with fit --ckpt_path <its run folder>)
        protocols = [json.loads(p.read_text()).get("protocol") for p in matrices[-1].parent.glob("**/metrics-test-*")]
        found = {p for p in protocols if p}
        return {**continual_metrics(matrix), **({"protocol": found.pop()} if len(found) == 1 else {})}
    tests = sorted(folder.glob("**/metrics-test-*.json"), key=lambda p: p.stat().st_mtime)
    if not tests:
        return None
    metrics: dict[str, Any] = json.loads(tests[-1].read_text())
    vals = [
        (json.loads(p.read_text()).get("selection"), _epoch_of(p)) for p in tests[-1].parent.glob("metrics-val-*.json")
    ]
    vals = [(s, e) for s, e in vals if s is not None]
    if vals:
        metrics[BEST_EPOCH] = max(vals, key=lambda v: (v[0], -v[1]))[1] + 1
    return metrics


def render_table(table: TableSpec, results: dict[str, dict[str, Any] | None]) -> str:
    """Markdown in the paper's layout: one row per run, one column per metric; empty cells explained below."""
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
        cells = []
        for col in table.columns:
            value = None if metrics is None else metrics.get(col.key)
            if value is None and metrics is not None:
                empty.add(col.key)
            cells.append(
                "" if value is None else (str(int(value)) if col.key == BEST_EPOCH else f"{value:.{col.digits}f}")
            )
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
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
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n" + render_paper(table)


def render_paper(table: TableSpec) -> str:
    """The paper's rows of ``table`` in the same columns (empty when the spec has none)."""
    if not table.paper:
        return ""
    lines = ["", f"The paper's numbers ({table.paper_source or table.source}):", ""]
    lines += ["| | " + " | ".join(c.header for c in table.columns) + " |"]
    lines += ["|---|" + "|".join("---:" for _ in table.columns) + "|"]
    for prow in table.paper:
        cells = [f"{prow.values[c.key]:.{c.digits}f}" if c.key in prow.values else "-" for c in table.columns]
        lines.append(f"| {prow.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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
        for name in chosen:
            print(shlex.join(row_command(args.spec, rows[name], python="python")))
        for table in tables:
            if table.paper:
                print(f"\n### {table.title}" + render_paper(table), end="")
        return
    if not args.collect:
        for name in chosen:
            if collect_row(args.runs, args.spec, rows[name]) is not None and not args.rerun:
                print(f"radiolm table: {name}: has test metrics, not run again (--rerun to run it)", flush=True)
                continue
            command = row_command(args.spec, rows[name])
            print(f"radiolm table: {name}: {shlex.join(command)}", flush=True)
            start = time.monotonic()
            done = subprocess.run(command, check=False)
            print(f"radiolm table: {name}: exit {done.returncode} after {time.monotonic() - start:.0f} s", flush=True)
            if done.returncode != 0:
                raise RadioLMError(f"row {name!r} failed (exit {done.returncode}); its command is printed above")
    results = {name: collect_row(args.runs, args.spec, row) for name, row in rows.items()}
    markdown = "\n".join(render_table(table, results) for table in tables)
    out = args.runs / args.spec.stem
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(markdown, encoding="utf-8")
    (out / "table.json").write_text(json.dumps(results, indent=2) + "\n")
    print(markdown)
    print(f"wrote {out / 'table.md'} and table.json")
