"""Cached answers of the embedded model are tied to the revision of the code that computed
them; hosted models' answers are keyed by content alone."""

from llmexp import providers


def test_embedded_model_cache_keys_carry_the_answer_revision(monkeypatch):
    local = providers.cache_key("llmexp/gemma3-270m", "abc")
    assert local != "abc" and local.startswith("abc@")
    assert providers.cache_key("openai/gpt-4o-mini", "abc") == "abc"
    monkeypatch.setattr(providers, "LOCAL_ANSWER_REVISION", "next")
    assert providers.cache_key("llmexp/gemma3-270m", "abc") != local
