"""`--pilot N` and `--limit N`: a stratified, seeded sample of every model x design x cell
that can show an effect, recorded as a pilot; the full run later reuses its answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runhelpers import cli

import llmexp
from llmexp.errors import RunError
from llmexp.runner import run_study
from llmexp.runner.sampling import spread, stratified, take

QUICK = Path(__file__).parents[2] / "studies" / "demand_quick.study"


def _levels(rows) -> set[float]:
    """The distinct price levels the selected single-condition trials ask about."""
    return {c["levels"]["price"] for r in rows if r["cell"] is not None for c in json.loads(r["conditions"])}


def _coverage(rows) -> tuple[set[str], set[float]]:
    return {r["design"] for r in rows}, _levels(rows)


def test_pilot_20_of_demand_quick_covers_every_design_and_spans_the_levels():
    study = llmexp.load(QUICK)
    plan = run_study(study, run_dir=Path("unused-run-dir"), pilot=20, dry_run=True, progress=False)
    designs, levels = _coverage(plan.rows)
    assert len(plan.rows) == 20
    assert designs == {d.name for d in study.designs}  # all 4 designs
    assert len(levels) >= 5 and {0.0, 2.0} <= levels  # the lowest and the highest price among them
    for design in ("blind", "unblinded", "competitor_fixed"):  # each between design alone spans the range
        rows = [r for r in plan.rows if r["design"] == design]
        own = _levels(rows)
        assert len(own) == len(rows) >= 3 and min(own) == 0.0 and max(own) == 2.0  # every pick a new level
    assert all(r["kind"] == "outcome" for r in plan.rows)  # outcomes before any probe


def test_the_first_rows_of_the_trial_table_would_fail_that_check():
    """The coverage check can fail: the first 20 compiled trials are one design's lowest
    cells (and their probes), never the highest price."""
    trials = llmexp.compile(llmexp.load(QUICK))
    designs, levels = _coverage(trials.head(20).to_dict("records"))
    assert designs == {"blind"} and max(levels) < 2.0


def test_limit_samples_the_same_stratified_order_and_is_seeded():
    study = llmexp.load(QUICK)
    picks = lambda s, n: [r["trial_id"] for r in run_study(s, run_dir=Path("unused"), limit=n, dry_run=True).rows]  # noqa: E731
    assert picks(study, 20) == [r["trial_id"] for r in run_study(study, run_dir=Path("unused"), pilot=20, dry_run=True).rows]
    assert picks(study, 20) == picks(study, 20)  # deterministic
    other = study.model_copy(update={"seed": study.seed + 1})  # same trials (no persona draws), another seed
    assert set(llmexp.compile(other)["trial_id"]) == set(llmexp.compile(study)["trial_id"])
    arms = lambda s: [(r["design"], r["cell"], r["unit_id"]) for r in run_study(s, run_dir=Path("unused"), limit=20, dry_run=True).rows]  # noqa: E731
    mine, theirs = arms(study), arms(other)
    assert [a[:2] for a in mine] == [a[:2] for a in theirs]  # the same designs and cells...
    assert [a[2] for a in mine] != [a[2] for a in theirs]  # ...but the seed chooses the units within them
    assert picks(study, 8) == picks(study, 20)[:8]  # a smaller sample is a prefix of a larger one


def test_spread_orders_cells_ends_first_then_midpoints():
    assert spread(11) == [0, 10, 5, 2, 7, 1, 3, 6, 8, 4, 9]
    assert spread(2) == [0, 1] and spread(1) == [0] and spread(0) == []
    assert sorted(spread(37)) == list(range(37))


def _row(tid, design="d", cell="c=1", kind="outcome", target="y", follows=None, model="m"):
    return {"trial_id": tid, "model": model, "design": design, "cell": cell, "kind": kind, "target": target, "follows": follows}


def test_a_limit_never_splits_a_respondent_of_a_sequence():
    rows = []
    for i in range(6):  # six respondents answering a 3-question sequence, in two cells
        cell = f"c={i % 2}"
        rows += [_row(f"r{i}q1", cell=cell), _row(f"r{i}q2", cell=cell, follows=f"r{i}q1"), _row(f"r{i}q3", cell=cell, follows=f"r{i}q2")]
    chosen = take(stratified(rows, seed=0), 7)
    ids = [r["trial_id"] for r in chosen]
    assert len(ids) == 6  # two whole respondents; a third would pass the limit
    assert {i[:2] for i in ids} == {ids[0][:2], ids[3][:2]} and all(f"{i[:2]}q{k}" in ids for i in ids for k in (1, 2, 3))
    assert {r["cell"] for r in chosen} == {"c=0", "c=1"}  # one respondent from each cell


def test_outcomes_of_every_cell_come_before_the_second_answer_of_any():
    rows = [_row(f"{k}{c}{u}", cell=f"c={c}", kind=k, target=k) for c in range(3) for u in range(2) for k in ("outcome", "probe")]
    order = [g[0] for g in stratified(rows, seed=1)]
    assert [r["kind"] for r in order[:3]] == ["outcome"] * 3 and len({r["cell"] for r in order[:3]}) == 3
    assert [r["kind"] for r in order[3:6]] == ["probe"] * 3


def test_pilot_and_limit_together_or_a_zero_pilot_are_refused():
    study = llmexp.load(QUICK)
    with pytest.raises(RunError, match="^--pilot and --limit both choose a sample of the trials: give one of them$"):
        run_study(study, run_dir=Path("unused"), pilot=5, limit=5, dry_run=True)
    with pytest.raises(RunError, match="^--pilot must be at least 1$"):
        run_study(study, run_dir=Path("unused"), pilot=0, dry_run=True)


def test_a_pilot_is_recorded_and_the_full_run_reuses_its_answers(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["run", QUICK, "--model", "synthetic/respondent", "-o", out, "--quiet", "--no-cache"]
    assert cli([*base, "--pilot", "20"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["pilot"]["requested"] == 20 and manifest["pilot"]["trials_selected"] == 20
    assert manifest["pilot"]["trials_in_study"] == manifest["trials_in_study"] == 468
    assert manifest["sessions"][0]["pilot"] == 20
    pilot_answers = {r["trial_id"]: r["raw_text"] for r in llmexp.open_run(out).to_pandas().to_dict("records")}
    capsys.readouterr()
    assert cli(["results", out]) == 0
    assert "  pilot: 20 of the study's 468 trials (the same command without --pilot asks the rest" in capsys.readouterr().out

    assert cli(base) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["pilot"] is None and manifest["sessions"][0]["pilot"] == 20  # history kept
    assert [s["calls_done"] for s in manifest["sessions"]] == [20, 448]  # the pilot's 20 were not asked again
    capsys.readouterr()
    assert cli(["results", out]) == 0 and "pilot:" not in capsys.readouterr().out
    full = llmexp.open_run(out).to_pandas()
    assert len(full) == 468
    assert {t: full.set_index("trial_id").loc[t, "raw_text"] for t in pilot_answers} == pilot_answers
    assert "--pilot" in cli_help(capsys) and "reuses its answers" in cli_help(capsys)


def cli_help(capsys) -> str:
    capsys.readouterr()
    cli(["run", "--help"])
    return " ".join(capsys.readouterr().out.split())
