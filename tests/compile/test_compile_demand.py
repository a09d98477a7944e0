"""The demand study's trial table: what each blinding mode may and may not say, and how
many trials each design makes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llmexp import check as check_study
from llmexp import check_text
from llmexp import expr as ex
from llmexp.compiler import compile_study

STUDIES = Path(__file__).resolve().parents[2] / "studies"
DEMAND = STUDIES / "demand_curve.study"
LEAKY = re.compile(r"condition|treatment|random|levels", re.IGNORECASE)
PRICE = re.compile(r"\$\d[\d,]*(?:\.\d+)?")


@pytest.fixture(scope="module")
def study():
    return check_study(DEMAND)[0]


@pytest.fixture(scope="module")
def trials(study):
    return compile_study(study)


def user_text(row) -> str:
    return next(m["content"] for m in json.loads(row["messages"]) if m["role"] == "user")


def all_text(row) -> str:
    return "\n".join(m["content"] for m in json.loads(row["messages"]))


def shown_price(row) -> str:
    (condition,) = json.loads(row["conditions"])
    return ex.format_value(condition["values"]["price"], "money")


def test_the_demand_study_has_the_designs_these_tests_expect(study):
    modes = {d.name: d.mode for d in study.designs}
    assert modes == {
        "blind": "blind", "unblinded": "unblinded", "within": "within", "aggregate": "aggregate",
        "personas": "blind", "competitor_fixed": "blind", "aggregate_split": "aggregate",
    }
    assert study.design("competitor_fixed").pins and study.design("personas").persona == "shopper"


def test_blind_prompts_reveal_nothing_of_the_design(study, trials):
    blind = trials[trials["mode"] == "blind"]
    assert len(blind) > 0
    for _, row in blind.iterrows():
        text = all_text(row)
        assert not LEAKY.search(text), (row["design"], LEAKY.search(text).group(0), text)


def test_blind_prompts_show_one_price_their_own(study, trials):
    pinned_text = {c.name: c.text for c in study.covariates}
    blind = trials[trials["mode"] == "blind"]
    for _, row in blind.iterrows():
        text = user_text(row)
        pinned = json.loads(row["pinned"])
        for name, value in pinned.items():  # a stated covariate is the one allowed extra amount
            sentence = pinned_text[name].replace("{" + name + "}", ex.format_value(value, "money"))
            assert sentence in text
            text = text.replace(sentence, "")
        if isinstance(row["persona"], str):  # the persona's own paragraph (e.g. its income) comes first
            persona_paragraph, text = text.split("\n\n", 1)
            assert shown_price(row) not in persona_paragraph
        prices = PRICE.findall(text)
        assert prices == [shown_price(row)], (row["design"], row["cell"], text)


def test_pinned_design_states_the_competitor_price(trials):
    rows = trials[trials["design"] == "competitor_fixed"]
    for _, row in rows.head(30).iterrows():
        unit = json.loads(row["unit"])
        assert json.loads(row["pinned"]) == {"competitor_price": unit["regular_price"]}
        assert f"costs {ex.format_value(unit['regular_price'], 'money')}." in user_text(row)


@pytest.mark.parametrize("mode", ["unblinded", "within", "aggregate"])
def test_unblinded_modes_state_the_range_and_the_randomization(trials, mode):
    rows = trials[trials["mode"] == mode]
    assert len(rows) > 0
    for _, row in rows.iterrows():
        text = user_text(row)
        unit = json.loads(row["unit"])
        split = json.loads(row["split"]) if isinstance(row["split"], str) else [0, 2]  # None reads as NaN
        low = ex.format_value(unit["regular_price"] * split[0], "money")
        high = ex.format_value(round(unit["regular_price"] * split[1], 6), "money")
        assert "drawn at random" in text
        assert "did not know that it had been randomized" in text
        assert f"So it ranged from {low} to {high}." in text, text


def test_multi_condition_prompts_list_every_condition(trials):
    for mode in ("within", "aggregate"):
        for _, row in trials[trials["design"] == mode].iterrows():
            conditions = json.loads(row["conditions"])
            assert len(conditions) == 11
            text = user_text(row)
            for i, condition in enumerate(conditions, start=1):
                assert f"\n{i}) price {ex.format_value(condition['values']['price'], 'money')}" in text


def test_between_designs_have_40_units_by_11_prices_per_replicate_and_draw(study, trials):
    for design in study.designs:
        if design.mode not in ("blind", "unblinded"):
            continue
        rows = trials[(trials["design"] == design.name) & (trials["kind"] == "outcome")]
        draws = study.persona(design.persona).count if design.persona else 1
        assert len(rows) == 40 * 11 * draws, design.name
        per_cell = rows.groupby(["unit_id", "cell", "replicate"]).size()
        assert len(per_cell) == 40 * 11 and set(per_cell) == {draws}, design.name


def test_replicates_multiply_trials(study):
    model = study.models[0].model_copy(update={"replicates": 3})
    trials = compile_study(study, designs=["blind", "aggregate"], models=[model])
    blind = trials[(trials["design"] == "blind") & (trials["kind"] == "outcome")]
    assert len(blind) == 40 * 11 * 3
    assert blind.groupby("replicate").size().to_dict() == {0: 440, 1: 440, 2: 440}
    assert blind["trial_id"].is_unique
    assert len(trials[trials["design"] == "aggregate"]) == 40 * 3


def test_multi_condition_designs_have_one_trial_per_unit(trials):
    assert len(trials[trials["design"] == "within"]) == 40
    assert len(trials[trials["design"] == "aggregate"]) == 40
    assert len(trials[trials["design"] == "aggregate_split"]) == 80  # two parts per unit


def test_probes_only_in_designs_with_probes(study, trials):
    probes = trials[trials["kind"] == "probe"]
    assert set(probes["design"]) == {"blind", "unblinded"}  # personas/competitor_fixed: without probes
    for design in ("blind", "unblinded"):
        rows = probes[probes["design"] == design]
        assert rows.groupby("target").size().to_dict() == {
            "competitor_price": 440, "days_to_expiry": 440, "past_price": 440,
        }
    for _, row in probes[probes["design"] == "blind"].head(50).iterrows():
        assert "Fill in the blank:" in user_text(row)


def test_probes_never_ask_about_a_pinned_covariate():
    text = DEMAND.read_text() + "design pinned_with_probes: blind with competitor_price = products.regular_price\n"
    study, _ = check_text(text, str(DEMAND))
    trials = compile_study(study, designs=["pinned_with_probes"])
    probes = trials[trials["kind"] == "probe"]
    assert set(probes["target"]) == {"past_price", "days_to_expiry"}
    assert len(probes) == 2 * 440
    assert (trials["pinned"] != "{}").all()


def test_demand_quick_is_small_and_covers_the_quick_designs():
    study, _ = check_study(STUDIES / "demand_quick.study")
    trials = compile_study(study)
    assert 300 <= len(trials) <= 500
    assert set(trials["design"]) == {"blind", "unblinded", "aggregate", "competitor_fixed"}
    assert set(trials["unit_id"]) == {"pain_remedies", "soft_drinks", "cereal", "bottled_water", "eggs", "fresh_fruit"}
    assert study.models[0].name == "llmexp/gemma3-270m" and study.models[0].replicates == 1
    assert study.analyses == ("demand_curve", "effects", "leakage", "focalism", "baseline")
