"""Sequential within-subject mode: one simulated respondent sees every condition in turn, in
one conversation, and answers each before the next (a within-subject survey, as people take
it). `design X: sequential` or `design X: within sequential` (the within mode names this
one as its `sequential_variant`).

The condition order is shuffled per respondent with a recorded seed (`order_seed`) and each
trial records its condition's position (`exposure`: 0 is the first exposure, the one a
between-subject comparison can use). Each question is a trial of its own that follows the
previous one (`follows`): the runner sends it after the earlier turns and the model's own
answers. The respondent speaks in its own voice, as in a blind prompt, and is told nothing
about the design; it only sees that the situation changes.
"""

from __future__ import annotations

from collections.abc import Iterator

from llmexp.modes.base import Condition, Mode, join, register
from llmexp.modes.blind import ROLE
from llmexp.spec import Check, ModelSpec, Outcome

NEXT_SITUATION = "Now imagine the situation is different."


@register
class SequentialMode(Mode):
    name = "sequential"
    exposes_in_order = True

    def questions(self) -> list[tuple[str, Outcome | Check]]:
        """(kind, outcome or check) asked at each exposure: outcomes asked alone first, then
        each sequence's steps in its order."""
        out: list[tuple[str, Outcome | Check]] = [("outcome", o) for o in self.study.outcomes if self.study.sequence_of(o.name) is None]
        checks = {c.name for c in self.study.checks}
        for sequence in self.study.sequences:
            out += [("check", self.study.check(n)) if n in checks else ("outcome", self.study.outcome(n)) for n in sequence.steps]
        return out

    def count(self, model: ModelSpec) -> int:
        per_exposure = len(self.study.outcomes) + len(self.study.checks)
        return len(self.units.rows) * self.persona_count() * model.replicates * len(self.level_cells) * per_exposure

    def trials(self, model: ModelSpec) -> Iterator[dict]:
        for r in self.shuffled_respondents(model):
            respondent = (model, r.replicate, r.unit, r.persona_id, r.persona, r.persona_text, r.pinned, r.order_seed)
            yield from self.respondent_rows(r.shown, respondent, draw=r.draw)

    def respondent_rows(self, shown: list[Condition], respondent: tuple, draw: int) -> Iterator[dict]:
        """One respondent's conversation: every question at every exposure, each step
        following the one before."""
        model, replicate, unit, persona_id, persona, persona_text, pinned, order_seed = respondent
        follows = None
        for position, condition in enumerate(shown):
            for step, (kind, asked) in enumerate(self.questions()):
                question = self.shown_outcome(asked, unit, [condition], pinned) if isinstance(asked, Outcome) else asked
                messages = self.turn(unit, condition, pinned, persona_text, question, first=follows is None, new_situation=step == 0)
                extra = {"expect": question.expect} if isinstance(question, Check) else {}
                row = self.row(
                    model, replicate, kind, question.name, unit, persona_id, persona, [condition], pinned,
                    self.answer_json(question.answer, **extra), messages,
                    order_seed=order_seed, draw=draw, follows=follows, exposure=position,
                )  # fmt: skip
                follows = row["trial_id"]
                yield row

    def turn(self, unit, condition, pinned, persona_text, question, first: bool, new_situation: bool) -> list[dict]:
        """The new messages of one step: the whole first prompt; then, at a new exposure,
        the changed situation and the question; else the question alone."""
        ask = join(self.question(unit, condition, pinned, question.question), self.answer_instruction(question.answer))
        if first:
            user = join(persona_text, self.scenario(unit, condition, pinned), ask)
            return [{"role": "system", "content": ROLE}, {"role": "user", "content": user}]
        if new_situation:
            return [{"role": "user", "content": join(NEXT_SITUATION, self.scenario(unit, condition, pinned), ask)}]
        return [{"role": "user", "content": ask}]
