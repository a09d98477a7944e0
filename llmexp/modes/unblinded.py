"""Unblinded between-prompt mode: one condition per prompt, but the prompt states the
design (what was randomized, over which values, that the respondent saw one value and
did not know), and asks the model, as an expert, to predict the respondent's answer."""

from __future__ import annotations

from llmexp.modes.base import EXPERT, BetweenMode, join, register


@register
class UnblindedMode(BetweenMode):
    name = "unblinded"
    states_design = True

    def about(self, unit, conditions, persona_text) -> str:
        parts = [
            "About the study: this was a survey with many respondents.",
            self.randomization_statement(unit, conditions),
            self.blindness_statement(),
        ]
        text = " ".join(parts)
        if persona_text:
            text += f'\n\nThe respondent you predict was described to themselves as follows: "{persona_text}"'
        return text

    def outcome_messages(self, unit, condition, conditions, pinned, persona_text, outcome):
        user = join(
            self.about(unit, conditions, persona_text),
            "What this respondent saw:\n" + self.scenario(unit, condition, pinned),
            "The question they answered: " + self.question(unit, condition, pinned, outcome.question),
            "Predict this respondent's answer. " + self.answer_instruction(outcome.answer),
        )
        return [{"role": "system", "content": EXPERT}, {"role": "user", "content": user}]

    def followup_messages(self, unit, condition, pinned, question):
        user = join(
            "The next question they answered: " + self.question(unit, condition, pinned, question.question),
            "Predict this respondent's answer. " + self.answer_instruction(question.answer),
        )
        return [{"role": "user", "content": user}]

    def probe_messages(self, unit, condition, conditions, pinned, persona_text, covariate):
        user = join(
            self.about(unit, conditions, persona_text),
            "What this respondent saw:\n" + self.scenario(unit, condition, pinned),
            'Predict how this respondent would fill in the blank: "'
            + self.probe_text(unit, condition, pinned, covariate)
            + '" '
            + self.answer_instruction(covariate.probe.answer),
        )
        return [{"role": "system", "content": EXPERT}, {"role": "user", "content": user}]
