"""The mode base class, the mode registry and the rendering every mode shares.

A blinding mode is one class in one file of this package (`blind.py`, `unblinded.py`, ...):
it declares what it can do as class attributes (the capabilities below) and renders its
trials. Every other module asks `llmexp.modes.get(name).<capability>` and never compares
mode names, so a new mode is a new file: nothing else has to learn its name.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from llmexp import answers
from llmexp import expr as ex
from llmexp.errors import LlmexpError
from llmexp.fields import Namespace
from llmexp.seeding import canonical, short_hash, stable_int
from llmexp.spec import AnswerSpec, Design, ModelSpec, Study
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
        close = difflib.get_close_matches(str(name), list(MODES), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
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
                level = levels[treatment.name]
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
                return ex.format_value(unit[target.name], self.unit_types[target.name])
            if target.kind == "treatment":
                if condition is None:
                    return f"[{phrase(target.name)}]"
                return ex.format_value(condition.values[target.name], self.treatment_types[target.name])
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
                    return ex.format_value(ex.evaluate(covariate.value, env), covariate.value_type)
                return ex.format_value(pinned[target.name], pinned_types[target.name])
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

    @staticmethod
    def answer_json(answer: AnswerSpec, **extra: Any) -> dict:
        data = answer.model_dump(mode="json")
        data.update(extra)
        return data

    # ---------------------------------------------------------------- design statement
    def randomization_statement(self, unit: dict, conditions: list[Condition]) -> str:
        """Says what was randomized, over which values, with which distribution."""
        treatments = self.study.treatments
        if len(treatments) == 1:
            t = treatments[0]
            shown = [ex.format_value(c.values[t.name], t.value_type) for c in conditions]
            if t.value_type == "text":  # quoted: text levels may be sentences with their own commas and periods
                shown = [f'"{v}"' for v in shown]
            text = (
                f"The {phrase(t.name)} shown to each respondent was drawn at random, with equal probability, "
                f"from these {len(shown)} values: {', '.join(shown)}."
            )
            numeric = [c.values[t.name] for c in conditions if isinstance(c.values[t.name], (int, float))]
            if len(numeric) == len(conditions) and len(numeric) > 2:
                low = ex.format_value(min(numeric), t.value_type)
                high = ex.format_value(max(numeric), t.value_type)
                text += f" So it ranged from {low} to {high}."
            return text
        described = "; ".join(f"({i}) {self.condition_label(c)}" for i, c in enumerate(conditions, start=1))
        return (
            f"Each respondent was assigned at random, with equal probability, to one of {len(conditions)} "
            f"conditions: {described}."
        )

    def blindness_statement(self) -> str:
        between = [phrase(t.name) for t in self.study.treatments if t.assignment == "between"]
        within = [phrase(t.name) for t in self.study.treatments if t.assignment == "within"]
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
            f"{phrase(t.name)} {ex.format_value(condition.values[t.name], t.value_type)}" for t in self.study.treatments
        )

    # ---------------------------------------------------------------- personas
    def persona_draw(self, unit_id: str, key_levels: dict[str, Any], index: int) -> tuple[str | None, dict | None]:
        """Deterministic persona draw `index` for a unit and (between-subject) levels."""
        if self.persona is None:
            return None, None
        seed = stable_int(self.study.seed, "persona", self.persona.name, unit_id, key_levels, index)
        rng = np.random.default_rng(seed)
        if self.persona.rows:
            row_index = int(rng.integers(len(self.persona.rows)))
            return f"{self.persona.name}-row{row_index + 1}", dict(self.persona.rows[row_index])
        values = {}
        for attribute in self.persona.attributes:
            values[attribute.name] = draw(attribute.distribution, rng)
        return f"{self.persona.name}-{short_hash([seed])[:8]}", values

    def between_levels(self, levels: dict[str, Any]) -> dict[str, Any]:
        """The levels a persona draw depends on: within-subject treatments share a draw."""
        return {t.name: levels[t.name] for t in self.study.treatments if t.assignment == "between"}

    def persona_count(self) -> int:
        return self.persona.count if self.persona else 1

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
    ) -> dict:
        unit_id = str(unit[self.units.key])
        params = dict(model.params)
        content = {
            "model": model.name,
            "params": params,
            "messages": messages,
            "answer": answer,
            "draw": draw,
            "replicate": replicate,
        }
        cache_key = short_hash(content)
        trial_id = short_hash([self.design.name, kind, target, unit_id, persona_id, cache_key])
        return {
            "trial_id": trial_id,
            "cache_key": cache_key,
            "study": self.study.name,
            "design": self.design.name,
            "mode": self.name,
            "model": model.name,
            "params": canonical(params),
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
        }


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

    def probe_messages(self, unit, condition, conditions, pinned, persona_text, covariate) -> list[dict]:
        raise NotImplementedError

    def probed(self) -> list:
        return [
            c
            for c in self.study.covariates
            if c.probe is not None and self.design.probes and c.name not in self.design.pins
        ]

    def count(self, model: ModelSpec) -> int:
        per_respondent = len(self.study.outcomes) + len(self.probed())
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
                        for outcome in self.study.outcomes:
                            messages = self.outcome_messages(unit, condition, conditions, pinned, persona_text, outcome)
                            yield self.row(
                                model, replicate, "outcome", outcome.name, unit, persona_id, persona,
                                [condition], pinned, self.answer_json(outcome.answer), messages, draw=draw_index,
                            )
                        for covariate in probes:
                            messages = self.probe_messages(unit, condition, conditions, pinned, persona_text, covariate)
                            yield self.row(
                                model, replicate, "probe", covariate.name, unit, persona_id, persona,
                                [condition], pinned, self.answer_json(covariate.probe.answer), messages, draw=draw_index,
                            )

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
