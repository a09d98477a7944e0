"""Unblinded within-prompt mode: the whole design and all conditions in one prompt; the
model predicts a respondent's answer in each condition. Condition order is shuffled per
prompt with a recorded seed (the trial's `order_seed`), so order effects can be checked."""

from __future__ import annotations

from llmexp import answers
from llmexp.modes.base import EXPERT, MultiConditionMode, join, register


@register
class WithinMode(MultiConditionMode):
    name = "within"
    sequential_variant = "sequential"  # `design X: within sequential` (modes/sequential.py)

    def count(self, model):
        return len(self.units.rows) * self.persona_count() * model.replicates * len(self.study.outcomes)

    def trials(self, model):
        for r in self.shuffled_respondents(model):
            for outcome in self.study.outcomes:
                outcome = self.shown_outcome(outcome, r.unit, r.conditions, r.pinned)  # noqa: PLW2901
                yield self.row(
                    model, r.replicate, "outcome", outcome.name, r.unit, r.persona_id, r.persona, r.shown, r.pinned,
                    self.answer_json(outcome.answer, per_condition=True),
                    self.messages(r.unit, r.conditions, r.shown, r.pinned, r.persona_text, outcome),
                    order_seed=r.order_seed, draw=r.draw,
                )

    def messages(self, unit, conditions, shown, pinned, persona_text, outcome):
        about = self.about(unit, conditions)  # the design in natural order; the list below is shuffled
        if persona_text:
            about += f'\n\nThe respondent you predict was described to themselves as follows: "{persona_text}"'
        user = join(
            about,
            "What a respondent saw " + self.placeholders_note() + "\n" + self.scenario(unit, None, pinned),
            "The question they answered: " + self.question(unit, None, pinned, outcome.question),
            "The conditions:\n" + self.numbered(shown),
            "For each condition, predict the answer of a respondent who saw it. "
            + answers.get(outcome.answer).per_condition_instruction(),
        )
        return [{"role": "system", "content": EXPERT}, {"role": "user", "content": user}]
