"""The mode base class, the mode registry and the rendering every mode shares.

A blinding mode is one class in one file of this package (`blind.py`, `unblinded.py`, ...):
it declares what it can do as class attributes (the capabilities below) and renders its
trials. Every other module asks `llmexp.modes.get(name).<capability>` and never compares
mode names, so a new mode is a new file: nothing else has to learn its name.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from llmexp import answers
from llmexp import expr as ex
from llmexp.errors import LlmexpError, did_you_mean
from llmexp.fields import Namespace
from llmexp.seeding import canonical, short_hash, stable_int
from llmexp.spec import AnswerSpec, Check, Design, ModelSpec, Outcome, Study
from llmexp.templates import render

MODES: dict[str, type[Mode]] = {}  # name -> mode class; the one list of modes

EXPERT = (
    "You are an expert in human behavior. You predict how real people answered in studies, "
    "using what you know about how people actually decide."
)


def register(cls: type[Mode]) -> type[Mode]:
    """Class decorator: adds a mode to the registry under its `name`."""
    if not cls.name:
        raise LlmexpError(f"mode class {cls.__name__} has no name")
    if cls.name in MODES and MODES[cls.name] is not cls:
        raise LlmexpError(f"two modes are named {cls.name!r}: {MODES[cls.name].__name__} and {cls.__name__}")
    MODES[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Removes a mode (for tests that define one of their own)."""
    MODES.pop(name, None)


def names() -> tuple[str, ...]:
    """Every registered mode name, sorted (the order error messages list them in)."""
    return tuple(sorted(MODES))


def get(name: str) -> type[Mode]:
    """The mode class registered under `name`; an unknown name is the user's error."""
    try:
        return MODES[name]
    except KeyError:
        hint = f"; {close}" if (close := did_you_mean(name, MODES)) else ""
        raise LlmexpError(f"unknown mode {name!r}{hint} (modes: {', '.join(names())})") from None


def default() -> type[Mode]:
    """The mode of the one design a study gets when it declares none."""
    return next(cls for cls in MODES.values() if cls.default)


def with_capability(capability: str) -> tuple[str, ...]:
    """The names of the modes whose `capability` is true, sorted (for messages)."""
    return tuple(n for n in names() if getattr(MODES[n], capability))


@dataclass(frozen=True)
class Condition:
    """One treatment cell: the levels and, for a given unit, the values shown."""

    cell: str
    levels: dict[str, Any]
    values: dict[str, Any]

    def as_json(self) -> dict:
        return {"cell": self.cell, "levels": self.levels, "values": self.values}


@dataclass(frozen=True)
class Respondent:
    """One simulated respondent of a multi-condition mode (`Mode.shuffled_respondents`)."""

    unit: dict
    conditions: list
    pinned: dict
    persona_id: str | None
    persona: dict | None
    persona_text: str
    replicate: int
    order_seed: int
    shown: list  # the conditions in the order shown
    draw: int


def cell_id(levels: dict[str, Any]) -> str:
    return ",".join(f"{k}={ex.format_number(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v}" for k, v in levels.items())


def phrase(name: str) -> str:
    return name.replace("_", " ")


class Mode:
    """Base of every blinding mode: its capabilities (class attributes that callers ask
    instead of testing names) and, per instance, the renderer of one design's trials.

    A subclass sets `name` and the capabilities that differ from these defaults, implements
    `trials()` and `count()`, and is decorated with `@register`.
    """

    # ---------------------------------------------------------------- capabilities
    name: ClassVar[str] = ""  # the keyword in `modes ...` / `design X: <mode> ...`
    accepts_persona: ClassVar[bool] = True  # a design in this mode may use `with persona`
    asks_probes: ClassVar[bool] = False  # probes (unspecified-covariate questions) are asked
    per_condition: ClassVar[bool] = False  # one prompt shows several conditions, one answer value each
    can_split: ClassVar[bool] = False  # the level range may be split into parts asked separately
    states_design: ClassVar[bool] = False  # the prompt states the randomization/design
    blind: ClassVar[bool] = False  # sees one condition and is told nothing about the design
    population: ClassVar[bool] = False  # the answer is the population's result (share or mean), not one respondent's
    default: ClassVar[bool] = False  # the mode of the design a study gets when it declares none
    # the mode that renders `design X: <this mode> sequential` (None: this mode cannot be sequential)
    sequential_variant: ClassVar[str | None] = None
    exposes_in_order: ClassVar[bool] = False  # one respondent sees several conditions in turn (trial column `exposure`)
    persona_refusal: ClassVar[str] = ""  # why `with persona` is refused (when accepts_persona is false)

    def __init__(self, study: Study, design: Design):
        self.study = study
        self.design = design
        self.units = study.units
        self.persona = study.persona(design.persona) if design.persona else None
        self.namespace = Namespace.from_study(study)
        self.treatment_types = {t.name: t.value_type for t in study.treatments}
        self.unit_types = dict(study.units.columns)
        self.level_cells = self._level_cells()

    # ---------------------------------------------------------------- to implement
    def trials(self, model: ModelSpec) -> Iterator[dict]:
        raise NotImplementedError

    def count(self, model: ModelSpec) -> int:
        """How many trials `trials(model)` yields, computed without rendering any."""
        raise NotImplementedError

    # ---------------------------------------------------------------- conditions
    def _level_cells(self) -> list[dict[str, Any]]:
        if self.study.cells is not None:
            return [dict((t.name, cell[t.name]) for t in self.study.treatments) for cell in self.study.cells]
        names = [t.name for t in self.study.treatments]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(t.levels for t in self.study.treatments))]

    def conditions(self, unit: dict, levels_list: list[dict] | None = None) -> list[Condition]:
        result = []
        for levels in levels_list if levels_list is not None else self.level_cells:
            values = {}
            for treatment in self.study.treatments:
                # a labelled or column level stands for its value; level texts are templates of unit fields
                level = ex.level_value(treatment, levels[treatment.name], unit, lambda name: self.lookup(unit, None, {})(name))
                if treatment.value is None:
                    values[treatment.name] = level
                else:
                    env = {f"unit.{k}": v for k, v in unit.items()}
                    env["level"] = level
                    value = ex.evaluate(treatment.value, env)
                    values[treatment.name] = round(value, 6) if isinstance(value, float) else value
            result.append(Condition(cell_id(levels), dict(levels), values))
        return result

    # ---------------------------------------------------------------- text pieces
    def pinned_values(self, unit: dict) -> dict[str, Any]:
        env = {f"unit.{k}": v for k, v in unit.items()}
        return {name: ex.evaluate(value, env) for name, value in self.design.pins.items()}

    def pinned_types(self) -> dict[str, str]:
        types = {f"unit.{k}": v for k, v in self.unit_types.items()}
        return {name: ex.result_type(value, types) for name, value in self.design.pins.items()}

    def lookup(self, unit: dict, condition: Condition | None, pinned: dict[str, Any], persona: dict | None = None):
        """A template field resolver for one unit/condition; `condition=None` shows
        treatments as placeholders like [price] (for multi-condition prompts)."""
        pinned_types = self.pinned_types()

        def get(name: str) -> str:
            target = self.namespace.resolve(name)
            if target is None and persona is not None:
                key = name.split(".", 1)[1] if name.startswith("persona.") else name
                if key in persona:
                    return ex.format_value(persona[key], "text")
            if target is None:  # validated earlier; only reachable with a hand-built spec
                raise KeyError(name)
            if target.kind == "unit":
                return ex.format_value(unit[target.name], self.unit_types[target.name], self.units.money_formats.get(target.name))
            if target.kind == "treatment":
                if condition is None:
                    return f"[{self.treatment_phrase(target.name)}]"
                treatment = self.study.treatment(target.name)
                return ex.format_value(condition.values[target.name], treatment.value_type, treatment.money_format)
            if target.kind == "covariate":
                covariate = self.study.covariate(target.name)
                if covariate.specified:
                    assert covariate.value is not None  # the language gives every specified covariate a value
                    env = {f"unit.{k}": v for k, v in unit.items()}
                    if condition is not None:
                        env.update({f"treatment.{k}": v for k, v in condition.values.items()})
                    elif any(r.startswith("treatment.") for r in ex.references(covariate.value)):
                        # computed from a treatment, in a prompt listing all conditions: it
                        # varies by condition, so it reads as a placeholder like the treatment
                        return f"[{phrase(target.name)}]"
                    shown_as = ex.inherited_money_format(covariate.value, self.units.money_formats)
                    return ex.format_value(ex.evaluate(covariate.value, env), covariate.value_type, shown_as)
                shown_as = ex.inherited_money_format(self.design.pins[target.name], self.units.money_formats)
                return ex.format_value(pinned[target.name], pinned_types[target.name], shown_as)
            return ex.format_value((persona or {}).get(target.name), "text")

        return get

    def scenario(self, unit: dict, condition: Condition | None, pinned: dict[str, Any]) -> str:
        """The situation text: context plus sentences for stated covariates."""
        get = self.lookup(unit, condition, pinned)
        parts = [render(self.study.context, get).strip()]
        for covariate in self.study.covariates:
            stated = covariate.specified or covariate.name in pinned
            if stated and covariate.text:
                parts.append(render(covariate.text, get).strip())
        return "\n".join(p for p in parts if p)

    def question(self, unit: dict, condition: Condition | None, pinned: dict[str, Any], template: str) -> str:
        return render(template, self.lookup(unit, condition, pinned)).strip()

    def describe_persona(self, unit: dict, persona: dict) -> str:
        if self.persona is None:
            return ""
        if self.persona.describe:
            get = self.lookup(unit, None, {}, persona)

            def persona_first(name: str) -> str:
                key = name.split(".", 1)[1] if name.startswith("persona.") else name
                if key in persona:
                    return ex.format_value(persona[key], "text")
                return get(name)

            return render(self.persona.describe, persona_first).strip()
        facts = "; ".join(f"{phrase(k)}: {ex.format_value(v, 'text')}" for k, v in persona.items())
        return f"About you: {facts}."

    # ---------------------------------------------------------------- answers
    @staticmethod
    def answer_instruction(answer: AnswerSpec) -> str:
        """How to answer one question: the answer type's own sentence."""
        return answers.get(answer).instruction()

    def max_tokens(self, answer: dict, conditions: list[Condition]) -> int:
        """The completion budget of a trial when the study sets no max_tokens: what the
        answer type needs for this many conditions (a mode may ask for more)."""
        return answers.get(answer).token_budget(len(conditions))

    @staticmethod
    def answer_json(answer: AnswerSpec, **extra: Any) -> dict:
        data = answer.model_dump(mode="json")
        data.update(extra)
        return data

    def shown_outcome(self, outcome: Outcome, unit: dict, conditions: list[Condition], pinned: dict[str, Any]) -> Outcome:
        """The outcome as this trial shows it: only the options whose `if` holds in one of
        its conditions (each keeps its value: its index in the full list), option texts
        rendered as templates. Its answer is the trial's answer spec, so an option not
        shown is not a valid answer. Unchanged when no option has a condition or a field."""
        answer = outcome.answer
        if not answer.shown_if and not any("{" in label or "}" in label for label in answer.labels):
            return outcome
        conds = answer.shown_if or tuple({} for _ in answer.labels)
        keep = [i for i, cond in enumerate(conds) if not cond or any(all(c.levels[t] == v for t, v in cond.items()) for c in conditions)]
        condition = conditions[0] if len(conditions) == 1 else None
        labels = tuple(self.question(unit, condition, pinned, answer.labels[i]) for i in keep)
        values = tuple(float(i) for i in keep) if len(keep) != len(answer.labels) else ()
        shown = answer.model_copy(update={"labels": labels, "shown_if": (), "label_values": values})
        return outcome.model_copy(update={"answer": shown})

    # ---------------------------------------------------------------- design statement
    def randomization_statement(self, unit: dict, conditions: list[Condition]) -> str:
        """Says what was randomized, over which values, with which distribution."""
        treatments = self.study.treatments
        if len(treatments) == 1:
            t = treatments[0]
            shown = [ex.format_value(c.values[t.name], t.value_type, t.money_format) for c in conditions]
            if t.value_type == "text":  # quoted: text levels may be sentences with their own commas and periods
                shown = [f'"{v}"' for v in shown]
            text = (
                f"The {self.treatment_phrase(t.name)} shown to each respondent was drawn at random, with equal probability, "
                f"from these {len(shown)} values: {', '.join(shown)}."
            )
            numeric = [c.values[t.name] for c in conditions if isinstance(c.values[t.name], (int, float))]
            if len(numeric) == len(conditions) and len(numeric) > 2:
                low = ex.format_value(min(numeric), t.value_type, t.money_format)
                high = ex.format_value(max(numeric), t.value_type, t.money_format)
                text += f" So it ranged from {low} to {high}."
            return text
        described = "; ".join(f"({i}) {self.condition_label(c)}" for i, c in enumerate(conditions, start=1))
        return (
            f"Each respondent was assigned at random, with equal probability, to one of {len(conditions)} "
            f"conditions: {described}."
        )

    def blindness_statement(self) -> str:
        between = [self.treatment_phrase(t.name) for t in self.study.treatments if t.assignment == "between"]
        within = [self.treatment_phrase(t.name) for t in self.study.treatments if t.assignment == "within"]
        parts = []
        if between:
            parts.append(f"Each respondent saw only their own {' and '.join(between)}.")
        if within:
            parts.append(f"Each respondent answered once for every {' and '.join(within)}, one at a time.")
        what = "the values had" if within else "it had"
        parts.append(f"They did not know that {what} been randomized or what other respondents were shown.")
        return " ".join(parts)

    def condition_label(self, condition: Condition) -> str:
        return ", ".join(
            f"{self.treatment_phrase(t.name)} {ex.format_value(condition.values[t.name], t.value_type, t.money_format)}"
            for t in self.study.treatments
        )

    def treatment_phrase(self, name: str) -> str:
        """How prompts name a treatment: its `description`, else its name in words."""
        return self.study.treatment(name).description or phrase(name)

    # ---------------------------------------------------------------- personas
    def persona_draw(self, unit_id: str, key_levels: dict[str, Any], index: int) -> tuple[str | None, dict | None]:
        """Deterministic persona draw `index` for a unit and (between-subject) levels."""
        if self.persona is None:
            return None, None
        seed = stable_int(self.study.seed, "persona", self.persona.name, unit_id, key_levels, index)
        rng = np.random.default_rng(seed)
        if self.persona.rows and (not self.persona.replacement or self.persona.quota):
            row_index = self.cell_sample(unit_id, key_levels)[index]
            return f"{self.persona.name}-row{row_index + 1}", dict(self.persona.rows[row_index])
        if self.persona.rows:
            row_index = int(rng.integers(len(self.persona.rows)))
            return f"{self.persona.name}-row{row_index + 1}", dict(self.persona.rows[row_index])
        values = {}
        for attribute in self.persona.attributes:
            values[attribute.name] = draw(attribute.distribution, rng)
        return f"{self.persona.name}-{short_hash([seed])[:8]}", values

    def cell_sample(self, unit_id: str, key_levels: dict[str, Any]) -> list[int]:
        """The persona rows of one cell, in draw order (`without replacement`, `quota`): one
        seeded draw per cell, so draw `index` is its `index`-th row and no row repeats
        unless drawn with replacement. Each quota value gets `Persona.quota_counts()` rows
        from the rows holding it; the groups are then shuffled together."""
        persona = self.persona
        assert persona is not None and persona.rows is not None
        key = (unit_id, canonical(key_levels))
        samples = self.__dict__.setdefault("_cell_samples", {})
        if key not in samples:
            rng = np.random.default_rng(stable_int(self.study.seed, "persona-sample", persona.name, unit_id, key_levels))
            if not persona.quota:
                samples[key] = [int(i) for i in rng.permutation(len(persona.rows))[: persona.count]]
            else:
                chosen: list[int] = []
                for (value, _), n in zip(persona.quota, persona.quota_counts(), strict=True):
                    pool = persona.quota_pool(value)
                    chosen += [int(pool[j]) for j in rng.choice(len(pool), size=n, replace=persona.replacement)]
                samples[key] = [chosen[int(j)] for j in rng.permutation(len(chosen))]
        return samples[key]

    def between_levels(self, levels: dict[str, Any]) -> dict[str, Any]:
        """The levels a persona draw depends on: within-subject treatments share a draw."""
        return {t.name: levels[t.name] for t in self.study.treatments if t.assignment == "between"}

    def persona_count(self) -> int:
        return self.persona.count if self.persona else 1

    def shuffled_respondents(self, model: ModelSpec) -> Iterator[Respondent]:
        """Every unit x persona draw x replicate with all its conditions in a seeded order
        (the seed recorded as `order_seed`): for modes that show one respondent (or one
        prompt) several conditions."""
        for unit in self.units.rows:
            unit_id = str(unit[self.units.key])
            conditions = self.conditions(unit)
            pinned = self.pinned_values(unit)
            for index in range(self.persona_count()):
                persona_id, persona = self.persona_draw(unit_id, {}, index)
                persona_text = self.describe_persona(unit, persona) if persona else ""
                for replicate in range(model.replicates):
                    order_seed = stable_int(self.study.seed, self.design.name, "order", unit_id, index, replicate) % (2**31)
                    shown = [conditions[i] for i in np.random.default_rng(order_seed).permutation(len(conditions))]
                    yield Respondent(unit, conditions, pinned, persona_id, persona, persona_text, replicate, order_seed,
                                     shown, draw=index * model.replicates + replicate)

    # ---------------------------------------------------------------- rows
    def row(
        self,
        model: ModelSpec,
        replicate: int,
        kind: str,
        target: str,
        unit: dict,
        persona_id: str | None,
        persona: dict | None,
        conditions: list[Condition],
        pinned: dict[str, Any],
        answer: dict,
        messages: list[dict],
        split: tuple[float, float] | None = None,
        order_seed: int | None = None,
        draw: int = 0,
        follows: str | None = None,
        exposure: int | None = None,
    ) -> dict:
        unit_id = str(unit[self.units.key])
        answer = unit_range(answer, unit)
        params = dict(model.params)
        if self.name in model.mode_max_tokens:  # `max_tokens MODE N` (part of the cache key, as any param)
            params["max_tokens"] = model.mode_max_tokens[self.name]
        content = {
            "model": model.name,
            "params": params,
            "messages": messages,
            "answer": answer,
            "draw": draw,
            "replicate": replicate,
        }
        if follows is not None:  # a sequence step: its own turn is the same for every respondent
            content["follows"] = follows
        cache_key = short_hash(content)
        trial_id = short_hash([self.design.name, kind, target, unit_id, persona_id, cache_key])
        return {
            "trial_id": trial_id,
            "cache_key": cache_key,
            "study": self.study.name,
            "design": self.design.name,
            "mode": self.name,
            "model": model.name,
            # the budget computed when the study gives none is sent, not keyed: it follows
            # from the answer and the conditions, which the key holds
            "params": canonical(params if "max_tokens" in params else {**params, "max_tokens": self.max_tokens(answer, conditions)}),
            "replicate": replicate,
            "kind": kind,
            "target": target,
            "unit_id": unit_id,
            "unit": canonical(unit),
            "persona_id": persona_id,
            "persona": canonical(persona) if persona is not None else None,
            "cell": conditions[0].cell if len(conditions) == 1 else None,
            "conditions": canonical([c.as_json() for c in conditions]),
            "pinned": canonical(pinned),
            "split": canonical(list(split)) if split else None,
            "answer": canonical(answer),
            "messages": canonical(messages),
            "order_seed": order_seed,
            "follows": follows,
            "exposure": exposure,
        }


def unit_range(answer: dict, unit: dict) -> dict:
    """The answer spec with a range read from unit columns (`valid questions.min_value to
    questions.max_value`) filled in for this unit, also in an aggregate's `of` spec: the
    trial carries the numbers its answer is checked against."""
    refs = [(end, answer.get(f"{end}_ref")) for end in ("low", "high")]
    if not any(column for _, column in refs):
        of = answer.get("of")
        return {**answer, "of": unit_range(of, unit)} if isinstance(of, dict) and (of.get("low_ref") or of.get("high_ref")) else answer
    filled = {**answer, **{end: float(unit[column]) for end, column in refs if column}}
    if isinstance(answer.get("of"), dict):
        filled["of"] = unit_range(answer["of"], unit)
    return filled


def draw(distribution, rng: np.random.Generator) -> Any:
    kind = distribution.kind
    if kind == "fixed":
        return distribution.values[0]
    if kind == "choice":
        weights = distribution.weights or None
        index = int(rng.choice(len(distribution.values), p=weights))
        value = distribution.values[index]
        return int(value) if isinstance(value, float) and value.is_integer() else value
    if kind == "uniform":
        if distribution.integer:
            return int(rng.integers(int(distribution.low), int(distribution.high) + 1))
        return round(float(rng.uniform(distribution.low, distribution.high)), 2)
    value = float(rng.normal(distribution.mean, distribution.sd))
    return int(round(value)) if distribution.integer else round(value, 2)


class BetweenMode(Mode):
    """One condition per prompt (blind and unblinded): units x cells x persona draws x
    replicates, plus one probe trial per probed unspecified covariate that is not pinned."""

    asks_probes = True

    def outcome_messages(self, unit, condition, conditions, pinned, persona_text, outcome) -> list[dict]:
        raise NotImplementedError

    def followup_messages(self, unit, condition, pinned, question) -> list[dict]:
        """A later question of a sequence: the new user turn, sent after the earlier turns
        and the model's own answers to them (the runner puts them together)."""
        text = join(self.question(unit, condition, pinned, question.question), self.answer_instruction(question.answer))
        return [{"role": "user", "content": text}]

    def probe_messages(self, unit, condition, conditions, pinned, persona_text, covariate) -> list[dict]:
        raise NotImplementedError

    def probed(self) -> list:
        return [
            c
            for c in self.study.covariates
            if c.probe is not None and self.design.probes and c.name not in self.design.pins
        ]

    def count(self, model: ModelSpec) -> int:
        per_respondent = len(self.study.outcomes) + len(self.study.checks) + len(self.probed())
        return len(self.units.rows) * len(self.level_cells) * self.persona_count() * model.replicates * per_respondent

    def trials(self, model: ModelSpec) -> Iterator[dict]:
        probes = self.probed()
        for unit in self.units.rows:
            unit_id = str(unit[self.units.key])
            conditions = self.conditions(unit)
            pinned = self.pinned_values(unit)
            for condition in conditions:
                for index in range(self.persona_count()):
                    persona_id, persona = self.persona_draw(unit_id, self.between_levels(condition.levels), index)
                    persona_text = self.describe_persona(unit, persona) if persona else ""
                    for replicate in range(model.replicates):
                        draw_index = index * model.replicates + replicate
                        respondent = (model, replicate, unit, persona_id, persona, persona_text, condition, conditions, pinned, draw_index)
                        for outcome in self.study.outcomes:
                            if self.study.sequence_of(outcome.name) is not None:
                                continue  # asked in its sequence, below
                            outcome = self.shown_outcome(outcome, unit, [condition], pinned)  # noqa: PLW2901
                            messages = self.outcome_messages(unit, condition, conditions, pinned, persona_text, outcome)
                            yield self.row(
                                model, replicate, "outcome", outcome.name, unit, persona_id, persona,
                                [condition], pinned, self.answer_json(outcome.answer), messages, draw=draw_index,
                            )
                        for sequence in self.study.sequences:
                            yield from self.sequence_rows(sequence, *respondent)
                        for covariate in probes:
                            messages = self.probe_messages(unit, condition, conditions, pinned, persona_text, covariate)
                            yield self.row(
                                model, replicate, "probe", covariate.name, unit, persona_id, persona,
                                [condition], pinned, self.answer_json(covariate.probe.answer), messages, draw=draw_index,
                            )

    def sequence_rows(self, sequence, model, replicate, unit, persona_id, persona, persona_text, condition, conditions, pinned, draw_index):
        """One respondent's trials for a sequence, each step naming the step it follows."""
        follows = None
        for name in sequence.steps:
            is_check = name in {c.name for c in self.study.checks}
            question = self.study.check(name) if is_check else self.shown_outcome(self.study.outcome(name), unit, [condition], pinned)
            if follows is None:
                messages = self.outcome_messages(unit, condition, conditions, pinned, persona_text, question)
            else:
                messages = self.followup_messages(unit, condition, pinned, question)
            expect = question.expect if isinstance(question, Check) else None
            answer = self.answer_json(question.answer, expect=expect) if expect is not None else self.answer_json(question.answer)
            row = self.row(
                model, replicate, "check" if is_check else "outcome", name, unit, persona_id, persona,
                [condition], pinned, answer, messages, draw=draw_index, follows=follows,
            )  # fmt: skip
            follows = row["trial_id"]
            yield row

    def probe_text(self, unit, condition, pinned, covariate) -> str:
        return self.question(unit, condition, pinned, covariate.probe.question)


def join(*parts: str) -> str:
    """Paragraphs of a prompt, skipping empty ones."""
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


class MultiConditionMode(Mode):
    """Shared wording for prompts that list several conditions (one answer value each)."""

    per_condition = True
    states_design = True

    def numbered(self, conditions: list[Condition]) -> str:
        return "\n".join(f"{i}) {self.condition_label(c)}" for i, c in enumerate(conditions, start=1))

    def placeholders_note(self) -> str:
        names = ", ".join(f"[{self.treatment_phrase(t.name)}]" for t in self.study.treatments)
        return f"(Here {names} stands for the value in the respondent's condition.)"

    def about(self, unit, conditions) -> str:
        return " ".join(
            [
                "About the study: this was a survey with many respondents.",
                self.randomization_statement(unit, conditions),
                self.blindness_statement(),
            ]
        )
