"""One case per domain after the last stage: reference and each run's report side by side (CMRG-LLM Fig. 3, §3.2).

    radiolm analyze continual-cases --run CMRG-LLM=runs/cmrg_llm_phantom/version_0 \
        --run SeqFT=runs/cmrg_llm_phantom_seqft/version_0 [--stage N] [--case XE1=<study id>]

Fig. 3 shows, after the models have learned the 4th task, a study of ``D_XE1`` and one of ``D_CTC`` with the ground
truth, CMRG-LLM's and SeqFT's report. Here every task gets one study (the paper's figure shows two of the four),
read from the test predictions the sequence driver wrote after stage ``--stage`` (default: the last stage both runs
finished): ``stage-<t>-<task>/test-<s>-<task s>/predictions-test-*.jsonl``. The study is the first id (in sorted
order) that every run tested, unless ``--case TASK=ID`` names one: never chosen by score, so the figure is not
cherry-picked (the paper does not say how it chose its cases). The paper's translations (its "TL" rows) are not
made: there is no translator offline.

Writes ``continual-cases.md`` (a table per task), ``continual-cases.png`` (the same grid) and
``continual-cases.json`` into ``--out`` (default: the first run folder).
"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path
from typing import Any

from radiolm.analysis.continual_run import ContinualRun, parse_named_run, read_continual_run
from radiolm.errors import RadioLMError
from radiolm.metrics.evaluate import read_predictions
from radiolm.wandb_run import log_analysis

__all__ = ["NAME", "cjk_font", "collect_cases", "main", "markdown", "wrap"]

NAME = "continual-cases"
REFERENCE = "Reference"

# Families that carry CJK glyphs, in order of preference (matplotlib's DejaVu Sans has none).
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "AR PL UMing CN",
    "Droid Sans Fallback",
)


def collect_cases(
    runs: list[tuple[str, ContinualRun]], stage: int, chosen: dict[str, str], split: str = "test"
) -> list[dict[str, Any]]:
    """One case per task ``s <= stage``: the study, its reference and every run's prediction after ``stage``.

    Args:
        runs: ``(name, run)`` in column order; the runs must have the same tasks.
        stage: 1-based stage whose tests are read.
        chosen: ``task -> study id`` to show; other tasks get the first id (sorted) that every run tested.
        split: The predictions' split.

    Returns:
        ``[{"task", "id", "language", "reference", "predictions": {name: text}, "files": {name: path}}]``.
    """
    tasks = runs[0][1].tasks
    cases = []
    for s in range(1, stage + 1):
        task = tasks[s - 1]
        by_run: dict[str, dict[str, dict[str, Any]]] = {}
        files: dict[str, str] = {}
        for name, run in runs:
            path = run.predictions(stage, s, split)
            by_run[name] = {str(r["id"]): r for r in read_predictions(path)}
            files[name] = str(path)
        common = sorted(set.intersection(*(set(records) for records in by_run.values())))
        if task in chosen:
            study = chosen[task]
            missing = [name for name, records in by_run.items() if study not in records]
            if missing:
                raise RadioLMError(
                    f"--case {task}={study}: runs {missing} did not test this study ({files[missing[0]]})"
                )
        elif common:
            study = common[0]
        else:
            raise RadioLMError(f"task {task}: no study was tested by every run ({', '.join(files.values())})")
        first = by_run[runs[0][0]][study]
        references = {str(records[study]["reference"]) for records in by_run.values()}
        if len(references) > 1:
            raise RadioLMError(
                f"task {task}, study {study}: the runs' references differ ({', '.join(files.values())}); compare "
                "runs trained on the same data"
            )
        cases.append(
            {
                "task": task,
                "id": study,
                "language": str(first.get("language") or "en"),
                "reference": str(first["reference"]),
                "predictions": {name: str(records[study]["prediction"]) for name, records in by_run.items()},
                "files": files,
            }
        )
    return cases


def _cell(text: str) -> str:
    """Text as one markdown table cell (pipes escaped, newlines as spaces)."""
    return " ".join(text.split()).replace("|", "\\|") or "(empty)"


def markdown(cases: list[dict[str, Any]], names: list[str], title: str) -> str:
    """A table per task: the study, then reference and each run's report side by side."""
    lines = [f"# {title}", ""]
    for case in cases:
        lines += [f"## {case['task']} (study {case['id']}, {case['language']})", ""]
        lines.append("| " + " | ".join([REFERENCE, *names]) + " |")
        lines.append("|" + "---|" * (1 + len(names)))
        cells = [case["reference"], *(case["predictions"][n] for n in names)]
        lines += ["| " + " | ".join(_cell(c) for c in cells) + " |", ""]
    return "\n".join(lines)


def wrap(text: str, width: int) -> str:
    """Lines of at most about ``width`` columns: at spaces for space-separated text, else every ``width // 2``
    characters (CJK characters are two columns wide)."""
    text = " ".join(text.split())
    if not text:
        return "(empty)"
    if " " in text and max(len(w) for w in text.split()) <= width:
        return "\n".join(textwrap.wrap(text, width))
    step = max(1, width // 2 if any(ord(c) > 0x2E80 for c in text) else width)
    return "\n".join(text[i : i + step] for i in range(0, len(text), step))


def cjk_font() -> str | None:
    """The first installed font family of :data:`CJK_FONTS`, ``None`` when none is (Chinese then shows as boxes)."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


def plot(cases: list[dict[str, Any]], names: list[str], title: str, path: Path) -> str | None:
    """The grid of Fig. 3 as a PNG: a row per task, a column for the reference and each run. Returns the CJK font
    used (``None``: none installed)."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    font = cjk_font()
    family = ["DejaVu Sans", font] if font else ["DejaVu Sans"]
    columns = [REFERENCE, *names]
    width = 46
    texts = [[wrap(c["reference"], width), *(wrap(c["predictions"][n], width) for n in names)] for c in cases]
    heights = [max(t.count("\n") + 1 for t in row) for row in texts]
    fig, axes = plt.subplots(
        len(cases),
        len(columns),
        figsize=(3.6 * len(columns), 0.6 + sum(0.16 * h + 0.45 for h in heights)),
        gridspec_kw={"height_ratios": [0.16 * h + 0.45 for h in heights]},
        squeeze=False,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from")  # no CJK font: boxes, said in the title
        for r, case in enumerate(cases):
            for c, column in enumerate(columns):
                ax = axes[r][c]
                ax.set_axis_off()
                head = f"{case['task']} ({case['id']})  {column}" if c == 0 else column
                ax.set_title(head, fontsize=8, loc="left", fontweight="bold")
                ax.text(0, 1, texts[r][c], va="top", ha="left", fontsize=7, family=family, transform=ax.transAxes)
        note = "" if font or not any(c["language"].startswith("zh") for c in cases) else " (no CJK font: see the .md)"
        fig.suptitle(title + note, fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return font


def _parse_case(value: str) -> tuple[str, str]:
    task, sep, study = value.partition("=")
    if not sep or not task or not study:
        raise RadioLMError(f"--case {value!r}: write TASK=STUDY_ID, e.g. --case XE1=s50414267")
    return task, study


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"radiolm analyze {NAME}", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, metavar="[NAME=]DIR", help="a continual run folder")
    parser.add_argument("--stage", type=int, default=None, help="1-based stage (default: the last all runs finished)")
    parser.add_argument("--case", action="append", default=[], metavar="TASK=ID", help="the study shown for TASK")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the first run folder)")
    args = parser.parse_args(argv)
    runs: list[tuple[str, ContinualRun]] = []
    for value in args.run:
        name, folder = parse_named_run(value)
        run = read_continual_run(folder)
        runs.append((name or folder.name, run))
    names = [name for name, _ in runs]
    if len(set(names)) != len(names):
        raise RadioLMError(f"--run names repeat ({names}); name them: --run CMRG-LLM=DIR --run SeqFT=DIR")
    tasks = runs[0][1].tasks
    for name, run in runs[1:]:
        if run.tasks != tasks:
            raise RadioLMError(f"--run {name}: its tasks {run.tasks} differ from {tasks} ({runs[0][1].run_dir})")
    stage = args.stage if args.stage is not None else min(run.done for _, run in runs)
    for _, run in runs:
        run.stage(stage)  # a clear error when a run has not finished it
    pairs = [_parse_case(v) for v in args.case]
    chosen = dict(pairs)
    if len(chosen) != len(pairs):
        raise RadioLMError(f"--case names a task twice ({args.case}): one study per task")
    unknown = sorted(set(chosen) - set(tasks[:stage]))
    if unknown:
        raise RadioLMError(f"--case {unknown}: not a task tested after stage {stage} ({tasks[:stage]})")
    # the sequence tests every seen task after each stage; it writes test predictions only
    cases = collect_cases(runs, stage, chosen, "test")
    title = f"After stage {stage} ({tasks[stage - 1]}): one test study per task"
    out: Path = args.out or runs[0][1].run_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{NAME}.md").write_text(markdown(cases, names, title) + "\n", encoding="utf-8")
    font = plot(cases, names, title, out / f"{NAME}.png")
    summary = {
        "stage": stage,
        "task": tasks[stage - 1],
        "split": "test",
        "runs": {name: str(run.run_dir) for name, run in runs},
        "chosen": {"given": chosen, "others": "the first id every run tested (sorted)"},
        "cjk_font": font,
        "cases": cases,
    }
    (out / f"{NAME}.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    log_analysis(NAME, runs[0][1].run_dir, out / f"{NAME}.png", out / f"{NAME}.json")
    print(f"{NAME}: {len(cases)} tasks after stage {stage}; wrote {out / NAME}.md, .png and .json")
