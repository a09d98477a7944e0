"""Cached answers of the embedded model are tied to the revision of the code that computed
them; hosted models' answers are keyed by content alone."""

import re

from llmexp import providers


def test_embedded_model_cache_keys_carry_the_answer_revision(monkeypatch):
    embedded = providers.for_model("llmexp/gemma3-270m")
    local = embedded.cache_key("abc")
    assert local != "abc" and local.startswith("abc@")
    # the form of the key is what finds earlier runs' cached answers again
    assert re.fullmatch(r"abc@local-\d{4}-\d{2}-\d{2}\.\d+", local)
    assert providers.for_model("openai/gpt-4o-mini").cache_key("abc") == "abc"
    assert providers.for_model("synthetic/respondent").cacheable is False
    monkeypatch.setattr(embedded, "answer_revision", "next")
    assert embedded.cache_key("abc") != local
