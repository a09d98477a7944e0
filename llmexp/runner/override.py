"""`--model X`: run another model under the study's own sampling settings.

Running "the same file with an API model" must run the same experiment: a model named on
the command line (`llmexp run --model X`, `llmexp.run(models=[...])`) that the study does
not declare is given the study's temperature, max_tokens and other portable sampling
params, its replicates and any other model setting, taken from the study's models when
they all agree. What is not carried over is said, with why: an endpoint (`api_base`, where
the calls of the study's model go), a secret, a provider-specific param (the synthetic
respondent's `effect`), a rate limit (`rpm`/`tpm` belong to a provider), or a setting the
study's models disagree on. Explicit overrides (`--replicates`, `--param name=value`) win
over everything carried over and apply to every model run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llmexp.errors import RunError
from llmexp.runner.endpoints import endpoint_params
from llmexp.runner.redaction import is_secret_name, redact
from llmexp.spec import DEFAULT_MODEL, ModelSpec, Study

# sampling params every chat-completion provider understands (litellm maps them per
# provider); the rest of a model's params are specific to its provider or endpoint
PORTABLE_PARAMS = frozenset(
    {"temperature", "top_p", "top_k", "min_p", "max_tokens", "max_completion_tokens", "seed", "stop", "frequency_penalty", "presence_penalty"}
)
# ModelSpec fields that describe where or how fast calls go, not what is asked
_PROVIDER_FIELDS = frozenset({"name", "params", "rpm", "tpm"})
# what a study without a `model` line runs (llmexp.lang.validate): not the author's choice,
# so nothing is carried over from it (and runs made before carrying over still resume)
DEFAULT_MODELS = (ModelSpec(name=DEFAULT_MODEL, params={"temperature": 1.0}, replicates=1),)


@dataclass
class Override:
    """The models to run and what a named model took over from the study's."""

    models: list[ModelSpec]
    carried: dict[str, Any] = field(default_factory=dict)  # setting -> value carried over
    dropped: dict[str, str] = field(default_factory=dict)  # setting -> why it was not
    explicit: dict[str, Any] = field(default_factory=dict)  # --replicates / --param given
    new_models: list[str] = field(default_factory=list)  # names the study does not declare
    study_default: bool = False  # the study has no `model` line: nothing to carry over

    def note(self) -> str | None:
        """One line (two when something was left out) for the user; None when no model
        needed the study's settings and nothing was set explicitly."""
        if not self.new_models:
            shown = redact(self.explicit)
            return ("set on every model: " + ", ".join(f"{k}={_text(v)}" for k, v in shown.items())) if shown else None
        names = ", ".join(self.new_models)
        kept = ", ".join(f"{k}={_text(v)}" for k, v in self.carried.items()) or "nothing"
        lines = [f"--model {names}: carried over from the study's model: {kept}"]
        if self.study_default:
            lines = [f"--model {names}: the study declares no model, so nothing is carried over (provider defaults)"]
        if self.explicit:
            shown = redact(self.explicit)  # a key given with --param is not echoed
            lines[0] += "; set explicitly: " + ", ".join(f"{k}={_text(v)}" for k, v in shown.items())
        if self.dropped:
            lines.append("  not carried over: " + "; ".join(f"{k} ({why})" for k, why in self.dropped.items()))
        return "\n".join(lines)


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value)


def parse_param(item: str) -> tuple[str, Any]:
    """`name=value` from the command line: a number, true/false, or text."""
    name, sep, raw = item.partition("=")
    name = name.strip()
    if not sep or not name:
        raise RunError(f"--param {item!r}: use name=value, e.g. --param temperature=0")
    raw = raw.strip()
    if raw.lower() in ("true", "false"):
        return name, raw.lower() == "true"
    for kind in (int, float):
        try:
            return name, kind(raw)
        except ValueError:
            continue
    return name, raw


def _why_not_portable(name: str, value: Any) -> str | None:
    if is_secret_name(name):
        return "a secret of the study's provider"
    if endpoint_params({name: value}):
        return "where the study's model is served"
    if name not in PORTABLE_PARAMS:
        return "specific to the study's provider"
    return None


def _agreed(study: Study, out: Override) -> tuple[dict[str, Any], dict[str, Any]]:
    """(params, other ModelSpec fields) all the study's models agree on; the rest go to
    `out.dropped` with why."""
    specs = list(study.models)
    params: dict[str, Any] = {}
    for name in dict.fromkeys(k for m in specs for k in m.params):
        values = [m.params.get(name) for m in specs]
        why = _why_not_portable(name, values[0])
        if why is None and any(v != values[0] for v in values):
            why = "the study's models differ: " + ", ".join(sorted({_text(v) for v in values}))
        if why is None:
            params[name] = values[0]
        else:
            out.dropped[name] = why
    fields: dict[str, Any] = {}
    for name in type(specs[0]).model_fields:
        if name in _PROVIDER_FIELDS:
            continue
        values = [getattr(m, name) for m in specs]
        if all(v == values[0] for v in values):
            if name == "replicates" or values[0] != type(specs[0]).model_fields[name].default:
                fields[name] = values[0]
        else:
            out.dropped[name] = "the study's models differ: " + ", ".join(sorted({_text(v) for v in values}))
    return params, fields


def override_models(
    study: Study, models: Sequence[str | ModelSpec] | None, replicates: int | None = None, params: dict[str, Any] | None = None
) -> Override:
    """The models a run uses: `models` (names or ModelSpecs; default the study's) with the
    study's settings carried over to a name the study does not declare, then the explicit
    `replicates` and `params` applied to every model."""
    if replicates is not None and int(replicates) < 1:
        raise RunError("--replicates must be at least 1")
    out = Override(models=[])
    given = [models] if isinstance(models, (str, ModelSpec)) else list(models or [])
    declared = {m.name: m for m in study.models}
    chosen = bool(study.models) and study.models != DEFAULT_MODELS
    carried_params, carried_fields = _agreed(study, out) if chosen else ({}, {})
    out.study_default = not chosen
    for m in given or list(study.models):
        if isinstance(m, ModelSpec):
            out.models.append(m)
        elif m in declared:
            out.models.append(declared[m])
        else:
            out.models.append(ModelSpec(name=m, params=dict(carried_params), **carried_fields))
            out.new_models.append(m)
    if out.new_models:
        out.carried = {**carried_params, **carried_fields}
    else:
        out.dropped = {}
    explicit: dict[str, Any] = dict(params or {})
    if replicates is not None:
        explicit["replicates"] = int(replicates)
    for name in explicit:
        out.carried.pop(name, None)
        out.dropped.pop(name, None)
    out.explicit = explicit
    out.models = [_with_explicit(m, params or {}, replicates) for m in out.models]
    return out


def _with_explicit(model: ModelSpec, params: dict[str, Any], replicates: int | None) -> ModelSpec:
    update: dict[str, Any] = {}
    if params:
        update["params"] = {**model.params, **params}
    if replicates is not None:
        update["replicates"] = int(replicates)
    return model.model_copy(update=update) if update else model
