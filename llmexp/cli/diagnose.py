"""CLI command of the diagnose stage: `llmexp diagnose FILE`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from llmexp.diagnose.errors import DiagnoseError


def _params(effect, leakage, focalism, noise, param: list[str] | None) -> dict:
    out: dict = {}
    for item in param or []:
        if "=" not in item:
            raise DiagnoseError(f"--param {item!r}: use name=value, e.g. --param confound=0.5")
        name, value = item.split("=", 1)
        name = name.strip()
        try:
            out[name] = float(value)
        except ValueError:
            raise DiagnoseError(f"--param {item!r}: {value!r} is not a number") from None
    for name, value in (("effect", effect), ("leakage", leakage), ("focalism", focalism), ("noise", noise)):
        if value is not None:
            out[name] = float(value)
    return out


def _fmt(v, digits: int = 3) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return ""
    if v != v:
        return "-"
    if abs(v) < 0.5 * 10 ** -digits:
        v = 0.0
    return f"{v:.{digits}f}"


def _short(text, n: int = 40) -> str:
    if not isinstance(text, str):
        return ""
    return text if len(text) <= n else text[: n - 1] + "…"


def render(diag, console) -> None:
    from rich.table import Table

    t = diag.table
    title = (f"diagnosis of {diag.study.name}: {diag.sims} simulations on the synthetic respondent, "
             f"alpha {diag.alpha}")
    table = Table(title=title, title_justify="left")
    several_models = t["model"].nunique() > 1 if len(t) else False
    cols = ["reps"] + (["model"] if several_models else []) + [
        "design", "estimand", "truth", "mean est", "bias", "RMSE", "power", "coverage", "calls", "cost $"]
    for c in cols:
        table.add_column(c, justify="left" if c in ("design", "estimand", "model") else "right")
    for r in t.to_dict("records"):
        what = r["estimand"] if r["estimand"] != "leakage" else f"leakage {r['target']}"
        if r["estimand"] == "effect":
            what = f"effect {r.get('treatment') or ''}".strip()
            if r.get("term") and r["term"] != "slope":
                what += f" ({_short(r['term'])})"
        elif r["estimand"] == "difference":
            what = f"difference {_short(r.get('term'), 60)}".strip()
        elif r["estimand"] == "focalism":
            what = f"focalism: difference in jumps at {r.get('covariate')}"
        if r["estimand"] != "leakage" and len(diag.study.outcomes) > 1:
            what += f" on {r['target']}"
        if "power" not in r or r.get("power") != r.get("power"):
            cells = [str(r["replicates"])] + ([r["model"]] if several_models else []) + [
                r["design"], what] + ["-"] * 6 + [str(r.get("calls", "")), _fmt(r.get("cost"), 4)]
            table.add_row(*cells)
            continue
        power = f"{_fmt(r['power'], 2)}±{_fmt(r['power_mcse'], 2)}"
        if r.get("meets_power"):
            power += " *"
        cells = [str(r["replicates"])] + ([r["model"]] if several_models else []) + [
            r["design"], what, _fmt(r["truth"]), _fmt(r["mean_estimate"]), _fmt(r["bias"]),
            _fmt(r["rmse"]), power, _fmt(r["coverage"], 2), str(r.get("calls", "")),
            _fmt(r.get("cost"), 4)]
        table.add_row(*cells)
    console.print(table)
    if diag.power_target is not None:
        console.print(f"* = the smallest replicates reaching power {diag.power_target} for that estimand"
                      + ("" if diag.table["meets_power"].any() else " (none reached it)"))
    console.print("power ± its Monte Carlo SE; truth: effect = the ideal (unconfounded, non-focal) "
                  "experiment's slope, leakage = the respondent's true leakage index")
    for c in diag.costs.to_dict("records"):
        console.print(f"replicates {c['replicates']}: {c['dry_run_text']}", markup=False, highlight=False)
    params = {m: {k: v for k, v in p.items()} for m, p in diag.params.items()}
    uniq = {json.dumps(p, sort_keys=True) for p in params.values()}
    if len(uniq) == 1:
        p = next(iter(params.values()))
        console.print("respondent: " + " ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else f"{k} {v}"
                                                for k, v in p.items()), markup=False, highlight=False)
    else:
        for m, p in params.items():
            console.print(f"respondent for {m}: " + " ".join(f"{k} {v}" for k, v in p.items()), markup=False)
    if "note" in t:
        for r in t.dropna(subset=["note"]).to_dict("records"):
            console.print(f"note: replicates {r['replicates']}, {r['design']}: {r['note']}", markup=False,
                          highlight=False)
    for n in diag.notes:
        console.print(f"note: {n}", markup=False, highlight=False)
    console.print(f"({diag.seconds:.1f} s)", highlight=False)


def diagnose_command(
    file: Path = typer.Argument(..., help="the .study file"),
    sims: int = typer.Option(200, "--sims", help="simulated data sets per design and replicates setting"),
    replicates: str | None = typer.Option(None, "--replicates", help="sweep replicates, e.g. 1,2,5,10 (default: the study's)"),
    power: float | None = typer.Option(None, "--power", help="power target: mark the smallest replicates reaching it"),
    effect: float | None = typer.Option(None, "--effect", help="true effect: logit slope per unit of the normalised treatment level"),
    leakage: float | None = typer.Option(None, "--leakage", help="confound leakage in blind designs"),
    focalism: float | None = typer.Option(None, "--focalism", help="weight of the step at a pinned covariate"),
    noise: float | None = typer.Option(None, "--noise", help="sd of the noise on numeric answers and probes"),
    param: list[str] | None = typer.Option(None, "--param", help="any synthetic respondent param, name=value (repeatable)"),
    pilot: Path | None = typer.Option(None, "--pilot", help="estimate effect/leakage/baseline from a (small) real run directory"),
    seed: int = typer.Option(0, "--seed", help="simulation seed"),
    design: list[str] | None = typer.Option(None, "--design", help="only these designs (repeatable or comma-separated)"),
    alpha: float = typer.Option(0.05, "--alpha", help="test level; intervals are 1 - alpha"),
    as_json: bool = typer.Option(False, "--json", help="print the diagnosis as JSON instead of a table"),
    out: Path | None = typer.Option(None, "--out", "-o", help="also write it to FILE.json, .csv or .parquet"),
) -> None:
    """Simulate the study on the synthetic respondent: bias, RMSE, power, coverage and cost per design."""
    from rich.console import Console

    from llmexp.cli.lang import check_file
    from llmexp.diagnose.simulate import diagnose, parse_replicates

    reps = parse_replicates(replicates)
    if out is not None and out.suffix.lower() not in (".json", ".csv", ".parquet"):
        raise DiagnoseError(f"--out {out}: use a .json, .csv or .parquet file name")
    designs = [d.strip() for item in design or [] for d in item.split(",") if d.strip()] or None
    study = check_file(file)[0]
    overrides: dict = {}
    notes = []
    if pilot is not None:
        from llmexp.diagnose.pilot import pilot_params

        est = pilot_params(pilot, study)
        overrides.update(est.params)
        notes.extend(est.notes)
    overrides.update(_params(effect, leakage, focalism, noise, param))
    diag = diagnose(study, sims=sims, replicates=reps, params=overrides, seed=seed, designs=designs,
                    alpha=alpha, power_target=power)
    diag.notes = notes + diag.notes
    if as_json:
        typer.echo(json.dumps(diag.to_dict(), indent=2))
    else:
        render(diag, Console(highlight=False, width=200 if not Console().is_terminal else None))
    if out is not None:
        path = diag.write(out)
        if not as_json:
            typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("diagnose")(diagnose_command)
