"""`check` warns when a treatment description starts with an article: prompts render
"The {description} shown to each respondent", which would read "The the ..." (the prompt
itself is not changed: that would change every existing study's prompts and cache keys)."""

from __future__ import annotations

import pytest

from llmexp import check_text

STUDY = """study "t" seed 1
units questions
  row id = "a", thing = "x"
treatment t = levels(1, 2) description "{description}"
context "See {{thing}}: {{t}}."
outcome o: binary "yes" / "no"
  question "Yes?"
"""


@pytest.mark.parametrize("article", ["the", "The", "a", "A", "an", "AN"])
def test_a_leading_article_is_a_warning_with_line_and_column(article):
    text = STUDY.format(description=f"{article} set of offers")
    study, warnings = check_text(text, "t.study")
    (w,) = [w for w in warnings if "description starts with" in w.message]
    assert (w.line, w.column, w.severity) == (4, 40, "warning")
    assert w.message == (
        f"treatment 't': the description starts with '{article}': prompts say "
        f"\"The {article} set of offers shown to each respondent\" (drop '{article}')"
    )
    # the description itself is kept as written: prompts (and cache keys) do not change
    assert study.treatment("t").description == f"{article} set of offers"


@pytest.mark.parametrize("description", ["set of offers", "theme of the ad", "another price", "anchor"])
def test_no_warning_without_an_article(description):
    _, warnings = check_text(STUDY.format(description=description), "t.study")
    assert not [w for w in warnings if "description starts with" in w.message]
