"""CLI commands of the language stage: `check` and `compile`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from llmexp.errors import MAX_SHOWN_PROBLEMS, Problem, shown_problems
from llmexp.spec import Study

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def check_file(file: Path) -> tuple[Study, list[Problem]]:
    """(study, warnings) of a study file, validated against every registered analysis and
    the providers' `custom_params`: the CLI is a composition root, so it hands the language
    layer the analysis catalogue and that capability."""
    from llmexp import providers
    from llmexp.analysis import catalogue
    from llmexp.lang import check_study

    return check_study(file, analyses=catalogue(), custom_params=lambda m: providers.for_model(m).custom_params)


def print_problems(problems: list[Problem]) -> None:
    """One line per problem, the first `MAX_SHOWN_PROBLEMS` of them, then a count of the rest."""
    lines = shown_problems(problems)
    for index, line in enumerate(lines):
        severity = problems[index].severity if index < MAX_SHOWN_PROBLEMS else "warning"
        err_console.print(line, style="yellow" if severity == "warning" else "red", markup=False, soft_wrap=True)


def estimate_tokens(trials) -> int:
    """Prompt tokens, roughly (4 characters a token), over the whole trial table."""
    return int(trials["messages"].str.len().sum() / 4)


def summary_table(study, trials) -> Table:
    table = Table(title=f"trials of study '{study.name}'", show_lines=False)
    for column in ("design", "mode", "model", "outcome calls", "probe calls", "prompt tokens (est.)"):
        table.add_column(column, justify="right" if "calls" in column or "tokens" in column else "left")
    grouped = trials.groupby(["design", "mode", "model"], sort=False)
    for (design, mode, model), group in grouped:
        table.add_row(
            design,
            mode,
            model,
            f"{(group['kind'] == 'outcome').sum():,}",
            f"{(group['kind'] == 'probe').sum():,}",
            f"{estimate_tokens(group):,}",
        )
    outcomes, probes = (trials["kind"] == "outcome").sum(), (trials["kind"] == "probe").sum()
    table.add_row("total", "", "", f"{outcomes:,}", f"{probes:,}", f"{estimate_tokens(trials):,}")
    return table


def describe_study(study) -> list[str]:
    from llmexp import expr as ex

    lines = [f"study {study.name!r} (hash {study.hash()}, seed {study.seed})"]
    if study.description:
        lines.append(f"  {study.description}")
    source = f" from {study.units.source}" if study.units.source else ""
    lines.append(f"units: {len(study.units.rows)} {study.units.name}{source} (key {study.units.key})")
    for t in study.treatments:
        shown = ", ".join(ex.format_number(v) if isinstance(v, (int, float)) else str(v) for v in t.levels)
        value = f" shown as {ex.describe(t.value)}" if t.value is not None else ""
        lines.append(f"treatment {t.name}: {len(t.levels)} levels ({shown}){value}, {t.assignment}-subject")
    cells = len(study.cells) if study.cells is not None else None
    if cells is None:
        cells = 1
        for t in study.treatments:
            cells *= len(t.levels)
    lines.append(f"cells: {cells} ({'listed' if study.cells is not None else 'full factorial'})")
    for c in study.covariates:
        kind = "specified" if c.specified else "unspecified"
        probe = f", probed as {c.probe.answer.type}" if c.probe else ""
        lines.append(f"covariate {c.name}: {kind}{probe}")
    for o in study.outcomes:
        labels = f" ({' / '.join(o.answer.labels)})" if o.answer.labels else ""
        lines.append(f"outcome {o.name}: {o.answer.type}{labels}")
    for p in study.personas:
        lines.append(f"persona {p.name}: {p.count} per cell, {len(p.attributes) or len(p.rows or [])} {'attributes' if p.attributes else 'rows'}")
    for d in study.designs:
        extra = []
        if d.persona:
            extra.append(f"persona {d.persona}")
        extra += [f"pins {name}" for name in d.pins]
        extra += [f"split {lo:g}-{hi:g}" for lo, hi in d.split]
        if not d.probes:
            extra.append("no probes")
        lines.append(f"design {d.name}: {d.mode}" + (f" ({', '.join(extra)})" if extra else ""))
    for m in study.models:
        params = " ".join(f"{k}={v}" for k, v in m.params.items())
        lines.append(f"model {m.name} {params} replicates {m.replicates}")
    if study.baseline:
        lines.append(f"baseline: {study.baseline.source} ({len(study.baseline.rows)} rows)")
    if study.analyses:
        lines.append(f"analyses: {', '.join(study.analyses)}")
    return lines


def check(
    file: Path = typer.Argument(..., help="The .study file to validate."),
    spec_out: Path | None = typer.Option(None, "--spec", help="Also write the validated spec as JSON here."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary instead of tables."),
    strict: bool = typer.Option(False, "--strict", help="Treat warnings as errors (exit 2)."),
    ast_out: Path | None = typer.Option(None, "--ast", help="Also write the parsed syntax tree as JSON here."),
) -> None:
    """Validate a study and summarize it: units, cells, trials per design, calls and tokens.

    Every error is listed with file:line:column; the exit status is 2 if there is any.
    """
    from llmexp.compiler import compile_study

    if ast_out:
        write_ast(file, ast_out)
    study, warnings = check_file(file)
    print_problems(warnings)
    trials = compile_study(study)
    if spec_out:
        spec_out.write_text(json.dumps(study.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
    estimate = _cost_estimate(study, trials)
    if as_json:
        summary = {
            "study": study.name,
            "hash": study.hash(),
            "units": len(study.units.rows),
            "designs": {
                d: {
                    "mode": g["mode"].iloc[0],
                    "calls": int(len(g)),
                    "outcome_calls": int((g["kind"] == "outcome").sum()),
                    "probe_calls": int((g["kind"] == "probe").sum()),
                }
                for d, g in trials.groupby("design", sort=False)
            },
            "calls": int(len(trials)),
            "prompt_tokens_estimate": estimate_tokens(trials),
            "cost_estimate": estimate,
            "warnings": [str(w) for w in warnings],
        }
        console.print_json(json.dumps(summary))
    else:
        for line in describe_study(study):
            console.print(line, markup=False)
        console.print(summary_table(study, trials))
        cost = f", estimated cost ${estimate:,.2f}" if estimate is not None else ""
        console.print(f"{len(trials):,} calls, about {estimate_tokens(trials):,} prompt tokens{cost}", markup=False)
        console.print(f"ok: {file} is valid" + (f" ({len(warnings)} warning(s))" if warnings else ""), markup=False)
    if strict and warnings:
        # (typer.Exit would be swallowed: llmexp.cli.main runs the app with standalone_mode=False)
        from llmexp.errors import LlmexpError

        raise LlmexpError(f"--strict: {len(warnings)} warning(s) count as errors")


def write_ast(file: Path, out: Path) -> None:
    """The parse stage's artifact: every statement with its positions, as JSON."""
    import dataclasses

    from llmexp.lang.parser import parse_file

    tree = parse_file(file)
    statements = [{"statement": type(s).__name__, **dataclasses.asdict(s)} for s in tree.statements]
    out.write_text(json.dumps({"path": tree.path, "statements": statements}, indent=1, default=str) + "\n")


def _cost_estimate(study, trials) -> float | None:
    try:
        from llmexp.runner.cost import estimate_cost
    except ImportError:
        return None
    try:
        estimate = estimate_cost(study, trials)
    except Exception:  # an estimate must never break `check`
        return None
    return None if estimate.unpriced else float(estimate.total)  # a partial sum would understate the cost


def compile_command(
    file: Path = typer.Argument(..., help="The .study file to compile."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the trial table to a .jsonl or .parquet file."),
    show: int = typer.Option(0, "--show", help="Print N sample prompts per design."),
    design: list[str] | None = typer.Option(None, "--design", "-d", help="Only these designs (repeatable)."),
) -> None:
    """Render every trial to its exact prompt: one row per model call.

    The table is deterministic: compiling twice gives byte-identical output.
    """
    from llmexp.compiler import compile_study, write_trials

    study, warnings = check_file(file)
    print_problems(warnings)
    trials = compile_study(study, designs=design)
    if show:
        for name, group in trials.groupby("design", sort=False):
            for _, row in group.head(show).iterrows():
                header = f"design {name} ({row['mode']}) | unit {row['unit_id']}"
                if isinstance(row["cell"], str) and row["cell"]:  # None/NaN for multi-condition trials
                    header += f" | {row['cell']}"
                header += f" | {row['kind']} {row['target']} | trial {row['trial_id']}"
                console.rule(header)
                for message in json.loads(row["messages"]):
                    console.print(f"[{message['role']}]", style="bold", markup=False)
                    console.print(message["content"], markup=False)
    if out:
        write_trials(trials, out)
        console.print(f"wrote {len(trials):,} trials to {out}", markup=False)
    elif not show:
        console.print(f"{len(trials):,} trials compiled (use -o FILE to write them, --show N to see prompts)", markup=False)


def register(app: typer.Typer) -> None:
    app.command("check")(check)
    app.command("compile")(compile_command)
