"""Validation of `sequence` and `check` statements (AST -> spec.QuestionSequence, spec.Check).

Kept beside `validate.py` (which calls `sequences_and_checks`) so the rules of multi-question
trials live in one place: every step names a declared outcome or check, no question is asked
twice, every check is asked inside a sequence (a check asked on its own checks nobody), and a
check's expected answer is one of its options.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmexp import modes, spec
from llmexp.errors import did_you_mean
from llmexp.lang import ast

if TYPE_CHECKING:  # the validator imports this module
    from llmexp.lang.validate import Validator


def _checks(v: Validator) -> list[spec.Check]:
    out = []
    for decl in v.all(ast.CheckDecl):
        answer = v.answer(decl.answer, f"check '{decl.name}'")
        v.check_template(decl.question, v.namespace, f"the question of '{decl.name}'", forbid_unspecified=True)
        if answer is None:
            continue
        if decl.expect.value not in answer.labels:
            options = ", ".join(f'"{label}"' for label in answer.labels) or "none: give it labelled options"
            v.error(f"check '{decl.name}': expect \"{decl.expect.value}\" is not one of its options ({options})", decl.expect.pos)
            continue
        out.append(spec.Check(name=decl.name, answer=answer, question=decl.question.value, expect=decl.expect.value))
    return out


def _steps(v: Validator, decl: ast.SequenceDecl, known: set[str], asked: dict[str, str]) -> list[str]:
    """The sequence's valid steps; each unknown or repeated name is reported where it stands."""
    steps = []
    for step in decl.steps:
        if step.name not in known:
            hint = did_you_mean(step.name, sorted(known))
            v.error(f"sequence '{decl.name}': '{step.name}' is not an outcome or a check", step.pos, hint)
        elif step.name in asked:
            v.error(f"sequence '{decl.name}': '{step.name}' is already asked in sequence '{asked[step.name]}'", step.pos)
        else:
            asked[step.name] = decl.name
            steps.append(step.name)
    return steps


def sequences_and_checks(v: Validator, outcomes: list[spec.Outcome]) -> tuple[list[spec.QuestionSequence], list[spec.Check]]:
    """The study's sequences and checks, every problem reported with its line and column."""
    checks = _checks(v)
    known = {o.name for o in outcomes} | {d.name for d in v.all(ast.CheckDecl)}
    asked: dict[str, str] = {}
    names: set[str] = set()
    sequences = []
    for decl in v.all(ast.SequenceDecl):
        if decl.name in names:
            v.error(f"sequence '{decl.name}' is declared twice", decl.pos)
            continue
        names.add(decl.name)
        steps = _steps(v, decl, known, asked)
        if len(decl.steps) < 2:
            v.error(f"sequence '{decl.name}' asks one question; a sequence needs at least two", decl.pos)
        elif len(steps) == len(decl.steps):
            sequences.append(spec.QuestionSequence(name=decl.name, steps=tuple(steps)))
    for decl in v.all(ast.CheckDecl):
        if decl.name not in asked:
            v.error(
                f"check '{decl.name}' is not asked in any sequence",
                decl.pos,
                f"list it in a sequence with the outcomes it checks, e.g. `sequence main: ..., {decl.name}`",
            )
    return sequences, checks


def sequential_mode(v: Validator, decl: ast.DesignDecl, mode: type[modes.Mode]) -> type[modes.Mode] | None:
    """The mode that renders `design X: MODE sequential`: the one MODE names as its
    sequential variant (the mode itself when it already exposes conditions in order)."""
    if mode.exposes_in_order:
        return mode
    if mode.sequential_variant is None:
        able = ", ".join(n for n in modes.names() if modes.get(n).sequential_variant or modes.get(n).exposes_in_order)
        v.error(f"design '{decl.name}': {mode.name} mode cannot be sequential (modes that can: {able})", decl.sequential)
        return None
    return modes.get(mode.sequential_variant)
