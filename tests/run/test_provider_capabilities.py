"""Callers ask a provider's declared capabilities, never its model-name prefix: a provider
defined in this file alone is priced by its `free` and validated by its `custom_params`; and
asking a provider imports no litellm (seconds of import that `llmexp check` does without)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import llmexp
from llmexp import providers
from llmexp.analysis import catalogue
from llmexp.errors import StudyError
from llmexp.lang import check_text as lang_check_text
from llmexp.providers import Provider
from llmexp.runner import cost

REPO = Path(__file__).resolve().parents[2]

STUDY = """study "caps" seed 2

units products
  row product_id = "p0", regular_price = 2
  row product_id = "p1", regular_price = 3

treatment price = levels(0.5, 1.5) between

context "You see {product_id} for {price}."

outcome purchase: binary "yes" / "no"
  question "Would you buy it?"

modes blind

MODEL
"""


class Freebie(Provider):
    """Costs nothing, and its prefix is none of llmexp's own."""

    name = "test-freebie"
    prefix = "freebie/"
    litellm_provider = "llmexp-test-freebie"
    free = True


class Knobs(Provider):
    """Takes params litellm does not know (like the synthetic respondent's `effect`)."""

    name = "test-knobs"
    prefix = "knobs/"
    litellm_provider = "llmexp-test-knobs"
    custom_params = True


@pytest.fixture
def knobs():
    providers.register(Knobs)
    yield
    providers.unregister(Knobs.name)


def test_a_free_provider_is_priced_zero_and_known():
    providers.register(Freebie)
    try:
        assert cost.model_price("freebie/anything") == cost.Price(0.0, 0.0, True)
        rows = [{"model": "freebie/anything", "messages": [{"role": "user", "content": "x" * 400}]}] * 3
        est = cost.estimate_cost(None, rows, params_by_model={"freebie/anything": {"max_tokens": 5}})
        assert est.total == 0.0 and est.unpriced == []
        assert est.models["freebie/anything"].prompt_tokens == 300  # chars/4, no tokenizer asked
    finally:
        providers.unregister(Freebie.name)
    assert cost.model_price("freebie/other").known is False  # without it: an unknown model


def test_a_custom_params_provider_takes_unknown_params(knobs):
    study, _ = llmexp.check_text(STUDY.replace("MODEL", 'model "knobs/m" effect 1.5 temperature 1'))
    assert study.models[0].params == {"effect": 1.5, "temperature": 1}
    with pytest.raises(StudyError) as info:
        llmexp.check_text(STUDY.replace("MODEL", 'model "openai/gpt-4o-mini" effect 1.5'))
    (problem,) = info.value.problems
    assert problem.message == "unknown model parameter 'effect'"


def test_the_language_asks_the_capability_its_caller_hands_in():
    text = STUDY.replace("MODEL", 'model "synthetic/respondent" effect 1.5')
    with pytest.raises(StudyError, match="unknown model parameter 'effect'"):
        lang_check_text(text, analyses=catalogue())  # default: no model takes custom params
    study, _ = lang_check_text(text, analyses=catalogue(), custom_params=lambda m: m.startswith("synthetic/"))
    assert study.models[0].params == {"effect": 1.5}


def test_asking_a_provider_imports_no_litellm():
    code = (
        "import sys, llmexp.providers as p\n"
        "from llmexp.runner import cost\n"
        "assert p.for_model('synthetic/x').free and p.for_model('llmexp/gemma3-270m').free\n"
        "assert p.for_model('synthetic/x').custom_params and not p.for_model('openai/x').custom_params\n"
        "assert cost.model_price('llmexp/gemma3-270m') == cost.Price(0.0, 0.0, True)\n"
        "print('litellm' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
    from llmexp.providers import LlmexpProvider, make_response  # the lazy re-exports still work

    assert make_response("m", "yes").choices[0].message.content == "yes"
    assert LlmexpProvider.__name__ == "LlmexpProvider"
