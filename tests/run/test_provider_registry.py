"""A provider is one class declaring its capabilities: one defined in this file alone answers a
run, and the runner follows what it declares (structured trial, no cache, preflight)."""

from __future__ import annotations

import pytest
from runhelpers import make_study, make_trials

from llmexp import providers
from llmexp.errors import RunError
from llmexp.providers import LlmexpProvider, Provider, Reply
from llmexp.runner import run_study

SEEN: list[dict] = []


class _EchoHandler(LlmexpProvider):
    """Answers every trial with its first label, recording the structured trial it got."""

    def answer(self, model, messages, trial, params, seed):
        SEEN.append(trial)
        return Reply(text=trial["answer"]["labels"][0])


class Echo(Provider):
    name = "test-echo"
    prefix = "echo/"
    litellm_provider = "llmexp-test-echo"
    needs_structured_trial = True
    concurrency_cap = 1
    cacheable = False
    free = True

    @classmethod
    def handler(cls):
        return _EchoHandler()


class Broken(Echo):
    name = "test-broken"
    prefix = "broken/"
    litellm_provider = "llmexp-test-broken"

    @classmethod
    def preflight(cls, model):
        return f"model {model!r} cannot run here (a test provider that never can)"


@pytest.fixture
def registered():
    providers.ensure_registered()
    SEEN.clear()
    for cls in (Echo, Broken):
        providers.register(cls)
    yield
    for cls in (Echo, Broken):
        providers.unregister(cls.name)


def test_capabilities_are_asked_by_model_name(registered):
    assert providers.for_model("echo/anything") is Echo
    assert providers.for_model("openai/gpt-4o-mini") is providers.LitellmModel
    assert providers.for_model("synthetic/respondent").simulated
    embedded = providers.for_model("llmexp/gemma3-270m")
    assert embedded.concurrency_cap == 1 and embedded.reuses_prompt_prefix and embedded.answers_by_logprob
    assert Echo.litellm_model("echo/x") == "llmexp-test-echo/x"
    assert providers.for_model("openai/x").litellm_model("openai/x") == "openai/x"


def test_a_provider_defined_in_a_test_answers_a_run_uncached(registered, tmp_path):
    study = make_study(models=("echo/model",), n_units=2)
    trials = make_trials(study)
    first = run_study(study, trials, run_dir=tmp_path / "a", progress=False).to_pandas()
    assert (first["status"] == "ok").all() and set(first["label"]) == {"yes"}
    assert {t["trial_id"] for t in SEEN} == set(trials["trial_id"])  # the structured trial travelled
    run_study(study, trials, run_dir=tmp_path / "b", progress=False)
    assert len(SEEN) == 2 * len(trials)  # not cacheable: asked again


def test_preflight_stops_a_run_before_anything_is_written(registered, tmp_path):
    study = make_study(models=("broken/model",), n_units=1)
    with pytest.raises(RunError, match="never can"):
        run_study(study, make_trials(study), run_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
