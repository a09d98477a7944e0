"""Validation of per-mode completion budgets on a model: `max_tokens aggregate 40`.

`max_tokens N` (a plain model parameter) applies to every mode; `max_tokens MODE N` sets the
budget of one mode's trials, so a blind design answering one number pays for 8 tokens while
the within and aggregate designs answering one line per condition get 40. Without any, each
trial's budget is computed from its answer type (`AnswerType.token_budget`). Kept beside
`validate.py`, which calls `mode_max_tokens` for every model statement.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmexp.lang import ast
from llmexp.spec import format_number

if TYPE_CHECKING:  # the validator imports this module
    from llmexp.lang.validate import Validator

PER_MODE_PARAMS = ("max_tokens",)


def mode_max_tokens(v: Validator, decl: ast.ModelDecl) -> dict[str, int]:
    """Mode name -> completion budget from the model's `max_tokens MODE N` clauses; each
    problem is reported where it stands."""
    budgets: dict[str, int] = {}
    for param, mode, literal in decl.mode_params:
        if param.name not in PER_MODE_PARAMS:
            v.error(
                f"only max_tokens can be set per mode, not '{param.name}'",
                param.pos,
                f"write `{param.name} VALUE` for every mode, or `max_tokens {mode.name} N`",
            )
            continue
        if v.mode_named(mode) is None:
            continue
        value = literal.value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer() or value < 1:
            shown = format_number(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)
            v.error(f"max_tokens {mode.name} must be a whole number of at least 1, got {shown}", literal.pos)
            continue
        if mode.name in budgets:
            v.error(f"max_tokens {mode.name} is given twice", mode.pos)
            continue
        budgets[mode.name] = int(value)
    return budgets
