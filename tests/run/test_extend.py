"""Extending a finished run in place: a study that only adds trials (a replicate, a design,
a model) reuses every stored answer and calls only the new trials, counted at a fake
server; a study that drops or changes a stored trial is refused, saying what differs."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest
from runhelpers import cli, write_study_file

import llmexp
from llmexp.errors import RunError
from llmexp.runner import run_study
from tests.support.fake_openai import FakeOpenAI

TRIALS = 2 * 4  # units x price levels of the study runhelpers writes


@pytest.fixture(autouse=True)
def _fake_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-key-for-tests")


def _edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def _manifest(run_dir) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def _run(study, out) -> int:
    return cli(["run", study, "-o", out, "--quiet"])


def _alternating():
    """A respondent whose answer to the same prompt alternates (replicates differ)."""
    seen: dict[str, int] = {}

    def answer(messages) -> str:
        key = json.dumps(messages, sort_keys=True)
        seen[key] = seen.get(key, 0) + 1
        return "yes" if seen[key] % 2 else "no"

    return answer


def test_one_more_replicate_makes_only_the_new_calls_and_analyses_all(tmp_path, capsys):
    out = tmp_path / "run"
    with FakeOpenAI(responder=_alternating()) as server:
        study = write_study_file(tmp_path, server.api_base)
        assert _run(study, out) == 0
        assert server.total == TRIALS
        first = _manifest(out)
        _edit(study, "replicates 1", "replicates 2")
        assert _run(study, out) == 0
        assert server.total == 2 * TRIALS  # the stored 8 answers were not asked again
        assert _run(study, out) == 0  # and once extended, the same command resumes: no call
        assert server.total == 2 * TRIALS
    manifest = _manifest(out)
    assert manifest["study_hash"] != first["study_hash"] and manifest["spec"]["models"][0]["replicates"] == 2
    [ext] = manifest["extensions"]
    assert ext["from_hash"] == first["study_hash"] and ext["to_hash"] == manifest["study_hash"]
    assert ext["changes"] == ["models[0].replicates: 1 -> 2"]
    assert (ext["trials_stored_before"], ext["trials_in_study_before"], ext["trials_in_study_after"], ext["trials_added"]) == (8, 8, 16, 8)
    assert ext["trials_added_by_arm"] == {"openai/fake-model / blind": 8}
    assert [s["calls_done"] for s in manifest["sessions"]] == [8, 8, 0]

    results = llmexp.open_run(out)
    outcomes = results.outcomes()
    assert len(outcomes) == 16 and sorted(outcomes["replicate"].unique()) == [0, 1]
    assert results.study.models[0].replicates == 2  # the analysis reads the extended study
    capsys.readouterr()
    assert cli(["analyze", out, "--only", "effects"]) == 0
    effects = pd.read_csv(out / "analysis" / "tables" / "effects.csv")
    assert set(effects["n_obs"]) == {16}  # both replicates, 8 answers each, in one model
    assert cli(["results", out]) == 0
    text = capsys.readouterr().out
    assert "trials 16, calls recorded 16, not yet run 0" in text
    assert f"  extended {ext['at']}: +8 trials (models[0].replicates: 1 -> 2)" in text


def test_a_new_design_and_a_new_model_call_only_their_trials(tmp_path):
    out = tmp_path / "run"
    with FakeOpenAI() as server:
        study = write_study_file(tmp_path, server.api_base)
        assert _run(study, out) == 0
        _edit(study, "modes blind", "modes blind, unblinded")
        assert _run(study, out) == 0
        assert server.total == 2 * TRIALS
        line = f'model "openai/fake-model" api_base "{server.api_base}" temperature 1 max_tokens 4 replicates 1\n'
        _edit(study, line, line + line.replace("fake-model", "fake-model-2"))
        assert _run(study, out) == 0
        assert server.total == 4 * TRIALS
    manifest = _manifest(out)
    added = [e["trials_added_by_arm"] for e in manifest["extensions"]]
    assert added == [
        {"openai/fake-model / unblinded": 8},
        {"openai/fake-model-2 / blind": 8, "openai/fake-model-2 / unblinded": 8},
    ]
    assert manifest["extensions"][0]["changes"] == ["designs: + unblinded"]
    df = llmexp.open_run(out).to_pandas()
    assert len(df) == 32 and df["trial_id"].is_unique and (df["status"] == "ok").all()


def test_fewer_replicates_is_refused_saying_which_trials_would_be_lost(tmp_path, capsys):
    out = tmp_path / "run"
    with FakeOpenAI() as server:
        study = write_study_file(tmp_path, server.api_base)
        _edit(study, "replicates 1", "replicates 2")
        assert _run(study, out) == 0
        before = (out / "manifest.json").read_text()
        _edit(study, "replicates 2", "replicates 1")
        capsys.readouterr()
        assert _run(study, out) == 2
        assert server.total == 16
    err = capsys.readouterr().err
    assert "holds a run of a different study" in err
    assert "8 of its 16 stored trials are not in this study (openai/fake-model / blind: 8)" in err
    assert "the study changed: models[0].replicates: 2 -> 1" in err
    assert (out / "manifest.json").read_text() == before  # nothing recorded, nothing run


def test_a_changed_prompt_is_refused_with_what_changed(tmp_path, capsys):
    out = tmp_path / "run"
    with FakeOpenAI() as server:
        study = write_study_file(tmp_path, server.api_base)
        assert _run(study, out) == 0
        _edit(study, "You see", "You spot")
        capsys.readouterr()
        assert _run(study, out) == 2
        assert server.total == TRIALS
    err = capsys.readouterr().err
    assert "8 of its 8 stored trials are not in this study" in err
    assert "context: 'You see {product_id} for {price}.' -> 'You spot {product_id} for {price}.'" in err


def test_a_stored_trial_asked_differently_under_the_same_id_is_refused(tmp_path):
    """The subset check compares whole rows, not only ids: a stored row altered behind the
    id (here by hand) makes the new study a different one."""
    with FakeOpenAI() as server:
        study = write_study_file(tmp_path, server.api_base)
        out = tmp_path / "run"
        assert _run(study, out) == 0
        with sqlite3.connect(out / "store.sqlite") as db:
            seq, row, tid = db.execute("SELECT seq, row, trial_id FROM trials ORDER BY seq LIMIT 1").fetchone()
            data = json.loads(row)
            data["unit_id"] = "someone-else"
            db.execute("UPDATE trials SET row = ? WHERE seq = ?", (json.dumps(data, sort_keys=True), seq))
        _edit(study, "replicates 1", "replicates 2")
        with pytest.raises(RunError) as info:
            run_study(llmexp.load(study), run_dir=out, progress=False)
        assert server.total == TRIALS
    assert f"1 stored trials would be asked differently (e.g. trial {tid}: unit_id differ)" in str(info.value)


def test_dry_run_of_an_extension_counts_only_new_trials_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    with FakeOpenAI() as server:
        study = write_study_file(tmp_path, server.api_base)
        assert _run(study, out) == 0
        before = (out / "manifest.json").read_text()
        _edit(study, "replicates 1", "replicates 3")
        plan = run_study(llmexp.load(study), run_dir=out, dry_run=True, progress=False)
        assert server.total == TRIALS
    assert (len(plan.rows), plan.pending) == (24, 16)
    assert (out / "manifest.json").read_text() == before


def test_a_moved_study_file_with_a_new_description_extends_with_no_call(tmp_path):
    """Where the file lives is not part of the study; a change outside the trials (here
    the description) is an extension adding no trial: recorded, nothing asked."""
    out = tmp_path / "run"
    with FakeOpenAI() as server:
        study = write_study_file(tmp_path, server.api_base)
        assert _run(study, out) == 0
        (tmp_path / "moved").mkdir()
        moved = tmp_path / "moved" / "tiny.study"
        moved.write_text(study.read_text().replace("  seed 1\n", '  seed 1\n  description "a tiny study"\n'))
        assert _run(moved, out) == 0
        assert server.total == TRIALS
    [ext] = _manifest(out)["extensions"]
    assert ext["changes"] == ["description: '' -> 'a tiny study'"] and ext["trials_added"] == 0


PERSONAS = """study "drawn" seed 4

units products
  row product_id = "p0", regular_price = 2

treatment price = levels(0.5, 1.5) between

persona shopper count {count}
  age: uniform 20 to 70 integer

context "You see {{product_id}} for {{price}}."

outcome purchase: binary "yes" / "no"
  question "Would you buy it?"

design blind: blind with persona shopper

model "synthetic/respondent" replicates {replicates}
"""


@pytest.mark.parametrize(("count", "extends"), [(1, True), (3, False)])
def test_replicates_added_under_several_persona_draws_are_refused(tmp_path, count, extends):
    """docs/scale.md: persona draws are numbered across replicates, so with count > 1 the
    trials already asked change when replicates are added (and the run is not extended)."""
    path = tmp_path / "drawn.study"
    path.write_text(PERSONAS.format(count=count, replicates=1))
    out = tmp_path / "run"
    llmexp.run(path, out=out, quiet=True)
    path.write_text(PERSONAS.format(count=count, replicates=2))
    if extends:
        assert len(llmexp.run(path, out=out, quiet=True).to_pandas()) == 2 * 2 * count
        return
    with pytest.raises(RunError, match=r"4 of its 6 stored trials are not in this study \(synthetic/respondent / blind: 4\)"):
        llmexp.run(path, out=out, quiet=True)
