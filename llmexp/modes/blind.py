"""Blind between-prompt mode: the standard practice. The prompt is the situation and the
question, nothing else: no word of randomization, other levels or condition labels."""

from __future__ import annotations

from llmexp.modes.base import BetweenMode, join, register

ROLE = "Imagine you are the person in the situation below. Answer as that person would, in their own voice."


@register
class BlindMode(BetweenMode):
    name = "blind"
    blind = True
    default = True

    def outcome_messages(self, unit, condition, conditions, pinned, persona_text, outcome):
        user = join(
            persona_text,
            self.scenario(unit, condition, pinned),
            self.question(unit, condition, pinned, outcome.question),
            self.answer_instruction(outcome.answer),
        )
        return [{"role": "system", "content": ROLE}, {"role": "user", "content": user}]

    def probe_messages(self, unit, condition, conditions, pinned, persona_text, covariate):
        user = join(
            persona_text,
            self.scenario(unit, condition, pinned),
            "Fill in the blank: " + self.probe_text(unit, condition, pinned, covariate),
            self.answer_instruction(covariate.probe.answer),
        )
        return [{"role": "system", "content": ROLE}, {"role": "user", "content": user}]
