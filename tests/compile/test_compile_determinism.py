"""Compiling is deterministic, and the seed moves only what is random."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmexp import check as check_study
from llmexp.compiler import compile_study, write_trials

DEMAND = Path(__file__).resolve().parents[2] / "studies" / "demand_curve.study"
RANDOM_COLUMNS = {"trial_id", "cache_key", "messages", "persona", "persona_id", "conditions", "order_seed"}


@pytest.fixture(scope="module")
def study():
    return check_study(DEMAND)[0]


@pytest.fixture(scope="module")
def seeds(study):
    other = study.model_copy(update={"seed": study.seed + 1})
    return compile_study(study), compile_study(other)


def test_compiling_twice_gives_byte_identical_jsonl(study, tmp_path, seeds):
    first = write_trials(seeds[0], tmp_path / "a.jsonl")
    again = write_trials(compile_study(check_study(DEMAND)[0]), tmp_path / "b.jsonl")
    assert first.read_bytes() == again.read_bytes()
    lines = first.read_text().splitlines()
    assert len(lines) == len(seeds[0])
    record = json.loads(lines[0])
    assert list(record) == sorted(record)  # sorted keys


def test_jsonl_differs_when_the_seed_does(tmp_path, seeds):
    a = write_trials(seeds[0], tmp_path / "a.jsonl").read_bytes()
    b = write_trials(seeds[1], tmp_path / "b.jsonl").read_bytes()
    assert a != b


@pytest.mark.parametrize("design", ["blind", "unblinded", "aggregate", "aggregate_split", "competitor_fixed"])
def test_seed_changes_nothing_in_designs_without_randomness(seeds, design):
    a, b = (t[t["design"] == design].reset_index(drop=True) for t in seeds)
    assert len(a) == len(b) > 0
    assert a.equals(b)


def _same_except(a, b, columns):
    keep = [c for c in a.columns if c not in columns]
    return a[keep].equals(b[keep])


def test_seed_changes_persona_draws_and_only_them(seeds):
    a, b = (t[t["design"] == "personas"].reset_index(drop=True) for t in seeds)
    assert len(a) == len(b) == 2200
    assert _same_except(a, b, {"trial_id", "cache_key", "messages", "persona", "persona_id"})
    assert (a["persona"] != b["persona"]).mean() > 0.9
    assert (a["messages"] != b["messages"]).mean() > 0.9
    # the scenario after the persona paragraph is the same text
    strip = lambda m: json.loads(m)[1]["content"].split("\n\n", 1)[1]  # noqa: E731
    assert a["messages"].map(strip).equals(b["messages"].map(strip))


def test_seed_changes_within_prompt_order_and_only_it(seeds):
    a, b = (t[t["design"] == "within"].reset_index(drop=True) for t in seeds)
    assert len(a) == len(b) == 40
    assert _same_except(a, b, {"trial_id", "cache_key", "messages", "conditions", "order_seed"})
    assert (a["order_seed"] != b["order_seed"]).all()
    assert (a["conditions"] != b["conditions"]).mean() > 0.9
    as_set = lambda c: sorted(x["cell"] for x in json.loads(c))  # noqa: E731
    assert a["conditions"].map(as_set).equals(b["conditions"].map(as_set))


def test_order_seed_reproduces_the_shown_order(seeds):
    import numpy as np

    row = seeds[0][seeds[0]["design"] == "within"].iloc[0]
    shown = [c["cell"] for c in json.loads(row["conditions"])]
    natural = [f"price={v}" for v in ("0", "0.2", "0.4", "0.6", "0.8", "1", "1.2", "1.4", "1.6", "1.8", "2")]
    order = np.random.default_rng(int(row["order_seed"])).permutation(len(natural))
    assert shown == [natural[i] for i in order]


def test_trial_ids_are_unique_and_stable(seeds):
    trials = seeds[0]
    assert trials["trial_id"].is_unique
    assert trials["trial_id"].str.fullmatch(r"[0-9a-f]{16}").all()


def test_parquet_round_trip(tmp_path, seeds):
    import pandas as pd

    path = write_trials(seeds[0].head(50), tmp_path / "t.parquet")
    back = pd.read_parquet(path)
    assert list(back["trial_id"]) == list(seeds[0].head(50)["trial_id"])
    assert list(back["messages"]) == list(seeds[0].head(50)["messages"])
