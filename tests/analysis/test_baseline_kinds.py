"""Baselines that are not one number per cell (llmexp/analysis/baseline_kinds.py and
llmexp/lang/baseline_kinds.py): a categorical outcome compared option by option (`option
COLUMN`), and a standardised effect per unit (`compare effect OUTCOME = COLUMN`).

Numbers are checked against a direct pandas / numpy / statsmodels computation and, with many
answers, against the known truth they were drawn from; every new error has its exact text and
position."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from llmexp.analysis.baseline import compare_baseline
from llmexp.analysis.baseline_kinds import cohen_d, effect_sizes, option_cells
from llmexp.errors import StudyError
from tests.lang.langhelp import check_in

# Line numbers matter: errors point into the baseline statement at line 13.
STUDY = """study "d" seed 1
units menu
  row menu = "m1"
  row menu = "m2"
treatment offers = levels("absent" = "A or C.", "present" = "A, B or C.") between
context "The menu: {offers}"
outcome choice: categorical "A", "B" if offers = "present", "C"
  question "Which one?"
outcome amount: number valid 0 to 100
  question "How much?"
modes blind
model "synthetic/respondent"
"""
OPTIONS = """baseline "data/cells.csv"
  match unit = menu, offers = arm
  compare choice = share
  option option
  count n
"""
EFFECT = """baseline "data/effects.csv"
  match unit = menu
  compare effect amount = d
"""
TRUE_SIM = {
    ("m1", "absent"): [0.6, 0.0, 0.4],
    ("m1", "present"): [0.3, 0.2, 0.5],
    ("m2", "absent"): [0.8, 0.0, 0.2],
    ("m2", "present"): [0.5, 0.1, 0.4],
}
CELLS = (
    "menu,arm,option,n,share\nm1,absent,A,50,0.7\nm1,absent,C,50,0.3\nm1,present,A,40,0.2\n"
    "m1,present,B,40,0.1\nm1,present,C,40,0.7\nm2,absent,A,30,0.6\nm2,absent,C,30,0.4\n"
    "m2,present,A,20,0.25\nm2,present,B,20,0.05\nm2,present,C,20,0.7\n"
)
LABELS = ["A", "B", "C"]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "cells.csv").write_text(CELLS)
    (data / "offered.csv").write_text(CELLS + "m1,absent,B,50,0.0\n")  # B was not on that menu
    (data / "effects.csv").write_text("menu,d\nm1,0.5\nm2,-0.2\n")
    return tmp_path


def problems(folder: Path, text: str):
    with pytest.raises(StudyError) as info:
        check_in(folder, text)
    return [(p.message, p.line, p.column) for p in info.value.problems if p.severity == "error"]


def choices(n: int, seed: int = 0) -> pd.DataFrame:
    """n answers per unit x arm drawn from TRUE_SIM (option indices)."""
    rng = np.random.default_rng(seed)
    parts = [pd.DataFrame({"unit_id": u, "lvl__offers": arm, "y": rng.choice(3, size=n, p=p).astype(float)}) for (u, arm), p in TRUE_SIM.items()]
    return pd.concat(parts, ignore_index=True).assign(kind="outcome", target="choice", design="blind", mode="blind", model="m")


# ------------------------------------------------------------------ categorical, per option


def test_option_shares_match_a_direct_computation_and_the_truth(folder):
    study, _ = check_in(folder, STUDY + OPTIONS)
    obs = choices(4000)
    cells = option_cells(study, obs, 0.05)
    assert len(cells) == 10  # 2 units x (2 options without B + 3 with it)
    for r in cells.itertuples():
        arm = r.key.split("=")[1]
        y = obs[(obs["unit_id"] == r.unit_id) & (obs["lvl__offers"] == arm)]["y"]
        k = LABELS.index(r.option)
        direct = float((y == k).mean())
        lo, hi = proportion_confint((y == k).sum(), len(y), alpha=0.05, method="wilson")
        assert r.sim == pytest.approx(direct, abs=1e-12) and r.n_sim == len(y)
        assert (r.sim_ci_low, r.sim_ci_high) == pytest.approx((lo, hi), abs=1e-9)
        truth = TRUE_SIM[(r.unit_id, arm)][k]
        assert abs(r.sim - truth) < 0.03 and r.sim_ci_low < truth < r.sim_ci_high
        human = pd.read_csv(folder / "data" / "cells.csv").query("menu == @r.unit_id and arm == @arm and option == @r.option")
        h, n = float(human["share"].iloc[0]), float(human["n"].iloc[0])
        assert (r.human, r.n_human) == (h, n)
        assert (r.human_ci_low, r.human_ci_high) == pytest.approx(proportion_confint(h * n, n, method="wilson"), abs=1e-9)
        k_ = np.arange(int(n) + 1)
        assert r.floor == pytest.approx(float(np.sum(stats.binom.pmf(k_, int(n), h) * np.abs(k_ / n - h))))
        assert r.abs_error == pytest.approx(abs(direct - h))


def test_summary_and_per_option_effects(folder):
    study, _ = check_in(folder, STUDY + OPTIONS)
    obs = choices(200, seed=3)
    tables = compare_baseline(study, pd.DataFrame(), obs, n_boot=50)
    cells = tables["baseline_options"]
    [s] = tables["baseline_summary"].to_dict("records")
    w = cells["n_human"].to_numpy()
    assert s["comparison"] == "option shares" and s["n_cells"] == 10 and s["n_units"] == 2
    assert s["mae"] == pytest.approx(cells["abs_error"].mean())
    assert s["mae_weighted"] == pytest.approx(np.average(cells["abs_error"], weights=w))
    assert s["mae_perfect"] == pytest.approx(np.average(cells["floor"], weights=w))
    assert s["mae_corrected"] == pytest.approx(s["mae_weighted"] - s["mae_perfect"])
    assert np.isfinite(s["mae_ci_low"]) and s["mae_ci_low"] < s["mae"] < s["mae_ci_high"]  # two units
    assert list(tables["design_ranking"]["design"]) == ["blind"]
    eff = tables["baseline_option_effects"]
    for r in eff.itertuples():
        if r.option == "B":  # offered only with the decoy: no effect, said so
            assert np.isnan(r.effect_sim) and "not an option" in r.note
            continue
        c = cells[(cells["unit_id"] == r.unit_id) & (cells["option"] == r.option)].set_index("key")
        assert r.effect_sim == pytest.approx(c.loc["offers=present", "sim"] - c.loc["offers=absent", "sim"])
        assert r.effect_human == pytest.approx(c.loc["offers=present", "human"] - c.loc["offers=absent", "human"])
        assert r.effect_sim_ci_low < r.effect_sim < r.effect_sim_ci_high
        assert r.sign_agree == (np.sign(r.effect_sim) == np.sign(r.effect_human))
    assert s["sign_agreement"] == pytest.approx(eff.dropna(subset=["effect_sim"])["sign_agree"].astype(bool).mean())


def test_an_option_not_offered_is_excluded_not_counted_as_zero(folder):
    study, warnings = check_in(folder, STUDY + OPTIONS.replace("cells.csv", "offered.csv"))
    assert [(w.message, w.line, w.column) for w in warnings if "not offered" in w.message] == [
        ("baseline rows for options not offered in their condition are ignored: 'B' at offers = absent", 16, 10)
    ]
    cells = option_cells(study, choices(100), 0.05)
    assert len(cells) == 10
    assert cells[(cells["option"] == "B")]["key"].tolist() == ["offers=present", "offers=present"]


def test_pooled_over_units_without_a_unit_column(folder):
    """No unit column: one cell per arm x option, pooled over units, interval clustered by unit."""
    (folder / "data" / "pooled.csv").write_text(
        "arm,option,n,share\nabsent,A,80,0.7\nabsent,C,80,0.3\npresent,A,60,0.2\npresent,B,60,0.1\npresent,C,60,0.7\n"
    )
    text = STUDY + OPTIONS.replace("cells.csv", "pooled.csv").replace("unit = menu, ", "")
    study, _ = check_in(folder, text)
    obs = choices(300, seed=5)
    cells = option_cells(study, obs, 0.05)
    assert len(cells) == 5 and set(cells["unit_id"]) == {"all"}
    direct = obs.groupby("lvl__offers")["y"].apply(lambda y: (y == 0).mean())
    a = cells[cells["option"] == "A"].set_index("key")["sim"]
    assert a["offers=absent"] == pytest.approx(direct["absent"]) and a["offers=present"] == pytest.approx(direct["present"])
    assert set(cells["sim_interval"]) == {"CR2 cluster-robust by unit, t with Satterthwaite df"}


# ------------------------------------------------------------------ effect sizes


def amounts(seed: int = 0, n: int = 400, shift: float = 1.0, sd: float = 2.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = [
        pd.DataFrame({"unit_id": u, "lvl__offers": arm, "y": rng.normal(10 + shift * (arm == "present"), sd, n)})
        for u in ("m1", "m2")
        for arm in ("absent", "present")
    ]
    return pd.concat(parts, ignore_index=True).assign(kind="outcome", target="amount", design="blind", mode="blind", model="m")


def test_cohen_d_matches_a_direct_computation_and_the_truth(folder):
    study, _ = check_in(folder, STUDY + EFFECT)
    obs = amounts()
    sizes = effect_sizes(study, obs, 0.05).set_index("unit_id")
    human = {"m1": 0.5, "m2": -0.2}
    for u in ("m1", "m2"):
        a = obs[(obs["unit_id"] == u) & (obs["lvl__offers"] == "absent")]["y"].to_numpy()
        b = obs[(obs["unit_id"] == u) & (obs["lvl__offers"] == "present")]["y"].to_numpy()
        sd = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
        d = (b.mean() - a.mean()) / sd
        se = np.sqrt((len(a) + len(b)) / (len(a) * len(b)) + d**2 / (2 * (len(a) + len(b))))
        r = sizes.loc[u]
        assert r["d_sim"] == pytest.approx(d, rel=1e-12)
        assert (r["d_ci_low"], r["d_ci_high"]) == pytest.approx((d - 1.959964 * se, d + 1.959964 * se), rel=1e-6)
        assert abs(r["d_sim"] - 0.5) < 0.15 and r["d_ci_low"] < 0.5 < r["d_ci_high"]  # truth: 1 / 2
        assert r["d_human"] == human[u] and r["d_diff"] == pytest.approx(d - human[u])
        assert r["d_ratio"] == pytest.approx(d / human[u]) and r["sign_agree"] == (human[u] > 0)
        assert r["contrast"] == "present - absent"


def test_cohen_d_is_missing_with_a_reason_when_answers_do_not_vary():
    same = cohen_d(np.full(5, 3.0), np.full(5, 4.0), 0.0, 0.05)
    assert np.isnan(same["d_sim"]) and np.isnan(same["d_ci_low"]) and same["note"] == "no spread within the conditions: no Cohen's d"
    one = cohen_d(np.array([1.0]), np.array([2.0, 3.0]), 1.0, 0.05)
    assert np.isnan(one["d_sim"]) and one["note"].startswith("fewer than 2 answers")


def test_effect_only_baseline_needs_no_level_column_and_reaches_the_baseline_tables(folder):
    study, _ = check_in(folder, STUDY + EFFECT)
    assert study.baseline.effects == {"amount": "d"} and study.baseline.treatments == {}
    tables = compare_baseline(study, pd.DataFrame(), amounts(seed=2, n=50), n_boot=50)
    assert len(tables["baseline_effect_sizes"]) == 2 and tables["baseline_summary"].empty
    [s] = tables["baseline_effect_summary"].to_dict("records")
    assert s["n_units_with_d"] == 2 and s["mean_d_human"] == pytest.approx(0.15)


# ------------------------------------------------------------------ the language: errors at their position


def test_categorical_compared_without_option_is_refused_at_the_baseline_statement(folder):
    text = STUDY + OPTIONS.replace("  option option\n", "")
    assert problems(folder, text) == [
        (
            "compare: 'choice' is a categorical outcome: name the column holding each row's option with `option COLUMN` "
            "(each row then holds the share choosing that option in its cell, and `count COLUMN` the cell's n)",
            13,
            1,
        )
    ]


@pytest.mark.parametrize(
    "baseline, error",
    [
        (
            EFFECT.replace("compare effect", "compare efect"),
            (
                "compare: unknown comparison 'efect'; write `compare OUTCOME = COLUMN` (cells) or `compare effect OUTCOME = COLUMN` "
                "(Cohen's d per unit)",
                15,
                11,
            ),
        ),
        (EFFECT.replace("effect amount", "effect amont"), ("compare effect: 'amont' is not an outcome", 15, 18)),
        (
            EFFECT.replace("effect amount", "effect choice"),
            (
                "compare effect: 'choice' is categorical and has no Cohen's d; compare the share of each option with "
                "`compare OUTCOME = COLUMN` and `option COLUMN`",
                15,
                18,
            ),
        ),
        (
            OPTIONS.replace("compare choice", "compare amount"),
            (
                "option 'option': no compared outcome is categorical (option names the column holding the option of a categorical outcome's share)",
                16,
                10,
            ),
        ),
        (
            OPTIONS.replace("  count n\n", ""),
            ("option needs `count COLUMN`: each row holds the share choosing one option in a cell, and count the cell's n", 16, 10),
        ),
        (
            OPTIONS.replace("option option", "option arm"),
            ("baseline column 'arm' matches no option of 'choice' (its values: 'absent', 'present'; the options: 'A', 'B', 'C')", 16, 10),
        ),
        (OPTIONS + "  option option\n", ("the baseline statement gives 'option' twice", 13, 1)),
    ],
)
def test_each_new_baseline_error_with_its_position(folder, baseline, error):
    assert problems(folder, STUDY + baseline) == [error]


def test_unknown_comparison_suggests_effect(folder):
    with pytest.raises(StudyError) as info:
        check_in(folder, STUDY + EFFECT.replace("compare effect", "compare efect"))
    assert [p.hint for p in info.value.problems] == ["did you mean 'effect'?"]


def test_options_the_outcome_does_not_have_are_warned_about(folder):
    (folder / "data" / "extra.csv").write_text(CELLS + "m1,present,D,40,0.0\n")
    _, warnings = check_in(folder, STUDY + OPTIONS.replace("cells.csv", "extra.csv"))
    assert [(w.message, w.line, w.column) for w in warnings] == [("baseline rows for options that 'choice' does not have are ignored: 'D'", 16, 10)]


def test_a_categorical_baseline_without_option_column_is_refused_by_the_analysis_too(folder):
    """A Study built in Python skips `check`: the analysis refuses rather than compare option indices."""
    from llmexp.errors import AnalysisError

    study, _ = check_in(folder, STUDY + OPTIONS)
    bare = study.model_copy(update={"baseline": study.baseline.model_copy(update={"option_column": None})})
    with pytest.raises(AnalysisError, match="'choice' is categorical: its human rows need an option column"):
        compare_baseline(bare, pd.DataFrame(), choices(20), n_boot=50)


def test_the_shipped_decoy_and_anchoring_studies_use_both_kinds():
    import llmexp

    root = Path(__file__).resolve().parents[2] / "studies"
    decoy, anchoring = llmexp.load(root / "decoy.study"), llmexp.load(root / "anchoring.study")
    assert (decoy.baseline.option_column, decoy.baseline.outcomes, decoy.baseline.n_column) == ("option", {"choice": "share"}, "n")
    assert anchoring.baseline.effects == {"estimate": "cohen_d"} and anchoring.baseline.unit_column == "question_id"


def test_an_effect_must_be_one_number_per_unit(folder):
    (folder / "data" / "twice.csv").write_text("menu,d\nm1,0.5\nm1,0.6\nm2,-0.2\n")
    (folder / "data" / "text.csv").write_text("menu,d\nm1,big\nm2,-0.2\n")
    assert problems(folder, STUDY + EFFECT.replace("effects.csv", "twice.csv")) == [
        (
            "baseline: 2 rows give the effect of 'amount' for unit 'm1' (one row per unit; "
            "`match unit = COLUMN` names the unit, `where` keeps one row)",
            13,
            1,
        )
    ]
    assert problems(folder, STUDY + EFFECT.replace("effects.csv", "text.csv")) == [
        ("baseline column 'd' holds 'big' for unit 'm1': the effect of 'amount' must be a number", 13, 1)
    ]
