"""The `model` statements of a study: names, litellm params (never a secret), rate limits,
replicates and per-mode token budgets; an endpoint that would receive the user's keys is
warned about. Part of the validator (`validate.py`): each function takes the `Validator`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmexp import spec
from llmexp.errors import did_you_mean as suggest
from llmexp.lang import ast, endpoints
from llmexp.lang.tokens import mode_max_tokens

if TYPE_CHECKING:  # the validator imports this module
    from llmexp.lang.validate import Validator

KNOWN_PARAMS = {
    "temperature",
    "max_tokens",
    "top_p",
    "top_k",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "api_base",
    "timeout",
    "rpm",
    "tpm",
}
SECRET_PARAMS = {"api_key", "key", "token", "secret", "password"}


def model_specs(v: Validator) -> list[spec.ModelSpec]:
    decls = v.all(ast.ModelDecl)
    result, seen = [], {}
    for decl in decls:
        name = decl.name.value
        if not name.strip():
            v.error("model name is empty", decl.name.pos)
            continue
        params, rpm, tpm = {}, None, None
        custom = v.custom_params(name)  # its provider takes params beyond litellm's
        for pname, literal in decl.params:
            if pname.name.lower() in SECRET_PARAMS:
                v.error(
                    "never put API keys in a study file; set the provider's environment variable (e.g. OPENAI_API_KEY)",
                    pname.pos,
                )
                continue
            if pname.name in params:
                v.error(f"model parameter '{pname.name}' is given twice", pname.pos)
            if pname.name not in KNOWN_PARAMS and not custom:
                v.error(
                    f"unknown model parameter '{pname.name}'",
                    pname.pos,
                    suggest(pname.name, KNOWN_PARAMS) or f"known: {', '.join(sorted(KNOWN_PARAMS))}",
                )
                continue
            warn_endpoint(v, pname.name, literal)
            if pname.name == "rpm":
                rpm = float(literal.value)
            elif pname.name == "tpm":
                tpm = float(literal.value)
            else:
                value = literal.value
                if isinstance(value, float) and value.is_integer() and pname.name in ("max_tokens", "seed", "top_k"):
                    value = int(value)
                params[pname.name] = value
        replicates = int(decl.replicates.value) if decl.replicates else 1
        if replicates < 1:
            v.error("replicates must be at least 1", decl.replicates.pos)
            continue
        key = (name, tuple(sorted(params.items())))
        if key in seen:
            v.error(f"model {name!r} with these parameters is listed twice", decl.pos)
            continue
        seen[key] = decl.pos
        per_mode = mode_max_tokens(v, decl)  # `max_tokens aggregate 40` (llmexp.lang.tokens)
        result.append(spec.ModelSpec(name=name, params=params, replicates=replicates, rpm=rpm, tpm=tpm, mode_max_tokens=per_mode))
    if not result and not decls:
        result.append(spec.ModelSpec(name=spec.DEFAULT_MODEL, params={"temperature": 1.0}, replicates=1))
    return result

def warn_endpoint(v: Validator, name: str, literal: ast.Literal) -> None:
    """A study is shared: an endpoint that is not loopback would receive the user's keys."""
    if not endpoints.is_endpoint(name, literal.value):
        return
    host = endpoints.host_of(literal.value)
    if endpoints.is_loopback(host):
        return
    shown = host or literal.value
    v.warn(
        f"{name} {literal.value!r}: your API keys for this provider would be sent to {shown}; "
        f"`llmexp run` refuses it unless you pass --allow-endpoint {shown}",
        literal.pos,
    )
