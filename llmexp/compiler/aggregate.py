"""Aggregate mode: ask directly for the experiment's result, one number per condition
(the share answering the first label, or the mean answer). With `split`, each part of the
level range is asked as its own experiment: the range-sensitivity check."""

from __future__ import annotations

from llmexp import expr as ex
from llmexp.compiler.base import join, register
from llmexp.compiler.multi import MultiConditionRenderer
from llmexp.compiler.unblinded import EXPERT
from llmexp.spec import AnswerSpec


@register("aggregate")
class AggregateRenderer(MultiConditionRenderer):
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
                        answer, ask = self.aggregate_answer(outcome.answer)
                        yield self.row(
                            model, replicate, "outcome", outcome.name, unit, None, None, conditions, pinned,
                            self.answer_json(answer, per_condition=True, of=outcome.answer.model_dump(mode="json")),
                            self.messages(unit, conditions, pinned, outcome, ask),
                            split=split, draw=replicate,
                        )

    @staticmethod
    def aggregate_answer(answer: AnswerSpec) -> tuple[AnswerSpec, str]:
        """What one number per condition means for this outcome type."""
        if answer.type in ("binary", "categorical"):
            label = answer.labels[0]
            return (
                AnswerSpec(type="probability", low=0.0, high=1.0),
                f'the percentage of respondents who answered "{label}"',
            )
        if answer.type == "probability":
            return answer, "the average answer, as a percentage"
        span = ""
        if answer.low is not None:
            span = f" (answers ranged from {ex.format_number(answer.low)} to {ex.format_number(answer.high)})"
        return (
            AnswerSpec(type="number", low=answer.low, high=answer.high),
            f"the average answer{span}",
        )

    def messages(self, unit, conditions, pinned, outcome, ask):
        possible = ""
        if outcome.answer.labels:
            quoted = [f'"{label}"' for label in outcome.answer.labels]
            possible = "The possible answers were " + ", ".join(quoted[:-1]) + " and " + quoted[-1] + "."
        form = "1) N%" if ask.startswith("the percentage") else "1) N"
        user = join(
            self.about(unit, conditions),
            "What a respondent saw " + self.placeholders_note() + "\n" + self.scenario(unit, None, pinned),
            "The question they answered: " + self.question(unit, None, pinned, outcome.question) + " " + possible,
            "The conditions:\n" + self.numbered(conditions),
            f"For each condition, predict {ask}. Write one line per condition, in the order above, "
            f'starting with its number, in the form "{form}" where N is your prediction.',
        )
        return [{"role": "system", "content": EXPERT}, {"role": "user", "content": user}]
