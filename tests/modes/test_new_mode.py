"""Adding a blinding mode is one class: a mode defined in this file alone is accepted by
the language, compiled, run on the synthetic respondent and analysed, with no other module
learning its name. And no module outside `llmexp/modes/` tests a mode by its name."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import llmexp
from llmexp import check_text, modes
from llmexp.analysis import analyze
from llmexp.errors import StudyError
from llmexp.modes.base import MultiConditionMode, join

PACKAGE = Path(llmexp.__file__).resolve().parent

SYSTEM = "Imagine you are the person in the situation below. Answer as that person would, in their own voice."


class PairwiseMode(MultiConditionMode):
    """Two neighbouring conditions side by side (joint evaluation): the respondent answers
    for each, and is told nothing about a randomization."""

    name = "pairwise"
    states_design = False  # two versions are shown, the design is not described

    def pairs(self, unit: dict) -> list:
        conditions = self.conditions(unit)
        return [conditions[i:i + 2] for i in range(len(conditions) - 1)]

    def count(self, model) -> int:
        pairs = max(len(self.level_cells) - 1, 0)
        return len(self.units.rows) * pairs * self.persona_count() * model.replicates * len(self.study.outcomes)

    def trials(self, model):
        for unit in self.units.rows:
            unit_id = str(unit[self.units.key])
            pinned = self.pinned_values(unit)
            for pair in self.pairs(unit):
                for index in range(self.persona_count()):
                    persona_id, persona = self.persona_draw(unit_id, {"pair": pair[0].cell}, index)
                    persona_text = self.describe_persona(unit, persona) if persona else ""
                    for replicate in range(model.replicates):
                        for outcome in self.study.outcomes:
                            yield self.row(
                                model, replicate, "outcome", outcome.name, unit, persona_id, persona, pair, pinned,
                                self.answer_json(outcome.answer, per_condition=True),
                                self.messages(unit, pair, pinned, persona_text, outcome),
                                draw=index * model.replicates + replicate,
                            )

    def messages(self, unit, pair, pinned, persona_text, outcome) -> list[dict]:
        user = join(
            persona_text,
            "Two versions of a situation " + self.placeholders_note() + "\n" + self.scenario(unit, None, pinned),
            "The versions:\n" + self.numbered(pair),
            "For each version: " + self.question(unit, None, pinned, outcome.question),
            self.answer_instruction(outcome.answer)
            + ' Write one line per version, in the order above, in the form "1) ANSWER".',
        )
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


STUDY = '''study "pairs" seed 3
units items
  row id = "a", price = 2
  row id = "b", price = 4
  row id = "c", price = 3
treatment x = items.price * levels(0.5, 1, 1.5) as money
context "You see {id} for {x}."
outcome buy: binary "yes" / "no"
  question "Do you buy it?"
modes blind, pairwise
model "synthetic/respondent" replicates 4
analyze effects
'''


@pytest.fixture
def pairwise():
    """The new mode, registered for one test and removed afterwards."""
    modes.register(PairwiseMode)
    yield PairwiseMode
    modes.unregister(PairwiseMode.name)


def test_a_mode_defined_in_a_test_runs_end_to_end(pairwise, tmp_path):
    path = tmp_path / "pairs.study"
    path.write_text(STUDY)
    study = llmexp.load(path)
    assert [(d.name, d.mode) for d in study.designs] == [("blind", "blind"), ("pairwise", "pairwise")]
    assert modes.get("pairwise").per_condition and not modes.get("pairwise").blind

    trials = llmexp.compile(study)
    mine = trials[trials["design"] == "pairwise"]
    assert len(mine) == 3 * 2 * 4  # units x neighbouring pairs x replicates
    assert set(mine["mode"]) == {"pairwise"}
    assert all(len(json.loads(c)) == 2 for c in mine["conditions"])
    assert "Two versions of a situation" in json.loads(mine.iloc[0]["messages"])[1]["content"]

    results = llmexp.run(study, models=["synthetic/respondent"], replicates=1, run_dir=tmp_path / "run", progress=False)
    responses = results.to_pandas()
    ran = llmexp.compile(results.study)  # the study with the model given (one replicate)
    assert len(responses) == len(ran) == len(trials) // 4 and (responses["status"] == "ok").all()
    answered = responses[responses["design"] == "pairwise"]
    assert all(len(json.loads(v)) == 2 for v in answered["condition_values"])

    result = analyze(study, responses, figures=False)
    effects = result.table("effects")
    assert set(effects["design"]) >= {"blind", "pairwise"}


def test_the_language_asks_the_registry(pairwise):
    study, _ = check_text(STUDY.replace("modes blind, pairwise", "design p: pairwise with persona p\npersona p age: 30"))
    assert study.designs[0].persona == "p"  # accepts_persona is inherited
    with pytest.raises(StudyError) as info:
        check_text(STUDY.replace("modes blind, pairwise", "modes pairwse"))
    (problem,) = info.value.problems
    assert problem.message.startswith("unexpected name 'pairwse'; expected ")
    assert '"pairwise"' in problem.message and problem.hint == "did you mean 'pairwise'?"
    with pytest.raises(StudyError) as info:
        check_text(STUDY.replace("modes blind, pairwise", "design s: pairwise split 1 to 1.5"))
    assert info.value.problems[0].message == "split applies to aggregate designs only (the range-sensitivity check)"


def test_an_unregistered_mode_is_unknown_again():
    assert "pairwise" not in modes.names()
    with pytest.raises(llmexp.errors.LlmexpError, match="unknown mode 'pairwise'"):
        modes.get("pairwise")


def mode_name_literals(source: str, names: set[str]) -> list[int]:
    """Lines of `source` holding a string literal that is exactly a mode's name (the
    treatment assignment keyword `within` on an `assignment` line is not the mode)."""
    lines = source.splitlines()
    return sorted(
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and node.value in names and "assignment" not in lines[node.lineno - 1].lower()
    )


def test_no_module_outside_the_modes_package_names_a_mode():
    names = set(modes.names())
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith("modes/"):  # (help text naming a mode is a longer string, not the bare name)
            continue
        found += [f"llmexp/{relative}:{line}" for line in mode_name_literals(path.read_text(encoding="utf-8"), names)]
    assert not found, "mode names compared outside llmexp/modes/ (ask llmexp.modes.get(name).<capability>):\n" + "\n".join(found)


def test_the_scan_sees_a_mode_tested_by_name():
    """Guards against a vacuous pass: the code the issue found (`mode in ("within", "aggregate")`)
    is caught; help text naming a mode and the assignment keyword are not."""
    names = set(modes.names())
    caught = 'def f(mode):\n    return mode in ("within", "aggregate")\n'
    assert mode_name_literals(caught, names) == [2, 2]
    fine = 'HELP = "blind: nothing but the product"\nASSIGNMENT = ("assignment", "within")\n'
    assert mode_name_literals(fine, names) == []
