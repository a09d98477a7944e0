"""`Study` is a value: a short repr, a summary, a hash consistent with ==, and a diff that
names what changed (the basis of "what changed since this run")."""

from __future__ import annotations

from pathlib import Path

import pytest

import llmexp
from llmexp import spec

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "studies").glob("*.study"))


@pytest.fixture(scope="module")
def quick() -> spec.Study:
    return llmexp.load(REPO / "studies/demand_quick.study")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_repr_is_one_short_line(path):
    study = llmexp.load(path)
    text = repr(study)
    assert len(text) < 300 and "\n" not in text
    assert text.startswith(f"Study({study.name!r}, ") and text.endswith(f"hash {study.hash()})")


def test_repr_names_the_shape(quick):
    assert repr(quick) == f"Study('cpg-demand-quick', 6 units, 1 treatment x 11 levels, 4 designs, 1 model, hash {quick.hash()})"


def test_nodes_print_tables_as_their_size(quick):
    assert "rows=<6 rows>" in repr(quick.units)
    assert len(repr(quick.baseline)) < 500


def test_summary_lists_every_part(quick):
    text = quick.summary()
    assert str(quick) == text
    assert 8 <= len(text.splitlines()) <= 20
    for expected in (
        "products: 6 rows keyed by product_id",
        "price: 11 levels",
        "shown as unit.regular_price * level",
        "competitor_price: unspecified, probe as money",
        'purchase: binary "purchase" / "not purchase"',
        "competitor_fixed: blind, competitor_price = unit.regular_price, without probes",
        "llmexp/gemma3-270m temperature=1 max_tokens=8, 1 replicate",
        "data/twin2k500_pricing/responses.csv",
        "demand_curve, effects, leakage, focalism, baseline",
    ):
        assert expected in text, expected


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_hash_works_and_agrees_with_equality(path):
    a, b = llmexp.load(path), llmexp.load(path)
    assert a == b and a is not b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert {a: 1}[b] == 1


def test_hash_tells_different_studies_apart(quick):
    other = quick.model_copy(update={"seed": quick.seed + 1})
    assert other != quick
    assert hash(other) != hash(quick)


def test_equal_numbers_hash_alike(quick):
    """1 == 1.0 in a param must not break `a == b -> hash(a) == hash(b)`."""
    model = quick.models[0]
    as_int = quick.with_models([model.model_copy(update={"params": {**model.params, "temperature": 1}})])
    as_float = quick.with_models([model.model_copy(update={"params": {**model.params, "temperature": 1.0}})])
    assert as_int == as_float and hash(as_int) == hash(as_float)


def test_nodes_are_hashable(quick):
    assert len(set(quick.designs)) == len(quick.designs)
    assert hash(quick.models[0]) == hash(quick.models[0].model_copy())
    assert hash(quick.units) == hash(llmexp.load(REPO / "studies/demand_quick.study").units)


def test_study_hash_unchanged_by_value_methods(quick):
    """The 16-hex study hash (runs and caches key on it) is not the Python hash."""
    before = quick.hash()
    repr(quick), quick.summary(), hash(quick), spec.diff(quick, quick)
    assert quick.hash() == before and len(before) == 16


def test_equal_studies_have_an_empty_diff(quick):
    same = llmexp.load(REPO / "studies/demand_quick.study")
    d = spec.diff(quick, same)
    assert not d and len(d) == 0 and d.paths == ()
    assert str(d) == "no differences"
    assert llmexp.diff is spec.diff


def _set_temperature(study, value):
    model = study.models[0]
    return study.with_models([model.model_copy(update={"params": {**model.params, "temperature": value}})])


def _drop_design(study, name):
    return study.model_copy(update={"designs": tuple(d for d in study.designs if d.name != name)})


def _edit_design(study, name, **changes):
    return study.model_copy(update={"designs": tuple(d.model_copy(update=changes) if d.name == name else d for d in study.designs)})


EDITS = {
    "temperature": (lambda s: _set_temperature(s, 0.7), ["models[0].params.temperature: 1 -> 0.7"]),
    "seed": (lambda s: s.model_copy(update={"seed": 8}), ["seed: 7 -> 8"]),
    "drop design": (lambda s: _drop_design(s, "competitor_fixed"), ["designs: - competitor_fixed"]),
    "design probes": (lambda s: _edit_design(s, "competitor_fixed", probes=True), ["designs[competitor_fixed].probes: False -> True"]),
    "fewer units": (
        lambda s: s.model_copy(update={"units": s.units.model_copy(update={"rows": s.units.rows[:3]})}),
        ["units.rows: 6 -> 3 rows"],
    ),
    "add model": (
        lambda s: s.with_models([*s.models, spec.ModelSpec(name="openai/gpt-4o-mini")]),
        ["models: + openai/gpt-4o-mini"],
    ),
    "analyses": (
        lambda s: s.model_copy(update={"analyses": (*s.analyses[:-1], "refute")}),
        ["analyses: - baseline", "analyses: + refute"],
    ),
    "levels": (
        lambda s: s.model_copy(update={"treatments": (s.treatments[0].model_copy(update={"levels": (0.5, 1.0)}),)}),
        ["treatments[price].levels: (0, 0.2, 0.4, 0.6, ..., 2) -> (0.5, 1)"],
    ),
    "no baseline": (lambda s: s.model_copy(update={"baseline": None}), ["baseline: data/twin2k500_pricing/responses.csv -> none"]),
}


@pytest.mark.parametrize("name", list(EDITS))
def test_diff_names_exactly_what_changed(quick, name):
    edit, expected = EDITS[name]
    d = spec.diff(quick, edit(quick))
    assert d
    assert [str(c) for c in d] == expected
    assert str(d) == "\n".join(expected)


def test_diff_of_several_edits_lists_each_path(quick):
    edited = _drop_design(_set_temperature(quick, 0.7), "blind").model_copy(update={"seed": 9})
    assert spec.diff(quick, edited).paths == ("seed", "designs", "models[0].params.temperature")


def test_diff_between_shipped_studies(quick):
    full = llmexp.load(REPO / "studies/demand_curve.study")
    d = spec.diff(full, quick)
    text = str(d)
    assert "units.rows: 40 -> 6 rows" in text
    assert "designs: - within" in text
    assert "personas: - shopper" in text
    assert "StudyDiff(" in repr(d)


def test_diff_refuses_what_is_not_a_study(quick):
    with pytest.raises(TypeError, match="diff compares two studies"):
        llmexp.diff(quick, 3)
