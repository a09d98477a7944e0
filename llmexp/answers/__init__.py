"""Answer types: one class per kind of answer, one module each, in a registry.

`get(spec_or_name)` returns the answer type (bound to the spec) that owns the prompt
instruction, parsing, value rules, the embedded model's options, the synthetic draw and
what the analysis fits; `parse_answer(text, answer, conditions)` parses a model's answer.
Every module of this package is imported here, so a new answer type is one new file with a
`@register`ed `AnswerType` subclass (see `base.py`).
"""

from __future__ import annotations

import importlib
import pkgutil

from llmexp.answers.base import (
    Aggregate,
    Answer,
    AnswerType,
    NumberForm,
    UnknownAnswerType,
    condition_line,
    condition_lines,
    condition_marker,
    find,
    get,
    lines_instruction,
    names,
    parse_answer,
    register,
    split_conditions,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "Aggregate",
    "Answer",
    "AnswerType",
    "NumberForm",
    "UnknownAnswerType",
    "condition_line",
    "condition_lines",
    "condition_marker",
    "find",
    "get",
    "lines_instruction",
    "names",
    "parse_answer",
    "register",
    "split_conditions",
]
