"""Several deployments (or keys) behind one study model: litellm's Router.

A router file (JSON, or YAML when PyYAML is installed) holds litellm's own Router config:

    {
      "model_list": [
        {"model_name": "openai/gpt-4o-mini",
         "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "os.environ/OPENAI_KEY_A"},
         "rpm": 500},
        {"model_name": "openai/gpt-4o-mini",
         "litellm_params": {"model": "azure/gpt-4o-mini", "api_base": "https://...", "api_key": "os.environ/AZURE_KEY"}}
      ],
      "router_settings": {"routing_strategy": "simple-shuffle", "allowed_fails": 3, "cooldown_time": 30}
    }

`llmexp run FILE --router router.json` (or `run_study(..., router=path_or_dict)`) sends every
call of a study model whose name is a `model_name` of the list through `Router.acompletion`
instead of `litellm.acompletion`; other models are called as before. Only the transport
changes: trial ids, the response cache, the store and resume are the same, so a run can be
resumed with or without a router, or with another one. llmexp keeps its own retries (the
Router's `num_retries` defaults to 0 here) and its own rate limits; the Router picks a
deployment per call and cools down a failing one. Connection params of the study model
(api_base, api_key, ...) are dropped for routed calls: each deployment has its own. API keys
in the file are never written to the run directory (`os.environ/NAME` keeps them out of the
file altogether).
"""

from __future__ import annotations

import json
from pathlib import Path

from llmexp.errors import RunError
from llmexp.runner.redaction import redact

# per-call params that belong to a deployment, not to the study's call
CONNECTION_PARAMS = {"api_base", "base_url", "api_key", "api_version", "organization", "custom_llm_provider", "deployment_id"}


def load_router_config(source: str | Path | dict | None) -> dict | None:
    """The router config from a dict or a JSON/YAML file; checked for a usable model_list."""
    if source is None:
        return None
    if isinstance(source, dict):
        config = dict(source)
    else:
        path = Path(source)
        try:
            text = path.read_text()
        except OSError as exc:
            raise RunError(f"cannot read the router file {path}: {exc}") from exc
        if path.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise RunError(f"{path}: YAML router files need PyYAML (pip install pyyaml), or write it as JSON") from None
            try:
                config = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise RunError(f"{path}: not valid YAML: {exc}") from exc
        else:
            try:
                config = json.loads(text)
            except json.JSONDecodeError as exc:
                raise RunError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from exc
    if isinstance(config, list):
        config = {"model_list": config}
    if not isinstance(config, dict) or not isinstance(config.get("model_list"), list) or not config["model_list"]:
        raise RunError("the router config needs a non-empty `model_list` (litellm Router format)")
    for i, dep in enumerate(config["model_list"]):
        params = dep.get("litellm_params") if isinstance(dep, dict) else None
        if not isinstance(dep, dict) or not dep.get("model_name") or not isinstance(params, dict) or not params.get("model"):
            raise RunError(f"router model_list[{i}] needs `model_name` and `litellm_params.model`")
    settings = config.get("router_settings") or {}
    if not isinstance(settings, dict):
        raise RunError("router_settings must be a mapping")
    return config


def routed_models(config: dict | None) -> set[str]:
    return {d["model_name"] for d in (config or {}).get("model_list") or []}


def router_secrets(config: dict | None) -> list[str]:
    """Literal API keys in the config (to scrub from messages and the manifest)."""
    out = []
    for dep in (config or {}).get("model_list") or []:
        for k, v in (dep.get("litellm_params") or {}).items():
            if isinstance(v, str) and "key" in k.lower() and not v.startswith("os.environ/") and len(v) >= 6:
                out.append(v)
    return out


def describe(config: dict | None) -> dict | None:
    """What the manifest records: deployments with secrets redacted."""
    if not config:
        return None
    return redact({"model_list": config["model_list"], "router_settings": config.get("router_settings") or {}})


def make_router(config: dict):
    """A litellm Router for the config (llmexp keeps the retries: num_retries 0 by default)."""
    import litellm

    settings = dict(config.get("router_settings") or {})
    settings.setdefault("num_retries", 0)
    try:
        return litellm.Router(model_list=config["model_list"], **settings)
    except Exception as exc:  # noqa: BLE001 - litellm raises many kinds here
        raise RunError(f"litellm could not build the router: {type(exc).__name__}: {exc}") from exc


def routed_kwargs(kwargs: dict) -> dict:
    return {k: v for k, v in kwargs.items() if k not in CONNECTION_PARAMS}
