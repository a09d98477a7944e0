"""What a template field or expression name refers to.

Shared by the validator (to check names) and the compiler (to render them), so both agree
on one rule: a bare name is looked up as a treatment, then a covariate, then a persona
attribute, then a unit column; `units_name.column` and `persona.attribute` are explicit.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Target:
    kind: str  # unit | treatment | covariate | persona
    name: str

    @property
    def key(self) -> str:
        return f"{self.kind}.{self.name}"


@dataclass
class Namespace:
    units_name: str
    unit_columns: list[str]
    treatments: list[str] = field(default_factory=list)
    covariates: list[str] = field(default_factory=list)
    persona_attributes: list[str] = field(default_factory=list)

    @classmethod
    def from_study(cls, study, persona_attributes: list[str] | None = None) -> Namespace:
        return cls(
            units_name=study.units.name,
            unit_columns=list(study.units.columns),
            treatments=[t.name for t in study.treatments],
            covariates=[c.name for c in study.covariates],
            persona_attributes=list(persona_attributes or []),
        )

    def resolve(self, name: str) -> Target | None:
        if "." in name:
            head, tail = name.split(".", 1)
            if head == self.units_name and tail in self.unit_columns:
                return Target("unit", tail)
            if head == "persona" and tail in self.persona_attributes:
                return Target("persona", tail)
            return None
        if name in self.treatments:
            return Target("treatment", name)
        if name in self.covariates:
            return Target("covariate", name)
        if name in self.persona_attributes:
            return Target("persona", name)
        if name in self.unit_columns:
            return Target("unit", name)
        return None

    def all_names(self) -> list[str]:
        return (
            self.treatments
            + self.covariates
            + self.persona_attributes
            + self.unit_columns
            + [f"{self.units_name}.{c}" for c in self.unit_columns]
            + [f"persona.{a}" for a in self.persona_attributes]
        )
