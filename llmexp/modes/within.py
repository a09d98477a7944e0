"""Unblinded within-prompt mode: the whole design and all conditions in one prompt; the
model predicts a respondent's answer in each condition. Condition order is shuffled per
prompt with a recorded seed (the trial's `order_seed`), so order effects can be checked."""

from __future__ import annotations

import numpy as np

from llmexp import answers
from llmexp.modes.base import EXPERT, MultiConditionMode, join, register
from llmexp.seeding import stable_int


@register
class WithinMode(MultiConditionMode):
    name = "within"
    sequential_variant = "sequential"  # `design X: within sequential` (modes/sequential.py)

    def count(self, model):
        return len(self.units.rows) * self.persona_count() * model.replicates * len(self.study.outcomes)

    def trials(self, model):
        for unit in self.units.rows:
            unit_id = str(unit[self.units.key])
            conditions = self.conditions(unit)
            pinned = self.pinned_values(unit)
            for index in range(self.persona_count()):
                persona_id, persona = self.persona_draw(unit_id, {}, index)
                persona_text = self.describe_persona(unit, persona) if persona else ""
                for replicate in range(model.replicates):
                    order_seed = stable_int(self.study.seed, self.design.name, "order", unit_id, index, replicate) % (2**31)
                    order = np.random.default_rng(order_seed).permutation(len(conditions))
                    shown = [conditions[i] for i in order]
                    for outcome in self.study.outcomes:
                        outcome = self.shown_outcome(outcome, unit, conditions, pinned)  # noqa: PLW2901
                        yield self.row(
                            model, replicate, "outcome", outcome.name, unit, persona_id, persona, shown, pinned,
                            self.answer_json(outcome.answer, per_condition=True),
                            self.messages(unit, conditions, shown, pinned, persona_text, outcome),
                            order_seed=order_seed, draw=index * model.replicates + replicate,
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
