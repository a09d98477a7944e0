"""Aggregate mode: ask directly for the experiment's result, one number per condition
(the share answering the first label, or the mean answer). With `split`, each part of the
level range is asked as its own experiment: the range-sensitivity check."""

from __future__ import annotations

from llmexp import answers
from llmexp.modes.base import EXPERT, MultiConditionMode, join, register


@register
class AggregateMode(MultiConditionMode):
    name = "aggregate"
    accepts_persona = False
    can_split = True
    population = True
    persona_refusal = "an aggregate design asks about the whole population; it cannot take a persona"

    def parts(self):
        if not self.design.split:
            return [(None, self.level_cells)]
        name = self.study.treatments[0].name
        return [
            ((low, high), [c for c in self.level_cells if low - 1e-9 <= c[name] <= high + 1e-9])
            for low, high in self.design.split
        ]

    def count(self, model):
        return len(self.units.rows) * len(self.parts()) * model.replicates * len(self.study.outcomes)

    def trials(self, model):
        for unit in self.units.rows:
            pinned = self.pinned_values(unit)
            for split, levels in self.parts():
                conditions = self.conditions(unit, levels)
                for replicate in range(model.replicates):
                    for outcome in self.study.outcomes:
                        outcome = self.shown_outcome(outcome, unit, conditions, pinned)  # noqa: PLW2901
                        agg = answers.get(outcome.answer).aggregate()
                        yield self.row(
                            model, replicate, "outcome", outcome.name, unit, None, None, conditions, pinned,
                            self.answer_json(agg.answer, per_condition=True, of=outcome.answer.model_dump(mode="json")),
                            self.messages(unit, conditions, pinned, outcome, agg),
                            split=split, draw=replicate,
                        )

    def messages(self, unit, conditions, pinned, outcome, agg: answers.Aggregate):
        possible = ""
        if outcome.answer.labels:
            quoted = [f'"{label}"' for label in outcome.answer.labels]
            possible = "The possible answers were " + ", ".join(quoted[:-1]) + " and " + quoted[-1] + "."
        user = join(
            self.about(unit, conditions),
            "What a respondent saw " + self.placeholders_note() + "\n" + self.scenario(unit, None, pinned),
            "The question they answered: " + self.question(unit, None, pinned, outcome.question) + " " + possible,
            "The conditions:\n" + self.numbered(conditions),
            "For each condition, " + agg.instruction,
        )
        return [{"role": "system", "content": EXPERT}, {"role": "user", "content": user}]
