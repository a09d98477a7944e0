"""The synthetic respondent reproduces the parameters it is given, through the whole runner."""

from __future__ import annotations

import asyncio
import json
import math

import litellm
import pytest
from runhelpers import make_study, make_trials

from llmexp import providers
from llmexp.answers import parse_answer
from llmexp.providers.base import extract_probs, trial_from_kwargs
from llmexp.providers.respondent import normalized_level, outcome_probability, probe_value
from llmexp.runner import run_study

LEVELS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0)
SYN = "synthetic/respondent"


def _levels(df):
    return df["conditions"].map(lambda c: json.loads(c)[0]["levels"]["price"])


def _run(tmp_path, params, n_units=4, replicates=25, name="run"):
    study = make_study(models=(SYN,), params={SYN: params}, levels=LEVELS, n_units=n_units, replicates=replicates, seed=11)
    trials = make_trials(study)
    res = run_study(study, trials, run_dir=tmp_path / name, progress=False, concurrency=8)
    return study, trials, res


def test_purchase_curve_matches_the_true_logistic_curve(tmp_path):
    params = {"baseline": 0.6, "effect": -2.5, "leakage": 0.8, "confound": 1.0}
    study, trials, res = _run(tmp_path, params)
    df = res.to_pandas()
    assert (df["status"] == "ok").all() and len(df) == len(trials)
    df = df.assign(level=_levels(df))
    z_fail = 0
    for design in ("blind", "unblinded"):
        sub = df[df["design"] == design]
        slope = params["effect"] + (params["leakage"] if design == "blind" else 0.0)
        for level, group in sub.groupby("level"):
            x = level / 2.0  # position in the 0..2 level range
            p_true = 1 / (1 + math.exp(-(math.log(0.6 / 0.4) + slope * (x - 0.5))))
            trial = json.loads(group.iloc[0]["conditions"])[0]
            # the provider's own exact probability agrees with the formula from the parameters
            assert outcome_probability(params, {"mode": design, "treatment_levels": {"price": list(LEVELS)}}, trial) == pytest.approx(p_true)
            n = len(group)
            se = math.sqrt(p_true * (1 - p_true) / n)
            z = abs(group["value"].mean() - p_true) / se
            z_fail += z > 3.5
    assert z_fail == 0
    # the blind curve is flatter than the unblinded one, as set by leakage * confound
    blind = df[df.design == "blind"].groupby("level")["value"].mean()
    unbl = df[df.design == "unblinded"].groupby("level")["value"].mean()
    assert (blind.iloc[0] - blind.iloc[-1]) < (unbl.iloc[0] - unbl.iloc[-1])


def test_runs_are_reproducible_and_seeded_per_trial(tmp_path):
    params = {"baseline": 0.5, "effect": -1.0}
    _, _, a = _run(tmp_path, params, n_units=2, replicates=5, name="a")
    _, _, b = _run(tmp_path, params, n_units=2, replicates=5, name="b")
    da, db = a.to_pandas().sort_values("trial_id"), b.to_pandas().sort_values("trial_id")
    assert list(da["raw_text"]) == list(db["raw_text"])
    assert 0 < da["value"].mean() < 1  # replicates differ: not one answer for all


def test_binary_probabilities_are_exact_when_requested(tmp_path):
    params = {"baseline": 0.3, "effect": 1.5, "probs": 1}
    _, _, res = _run(tmp_path, params, n_units=1, replicates=1)
    df = res.to_pandas().assign(level=lambda d: _levels(d))
    for _, row in df[df.design == "unblinded"].iterrows():
        x = row["level"] / 2.0
        p = 1 / (1 + math.exp(-(math.log(0.3 / 0.7) + 1.5 * (x - 0.5))))
        assert row["value"] == pytest.approx(p)
        assert json.loads(row["probs"])["yes"] == pytest.approx(p)
        assert row["prob_mass"] == pytest.approx(1.0)


def _trial(**kw):
    base = {
        "trial_id": "t1",
        "mode": "blind",
        "kind": "outcome",
        "target": "purchase",
        "answer": {"type": "binary", "labels": ["buy", "skip"]},
        "conditions": [{"cell": "price=1", "levels": {"price": 1.0}, "values": {"price": 3.0}}],
        "pinned": {},
        "unit": {"product_id": "p0", "regular_price": 3.0},
        "persona": None,
        "replicate": 0,
        "treatment_levels": {"price": list(LEVELS)},
    }
    base.update(kw)
    return base


def test_leakage_probe_follows_level_in_blind_mode_only():
    params = {"leakage": 0.6, "noise": 0.0}
    answer = {"type": "money"}
    low = [{"cell": "c", "levels": {"price": 0.0}, "values": {"price": 0.0}}]
    high = [{"cell": "c", "levels": {"price": 2.0}, "values": {"price": 6.0}}]
    for mode, expected_slope in (("blind", 0.6), ("unblinded", 0.0)):
        v0 = probe_value(params, _trial(kind="probe", target="competitor_price", answer=answer, conditions=low, mode=mode))
        v1 = probe_value(params, _trial(kind="probe", target="competitor_price", answer=answer, conditions=high, mode=mode))
        anchor = 3.0  # the unit's first positive numeric column
        assert (v1 - v0) / anchor == pytest.approx(expected_slope)
    assert normalized_level("price", 0.4, _trial()) == pytest.approx(0.2)


def test_focalism_makes_a_step_at_the_pinned_value():
    params = {"baseline": 0.5, "effect": 0.0, "focalism": 1.0}
    below = _trial(pinned={"competitor_price": 3.5})
    above = _trial(pinned={"competitor_price": 2.5})
    assert outcome_probability(params, below) == pytest.approx(1.0)
    assert outcome_probability(params, above) == pytest.approx(0.0)
    half = {**params, "focalism": 0.25}
    assert outcome_probability(half, above) == pytest.approx(0.75 * 0.5)


def _acomplete(trial, params=None, seed=0):
    providers.ensure_registered()
    return asyncio.run(
        litellm.acompletion(
            model=providers.for_model(SYN).litellm_model(SYN),
            messages=[{"role": "user", "content": "prose the respondent ignores"}],
            metadata={"llmexp_trial": trial, "llmexp_params": params or {}, "llmexp_seed": seed},
        )
    )


@pytest.mark.parametrize(
    "answer",
    [
        {"type": "binary", "labels": ["buy", "skip"]},
        {"type": "categorical", "labels": ["a", "b", "c"]},
        {"type": "likert", "low": 1, "high": 7},
        {"type": "likert", "low": 1, "high": 3, "labels": ["low", "mid", "high"]},
        {"type": "number", "low": 0, "high": 100},
        {"type": "money", "low": 0, "high": 20},
        {"type": "probability"},
    ],
)
def test_every_answer_type_parses(answer):
    trial = _trial(answer=answer, trial_id=f"t-{answer['type']}")
    resp = _acomplete(trial, {"noise": 0.1})
    text = resp.choices[0].message.content
    parsed = parse_answer(text, answer, trial["conditions"])
    assert parsed.valid, (text, parsed.error)
    assert resp.usage.prompt_tokens > 0


@pytest.mark.parametrize("mode,answer", [("within", {"type": "binary", "labels": ["yes", "no"], "per_condition": True}),
                                         ("aggregate", {"type": "probability", "per_condition": True})])
def test_per_condition_answers(mode, answer):
    conds = [{"cell": f"price={lv:g}", "levels": {"price": lv}, "values": {"price": 3 * lv}} for lv in LEVELS]
    params = {"baseline": 0.5, "effect": -3.0, "noise": 0.0}
    trial = _trial(mode=mode, answer=answer, conditions=conds, trial_id=f"pc-{mode}")
    text = _acomplete(trial, params).choices[0].message.content
    parsed = parse_answer(text, answer, conds)
    assert parsed.valid, (text, parsed.error)
    assert list(parsed.condition_values) == [c["cell"] for c in conds]
    if mode == "aggregate":  # the share per condition is the true P (noise 0)
        for c in conds:
            assert parsed.condition_values[c["cell"]] == pytest.approx(outcome_probability(params, trial, c), abs=0.0006)


def test_probabilities_survive_acompletion_and_metadata_reaches_provider():
    seen = {}

    class Spy(providers.LlmexpProvider):
        def answer(self, model, messages, trial, params, seed):
            seen.update(trial=trial, params=params, seed=seed)
            return providers.Reply(text="buy", probs={"buy": 0.7, "skip": 0.3}, prob_mass=0.9)

    providers.register_provider("llmexp-spy", Spy())
    trial = _trial()
    resp = asyncio.run(
        litellm.acompletion(model="llmexp-spy/x", messages=[{"role": "user", "content": "hi"}],
                            metadata={"llmexp_trial": trial, "llmexp_params": {"effect": 1}, "llmexp_seed": 5})
    )
    assert extract_probs(resp) == ({"buy": 0.7, "skip": 0.3}, 0.9)
    assert seen["trial"] == trial and seen["params"]["effect"] == 1 and seen["seed"] == 5
    assert trial_from_kwargs({"litellm_params": {"metadata": {"llmexp_trial": trial}}}) == trial
    assert trial_from_kwargs({}) is None


def test_registration_is_idempotent():
    providers.ensure_registered()
    providers.ensure_registered()
    names = [e["provider"] for e in litellm.custom_provider_map]
    assert names.count(providers.for_model("synthetic/x").litellm_provider) == 1
    assert names.count("llmexp") == 1


def test_local_model_without_llama_cpp_fails_clearly(tmp_path, monkeypatch):
    from llmexp.errors import RunError
    from llmexp.runner.retry import classify

    providers.ensure_registered()
    monkeypatch.setattr(providers.for_model("llmexp/gemma3-270m"), "problem", "llama-cpp-python is not installed")
    study = make_study(models=("llmexp/gemma3-270m",), n_units=1)
    with pytest.raises(RunError, match=r"pip install 'llmexp\[local\]'"):
        run_study(study, make_trials(study), run_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # checked before anything was written
    # the stand-in provider registered when llama-cpp-python is missing fails permanently
    from llmexp.providers.local import MissingLocal

    providers.register_provider("llmexp-missing", MissingLocal("llama-cpp-python is not installed"))
    with pytest.raises(Exception) as info:
        asyncio.run(litellm.acompletion(model="llmexp-missing/gemma3-270m", messages=[{"role": "user", "content": "hi"}]))
    assert "pip install 'llmexp[local]'" in str(info.value)
    kind, transient, stops = classify(info.value)
    assert not transient and stops


def test_compiled_demand_study_runs_on_the_synthetic_respondent(tmp_path):
    from pathlib import Path

    import llmexp
    from llmexp.compiler import compile_study
    from llmexp.spec import ModelSpec

    path = Path(__file__).parents[2] / "studies" / "demand_curve.study"
    study = llmexp.load(path)
    study = study.with_models([ModelSpec(name=SYN, params={"effect": -1.5, "leakage": 0.5, "focalism": 0.5})])
    trials = compile_study(study)
    res = run_study(study, trials, run_dir=tmp_path / "run", limit=300, progress=False)
    df = res.to_pandas()
    assert len(df) == 300 and df["trial_id"].is_unique
    assert (df["status"] == "ok").all(), df.loc[df.status != "ok", ["raw_text", "error"]].head()
    assert set(df["design"]) == set(trials["design"])  # --limit spreads across designs
    per = df[df["condition_values"].notna()]
    assert len(per) and all(len(json.loads(cv)) == len(json.loads(c)) for cv, c in zip(per.condition_values, per.conditions, strict=True))


def test_top_level_api_with_model_override(tmp_path):
    from pathlib import Path

    import llmexp

    study = llmexp.load(Path(__file__).parents[2] / "studies" / "demand_curve.study")
    res = llmexp.run(study, models=["synthetic/respondent"], run_dir=tmp_path / "run", limit=20, progress=False)
    df = res.to_pandas()
    assert len(df) == 20 and set(df["model"]) == {"synthetic/respondent"} and (df["status"] == "ok").all()
    assert [m.name for m in res.study.models] == ["synthetic/respondent"]
