"""Shared wording for prompts that list several conditions (within and aggregate modes)."""

from __future__ import annotations

from llmexp.compiler.base import Condition, Renderer, phrase


class MultiConditionRenderer(Renderer):
    def numbered(self, conditions: list[Condition]) -> str:
        return "\n".join(f"{i}) {self.condition_label(c)}" for i, c in enumerate(conditions, start=1))

    def placeholders_note(self) -> str:
        names = ", ".join(f"[{phrase(t.name)}]" for t in self.study.treatments)
        return f"(Here {names} stands for the value in the respondent's condition.)"

    def about(self, unit, conditions) -> str:
        return " ".join(
            [
                "About the study: this was a survey with many respondents.",
                self.randomization_statement(unit, conditions),
                self.blindness_statement(),
            ]
        )
