"""Fits on cell-level sufficient statistics equal the observation-level fits (issue 14).

- `grouped.py` directly, on random unbalanced designs: OLS and logit coefficients, CR2,
  Bell-McCaffrey df and CR1 against the observation-level `inference.cr2` and against
  statsmodels run on the rows; a naive WLS on cell means with statsmodels' cluster SE is
  shown to be off (the df factor counts cells), so the comparison can fail.
- `effects`: the table from cells equals the table from the row-level path.
- `analyze_parquet` (streamed in small batches) equals `analyze` on the same table, for
  every table of demand curves, effects and leakage, on random designs (sampled and
  log-probability answers, personas, invalid answers, echoes, a 2x2 numeric study).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from llmexp.analysis import analyze, analyze_parquet, effects
from llmexp.analysis.grouped import compress, fit_cells, merge
from llmexp.analysis.inference import cr2, nested_columns
from llmexp.analysis.observations import build_observations
from llmexp.analysis.stream import NOT_ON_CELLS
from llmexp.errors import AnalysisError
from tests.analysis.test_effects_factorial import responses_2x2, study_2x2
from tests.support.synthetic_responses import Truth, make_responses, make_study

REL = 1e-8


def _close(a, b, rel: float = REL) -> None:
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape
    assert np.array_equal(np.isnan(a), np.isnan(b))
    ok = np.isfinite(a)
    scale = np.maximum(np.abs(b[ok]), 1e-12)
    assert np.all(np.abs(a[ok] - b[ok]) <= rel * scale + 1e-13), np.max(np.abs(a[ok] - b[ok]) / scale)


def _panel(seed: int, fractional: bool) -> pd.DataFrame:
    """Units x levels x a second binary factor, 0-7 answers per cell (unbalanced), unit
    intercepts and slopes: a random design of the kind `effects` fits."""
    rng = np.random.default_rng(seed)
    units = int(rng.integers(3, 9))
    rows = []
    for u in range(units):
        a, b = rng.normal(0, 0.1), rng.normal(0, 0.1)
        for lv in (0.2, 0.6, 1.0, 1.4):
            for f in (0, 1):
                p = np.clip(0.7 + a - (0.3 + b) * lv + 0.1 * f, 0.02, 0.98)
                for _ in range(int(rng.integers(0 if lv > 0.2 else 1, 8))):
                    y = np.clip(p + rng.normal(0, 0.1), 0, 1) if fractional else float(rng.random() < p)
                    rows.append(dict(unit_id=f"u{u}", level=lv, f=f, y=y))
    return pd.DataFrame(rows)


FORMULA = "y ~ level + f + level:f + C(unit_id)"


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", ["ols", "logit"])
def test_grouped_fit_equals_rows_and_statsmodels(seed, kind):
    import statsmodels.formula.api as smf

    rows = _panel(seed, fractional=seed % 2 == 1)
    cells = compress(rows, ["unit_id", "level", "f"])
    assert cells["n"].sum() == len(rows) and len(cells) < len(rows)
    fit, used = fit_cells(cells, FORMULA, kind)
    groups = pd.factorize(cells["unit_id"].iloc[used])[0]
    if kind == "logit":
        res = smf.glm(FORMULA, rows, family=sm.families.Binomial()).fit(tol=1e-12)
        w = res.mu * (1 - res.mu)
        row_ci = cr2(res.model.exog, rows["y"] - res.mu, pd.factorize(rows["unit_id"])[0], w)
    else:
        res = smf.ols(FORMULA, rows).fit()
        row_ci = cr2(res.model.exog, res.resid, pd.factorize(rows["unit_id"])[0])
    _close(fit.params.to_numpy(), res.params.to_numpy())
    assert list(fit.params.index) == list(res.params.index)
    assert fit.df_resid == res.df_resid
    ci = fit.cluster_inference(groups, list(range(len(fit.params))))
    _close(ci.vcov, row_ci.vcov)
    _close(ci.df, row_ci.df)
    _close(ci.vcov_cr1, row_ci.vcov_cr1)
    # CR1 against statsmodels' own cluster covariance on the rows: statsmodels counts the
    # nested unit dummies in K; ours does not (Cameron & Miller), a known factor apart
    codes = pd.factorize(rows["unit_id"])[0]
    sm_cov = res.model.fit(cov_type="cluster", cov_kwds={"groups": codes}, **({"tol": 1e-12} if kind == "logit" else {})).cov_params().to_numpy()
    X = res.model.exog
    k_all = X.shape[1]
    k_eff = k_all - nested_columns(X * (np.sqrt(w)[:, None] if kind == "logit" else 1.0), codes)
    n = len(rows)
    _close(ci.vcov_cr1, sm_cov * (n - k_all) / (n - k_eff))


def test_naive_wls_on_cell_means_gets_cluster_ses_wrong():
    """The check above can fail: statsmodels' WLS on the cell means has the right estimates,
    but its cluster SE counts cells in (N - 1) / (N - K) and is too large."""
    import statsmodels.formula.api as smf

    rows = _panel(7, fractional=False)
    cells = compress(rows, ["unit_id", "level", "f"])
    codes = pd.factorize(rows["unit_id"])[0]
    right = smf.ols(FORMULA, rows).fit(cov_type="cluster", cov_kwds={"groups": codes})
    naive = smf.wls(FORMULA, cells, weights=cells["n"]).fit(cov_type="cluster", cov_kwds={"groups": pd.factorize(cells["unit_id"])[0]})
    _close(naive.params.to_numpy(), right.params.to_numpy())
    ratio = naive.bse["level"] / right.bse["level"]
    assert ratio > 1.02  # too large: the cells' (N - 1) / (N - K) factor


def test_batches_merge_to_the_cells_of_the_whole_table():
    rows = _panel(3, fractional=True)
    keys = ["unit_id", "level", "f"]
    whole = compress(rows, keys)
    parts = pd.concat([compress(rows.iloc[i : i + 17], keys) for i in range(0, len(rows), 17)], ignore_index=True)
    merged = merge(parts, keys)
    for c in ("n", "y", "m2", "ymin", "ymax"):
        _close(merged[c], whole[c], 1e-12)
    assert merged[keys].equals(whole[keys])


def _effects_both_ways(study, resp, monkeypatch) -> tuple[pd.DataFrame, pd.DataFrame]:
    obs = build_observations(study, resp)
    grouped = effects.estimate_effects(study, obs)
    with monkeypatch.context() as m:
        m.setattr(effects, "_as_cells", lambda g, share, cluster: g)  # the row-level path
        rows = effects.estimate_effects(study, obs)
    return grouped, rows


NUMERIC = ("estimate", "se", "ci_low", "ci_high", "p_value", "df", "se_cr1", "n_obs", "effect_size", "es_ci_low", "es_ci_high")


@pytest.mark.parametrize("seed,logprobs", [(0, False), (1, True), (2, False)])
def test_effects_from_cells_equal_the_row_level_path(seed, logprobs, monkeypatch):
    study = make_study(n_units=3 + seed)
    truth = Truth(draws=2 + seed, logprobs=logprobs, invalid_rate=0.1, design_slope={"unblinded": 0.1})
    grouped, rows = _effects_both_ways(study, make_responses(study, truth, seed=seed), monkeypatch)
    assert len(grouped) == len(rows) >= 5
    assert grouped["inference"].str.startswith("CR2").all()
    for c in NUMERIC:
        _close(grouped[c], rows[c])
    assert list(grouped.columns) == list(rows.columns)
    for c in [c for c in ("term", "method", "scope", "design", "note") if c in rows]:
        assert grouped[c].astype(str).tolist() == rows[c].astype(str).tolist()


def _echoes(resp: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """Some probe answers replaced by the shown price (echoes of the prompt)."""
    rng = np.random.default_rng(seed)
    idx = np.flatnonzero((resp["kind"] == "probe").to_numpy() & (rng.random(len(resp)) < share))
    shown = [json.loads(c)[0]["values"]["price"] for c in resp["conditions"].iloc[idx]]
    resp = resp.copy()
    resp.loc[resp.index[idx], "value"] = shown
    return resp


def _same_tables(a, b) -> None:
    assert set(a.tables) == set(b.tables)
    for name, x in a.tables.items():
        y = b.tables[name]
        assert list(x.columns) == list(y.columns), name
        assert len(x) == len(y), name
        for c in x.columns:
            u, v = x[c].reset_index(drop=True), y[c].reset_index(drop=True)
            if pd.api.types.is_numeric_dtype(u) and not pd.api.types.is_bool_dtype(u):
                _close(v, u)
            else:
                assert u.astype(str).tolist() == v.astype(str).tolist(), (name, c)


CASES = [  # units, draws, log-probs, personas, invalid share, echo share, batch rows
    (3, 3, True, 6, 0.1, 0.2, 53),
    (10, 1, False, 0, 0.05, 0.3, 400),
]


@pytest.mark.parametrize("units,draws,logprobs,personas,invalid,echo,batch", CASES)
def test_streamed_analysis_equals_in_memory(tmp_path, units, draws, logprobs, personas, invalid, echo, batch):
    study = make_study(n_units=units)
    truth = Truth(
        draws=draws, logprobs=logprobs, invalid_rate=invalid, leak=0.2, n_personas=personas, persona_sd=0.05, design_slope={"unblinded": 0.1}
    )
    resp = _echoes(make_responses(study, truth, seed=units), echo, units)
    path = tmp_path / "responses.parquet"
    resp.to_parquet(path)
    opts = dict(figures=False, n_boot=49, seed=3)
    memory = analyze(study, resp, **opts)
    streamed = analyze_parquet(study, path, batch_rows=batch, **opts)
    assert streamed.summary_data["n_responses"] == len(resp)
    assert streamed.not_run == memory.not_run == {}
    assert np.isfinite(streamed.table("leakage")["p_no_echo"]).all()
    _same_tables(memory, streamed)


def test_streamed_two_by_two_numeric_effects_equal_rows(tmp_path):
    """A number outcome: `analyze` fits the rows (CR2 on observations), the streamed
    analysis the cells: the interaction, main effects and cell means agree."""
    study = study_2x2(n_units=5)
    resp = responses_2x2(study, draws=3, seed=2)
    path = tmp_path / "r.parquet"
    resp.to_parquet(path)
    memory = analyze(study, resp, figures=False)
    streamed = analyze_parquet(study, path, batch_rows=29, figures=False)
    assert (memory.table("effects")["scope"] == "factorial").any()
    _same_tables(memory, streamed)


def test_streamed_analysis_lists_row_level_analyses_as_not_run(tmp_path):
    study = make_study(n_units=4, analyses=("effects", "focalism"))
    resp = make_responses(study, Truth(draws=2), seed=0)
    path = tmp_path / "r.parquet"
    resp.to_parquet(path)
    out = analyze_parquet(study, path, figures=False)
    assert out.not_run == {"focalism": NOT_ON_CELLS}
    assert "effects" in out.tables
    with pytest.raises(AnalysisError, match="no requested analysis runs on a streamed table"):
        analyze_parquet(study, path, requested=["focalism"], figures=False)


def test_unreadable_table_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(AnalysisError, match=r"cannot read the response table .*bad\.parquet"):
        analyze_parquet(make_study(n_units=2), bad, figures=False)


def test_row_level_only_estimates_are_missing_with_a_reason_when_streamed(tmp_path):
    """Where cells are not exact (one unit: HC2 on answers; a within design's pooled
    quadratic clustered by call), the streamed analysis says so instead of guessing."""
    from llmexp.spec import Design

    designs = (Design(name="within", mode="within", probes=False),)
    for units, check in ((1, "effects"), (4, "demand")):
        study = make_study(n_units=units, designs=designs, analyses=(check.replace("demand", "demand_curve"),))
        resp = make_responses(study, Truth(draws=3), seed=units)
        path = tmp_path / f"r{units}.parquet"
        resp.to_parquet(path)
        memory = analyze(study, resp, figures=False, n_boot=49)
        streamed = analyze_parquet(study, path, figures=False, n_boot=49)
        if check == "effects":
            assert np.isfinite(memory.table("effects")["estimate"]).all()
            e = streamed.table("effects")
            assert e["estimate"].isna().all() and e["note"].str.contains("answers one by one").all()
        else:
            mem = memory.table("demand_summary").query("scope == 'pooled'").iloc[0]
            got = streamed.table("demand_summary").query("scope == 'pooled'").iloc[0]
            assert np.isfinite(mem["quad_b2"]) and mem["quad_se_type"] == "cluster(call)"
            assert np.isnan(got["quad_b2"]) and "not computed from cells" in got["quad_se_type"]


def test_exact_copies_are_recognised_across_batches(tmp_path, monkeypatch):
    """Log-prob answers to one prompt asked again are one observation, also when the copies
    fall in different batches of a streamed table; without the cross-batch memory the
    copies would count again (the comparison fails)."""
    from llmexp.analysis.observations import SeenPrompts

    study = make_study(n_units=3, analyses=("effects", "leakage"))
    resp = make_responses(study, Truth(draws=3, logprobs=True), seed=5)
    same_prompt = resp[["design", "unit_id", "kind", "target", "cell"]].astype(str).agg("|".join, axis=1)
    resp = resp.assign(messages=same_prompt)  # replicates are now copies of one prompt
    path = tmp_path / "r.parquet"
    resp.to_parquet(path)
    memory = analyze(study, resp, figures=False, n_boot=49)
    assert memory.table("invalid")["exact_copies"].sum() > 0
    streamed = analyze_parquet(study, path, batch_rows=41, figures=False, n_boot=49)
    _same_tables(memory, streamed)
    monkeypatch.setattr(SeenPrompts, "seen_before", lambda self, frame: np.zeros(len(frame), bool))
    forgetful = analyze_parquet(study, path, batch_rows=41, figures=False, n_boot=49)
    with pytest.raises(AssertionError):
        _same_tables(memory, forgetful)
