"""`run_study`: the trial table in, the run directory (responses + manifest) out."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

from llmexp.errors import RunError
from llmexp import providers
from llmexp.runner.cache import ResponseCache
from llmexp.runner.cost import completion_budget, estimate_cost, model_price
from llmexp.runner.progress import ProgressDisplay
from llmexp.providers.base import PARAMS_KEY, SEED_KEY, STANDARD_PARAMS, TRIAL_KEY, structured_trial
from llmexp.runner.results import ARCHIVE_TABLE, RunPlan, RunResults
from llmexp.runner.router import describe as describe_router
from llmexp.runner.router import load_router_config, make_router, routed_kwargs, routed_models, router_secrets
from llmexp.runner.scheduler import Call, ModelState, Outcome, RateLimiter, RetryPolicy, Scheduler, Stats, Writer, build_row
from llmexp.runner.store import (
    JSON_TRIAL_COLUMNS,
    TRIAL_COLUMNS,
    RunStore,
    is_secret_name,
    now_iso,
    package_versions,
    read_manifest,
    redact,
    write_manifest,
)

DEFAULT_CONCURRENCY = 8
# params that configure llmexp itself, never sent to a provider
RUNNER_PARAMS = {"rpm", "tpm", "replicates", "input_cost_per_token", "output_cost_per_token"}


# ---------------------------------------------------------------- helpers


def run_hash(study) -> str:
    """Hash of the study as recorded in the manifest (secret model params redacted)."""
    data = study.model_dump(mode="json", exclude={"source_file"})
    for m in data.get("models") or []:
        m["params"] = redact(m.get("params") or {})
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def default_run_dir(study) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", study.name).strip("-") or "study"
    return Path("runs") / f"{safe}-{run_hash(study)}"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        try:
            return _clean(value.item())
        except Exception:
            return value
    return value


def _loads(value: Any) -> Any:
    value = _clean(value)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _dumps(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _records(trials: Any) -> list[dict]:
    if hasattr(trials, "to_dict"):
        rows = trials.to_dict("records")
    else:
        rows = [dict(r) for r in trials]
    out = []
    for row in rows:
        missing = [c for c in ("trial_id", "model", "messages", "answer") if c not in row]
        if missing:
            raise RunError(f"the trial table lacks column(s) {', '.join(missing)} (see docs/artifacts.md)")
        rec = {k: _clean(row.get(k)) for k in TRIAL_COLUMNS}
        for k in JSON_TRIAL_COLUMNS:
            if rec.get(k) is not None and not isinstance(rec[k], str):
                rec[k] = _dumps(rec[k])
        if rec.get("replicate") is not None:
            rec["replicate"] = int(rec["replicate"])
        if rec.get("order_seed") is not None:
            rec["order_seed"] = int(rec["order_seed"])
        out.append(rec)
    return out


def _interleave(rows: list[dict]) -> list[dict]:
    """Deterministic order spreading calls across (model, design): round robin over groups."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row.get("model"), row.get("design")), []).append(row)
    lists = list(groups.values())
    out: list[dict] = []
    i = 0
    while len(out) < len(rows):
        for lst in lists:
            if i < len(lst):
                out.append(lst[i])
        i += 1
    return out


def _local_in_compile_order(rows: list[dict], order: dict) -> list[dict]:
    """The embedded model answers one call at a time and reuses its KV cache for the prompt
    prefix shared with the previous call: give it its trials in compile order (neighbours
    share the longest prefixes). Other models keep the interleaved order."""
    slots = [i for i, r in enumerate(rows) if str(r["model"]).startswith(providers.LOCAL_PREFIX)]
    if not slots:
        return rows
    local = sorted((rows[i] for i in slots), key=lambda r: order.get(id(r), 0))
    out = list(rows)
    for i, r in zip(slots, local):
        out[i] = r
    return out


def _normalize_models(models: Any) -> list:
    from llmexp.spec import ModelSpec

    out = []
    for m in [models] if isinstance(models, (str, ModelSpec)) else list(models):
        out.append(ModelSpec(name=m) if isinstance(m, str) else m)
    return out


def _compile(study):
    try:
        from llmexp.compiler import compile_study
    except ImportError as exc:
        raise RunError(f"the compiler is not available ({exc}); pass trials= explicitly") from exc
    return compile_study(study)


def _secrets(params_list: Iterable[dict]) -> list[str]:
    found = set()
    for params in params_list:
        for k, v in (params or {}).items():
            if is_secret_name(str(k)) and isinstance(v, str) and len(v) >= 6:
                found.add(v)
    for k, v in os.environ.items():
        if is_secret_name(k) and isinstance(v, str) and len(v) >= 8:
            found.add(v)
    return sorted(found, key=len, reverse=True)


def _scrubber(secrets: list[str]):
    if not secrets:
        return lambda s: s

    def scrub(text: str) -> str:
        if not text:
            return text
        for sec in secrets:
            if sec in text:
                text = text.replace(sec, "***")
        return text

    return scrub


def _redact_params_json(text: Optional[str]) -> Optional[str]:
    if not text or not re.search(r"key|secret|token|password|credential|authorization", text, re.I):
        return text
    try:
        return json.dumps(redact(json.loads(text)), sort_keys=True, separators=(",", ":"))
    except json.JSONDecodeError:
        return text


# providers whose API key litellm.validate_environment reports reliably
KEYED_PROVIDERS = {
    "openai", "anthropic", "gemini", "mistral", "groq", "together_ai", "deepseek", "xai",
    "cohere", "cohere_chat", "openrouter", "fireworks_ai", "perplexity",
}


def _check_key(name: str, provider: str, params: dict) -> None:
    """Fail before any call when a hosted model's API key is plainly missing."""
    import litellm

    if provider not in KEYED_PROVIDERS or params.get("api_key"):
        return
    try:
        env = litellm.validate_environment(name, api_base=params.get("api_base"))
    except Exception:
        return
    missing = [k for k in env.get("missing_keys") or [] if "KEY" in k or "TOKEN" in k]
    if missing and not env.get("keys_in_environment"):
        raise RunError(
            f"model {name!r} needs an API key: set {' or '.join(missing)} in the environment "
            "(or give the model an api_key param); no calls were made"
        )


def _check_models(names: Iterable[str], params_by_model: Optional[dict] = None) -> None:
    import litellm

    providers.ensure_registered()
    for name in names:
        if name.startswith(providers.LOCAL_PREFIX):
            problem = providers.local_problem()
            if problem:
                raise RunError(
                    f"model {name!r} needs the embedded model, which is not available here ({problem}); "
                    f"install it with: {providers.LOCAL_INSTALL_HINT}"
                )
            continue
        if name.startswith(providers.SYNTHETIC_PREFIX):
            continue
        try:
            _, provider, _, _ = litellm.get_llm_provider(name)
        except Exception as exc:
            raise RunError(
                f"unknown model {name!r}: litellm does not know its provider ({str(exc).splitlines()[0][:200]}); "
                "use a litellm model string such as 'openai/gpt-4o-mini', 'anthropic/claude-3-5-haiku-latest', "
                "'openai/<name>' with an api_base param for an OpenAI-compatible server, 'synthetic/respondent' "
                "or 'llmexp/gemma3-270m'"
            ) from None
        _check_key(name, provider, (params_by_model or {}).get(name) or {})


def _run_coro(coro):
    """asyncio.run, also from inside a running loop (e.g. Jupyter): then in a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict = {}

    def target():
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


# ---------------------------------------------------------------- calls


def _prepare_calls(rows: list[dict], study, seed: int, retry: RetryPolicy, spec_params: dict, routed: frozenset = frozenset()) -> list[Call]:
    levels = {t.name: list(t.levels) for t in study.treatments}
    calls = []
    price_cache: dict[str, Any] = {}
    parsed: dict = {}  # params / answer JSON strings repeat across trials: parse each once

    def shared(value):  # read-only parsed JSON, shared by the calls with the same string
        if isinstance(value, str):
            hit = parsed.get(value)
            if hit is None:
                hit = parsed[value] = _loads(value)
            return hit
        return _loads(value)

    for row in rows:
        model = row["model"]
        params = shared(row.get("params")) or {}
        if not isinstance(params, dict):
            params = {}
        if not params and spec_params.get(model):
            params = dict(spec_params[model])
        messages = _loads(row["messages"])
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        answer = shared(row.get("answer")) or {}
        conditions = _loads(row.get("conditions")) or []
        custom = providers.is_custom(model)
        if custom:
            trial = structured_trial(row, levels, _loads, answer=answer, conditions=conditions)
            kwargs = {k: v for k, v in params.items() if k in STANDARD_PARAMS and k != "timeout"}
            kwargs["metadata"] = {TRIAL_KEY: trial, PARAMS_KEY: params, SEED_KEY: seed}
        else:
            kwargs = {k: v for k, v in params.items() if k not in RUNNER_PARAMS}
            if model in routed:  # each Router deployment brings its own api_base / api_key
                kwargs = routed_kwargs(kwargs)
            kwargs.setdefault("timeout", retry.timeout)
            kwargs["max_retries"] = 0  # retries are ours (bounded, logged)
        if model not in price_cache:
            price_cache[model] = model_price(model, params)
        price = price_cache[model]
        chars = sum(len(str(m.get("content", ""))) for m in messages)
        completion = completion_budget(params)
        est_tokens = chars // 4 + 4 * len(messages) + completion
        # budget reservation errs high: chars/3 prompt tokens, the whole max_tokens completion
        est_cost = price.cost(chars // 3 + 4 * len(messages), completion)
        calls.append(
            Call(
                trial_id=row["trial_id"],
                model=model,
                target=model if model in routed else providers.litellm_model(model),
                messages=messages,
                kwargs=kwargs,
                answer=answer,
                conditions=conditions,
                est_tokens=est_tokens,
                est_cost=est_cost,
                cacheable=not model.startswith(providers.SYNTHETIC_PREFIX),
                cache_key=providers.cache_key(model, row.get("cache_key") or row["trial_id"]),
            )
        )
    return calls


# ---------------------------------------------------------------- run_study


def run_study(
    study,
    trials=None,
    run_dir: Union[str, Path, None] = None,
    models: Optional[Sequence] = None,
    limit: Optional[int] = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    dry_run: bool = False,
    max_cost: Optional[float] = None,
    cache_dir: Union[str, Path, None] = None,
    progress: bool = True,
    *,
    use_cache: bool = True,
    rpm: Optional[float] = None,
    tpm: Optional[float] = None,
    retry: Optional[RetryPolicy] = None,
    command: Optional[Sequence[str]] = None,
    router: Union[str, Path, dict, None] = None,
) -> Union[RunResults, RunPlan]:
    """Run a study's trials through litellm into a run directory; resumable.

    study: a `llmexp.spec.Study`. trials: its trial table (DataFrame or row dicts); compiled
    with `llmexp.compiler.compile_study` when None. run_dir: default
    `runs/<study-name>-<hash>`; an existing run of the same study is resumed (finished
    trials are never called again; failed ones are retried). models: override the study's
    models (names or ModelSpec). limit: only the first N trials in a deterministic order
    spread across models and designs. max_cost: dollars; no call starts that could exceed
    it. cache_dir / use_cache: the shared response cache. rpm / tpm: rate limits applied to
    every model (else each ModelSpec's). dry_run: no calls, returns a `RunPlan`.
    router: a litellm Router config (dict or JSON/YAML file, see `llmexp.runner.router`): calls
    of the models it names go through `Router.acompletion` over its deployments.

    Returns `RunResults`. Raises `RunError` (with `.results`) if a model was stopped by a
    permanent failure (e.g. a missing API key) after saving everything else.
    """
    from llmexp.spec import Study

    if not isinstance(study, Study):
        raise RunError("run_study needs a llmexp.spec.Study (use llmexp.load(path) to read a .study file)")
    if concurrency is None or int(concurrency) < 1:
        raise RunError("concurrency must be at least 1")
    if limit is not None and int(limit) < 1:
        raise RunError("limit must be at least 1")
    if max_cost is not None and float(max_cost) < 0:
        raise RunError("max cost must be >= 0")
    retry = retry or RetryPolicy()

    if models:
        study = study.with_models(_normalize_models(models))
        if trials is not None:
            names = {m.name for m in study.models}
            rows_all = [r for r in _records(trials) if r["model"] in names]
            if not rows_all:
                raise RunError("none of the given trials uses the requested model(s)")
        else:
            rows_all = _records(_compile(study))
    else:
        rows_all = _records(trials if trials is not None else _compile(study))
    if not rows_all:
        raise RunError("the study compiles to no trials")

    order = {id(r): i for i, r in enumerate(rows_all)}
    rows = _interleave(rows_all)
    if limit is not None:
        rows = rows[: int(limit)]

    spec_params = {m.name: dict(m.params) for m in study.models}
    model_names = list(dict.fromkeys(r["model"] for r in rows))
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(study)
    shash = run_hash(study)

    if dry_run:
        done: set[str] = set()
        if (run_dir / "store.sqlite").exists():
            try:
                st = RunStore(run_dir, create=False)
                done = st.final_ids()
                st.close()
            except RunError:
                pass
        pending = [r for r in rows if r["trial_id"] not in done]
        est = estimate_cost(study, pending, spec_params)
        return RunPlan(study=study, run_dir=run_dir, rows=rows, pending=len({r['trial_id'] for r in pending}), estimate=est)

    router_config = load_router_config(router)
    routed = frozenset(routed_models(router_config) & set(model_names))
    first_params = {}
    for r in rows:
        if r["model"] not in first_params:
            p = _loads(r.get("params"))
            first_params[r["model"]] = p if isinstance(p, dict) and p else spec_params.get(r["model"], {})
    _check_models([m for m in model_names if m not in routed], first_params)

    # ---- run directory: manifest first (resume check), then the store
    existing = None
    if (run_dir / ARCHIVE_TABLE).exists() and not (run_dir / "store.sqlite").exists():
        raise RunError(f"{run_dir} is an archived run (read-only); run into another --out directory")
    if (run_dir / "manifest.json").exists():
        existing = read_manifest(run_dir)
        if existing.get("study_hash") != shash:
            raise RunError(
                f"{run_dir} holds a run of a different study (hash {existing.get('study_hash')}, this one {shash}); "
                "choose another --out directory or delete that one"
            )
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise RunError(f"{run_dir} exists and is not an llmexp run directory; choose another --out")

    all_params = [dict(_loads(r.get("params")) or {}) for r in rows[:1000]] + list(spec_params.values())
    scrub = _scrubber(sorted(set(_secrets(all_params)) | set(router_secrets(router_config)), key=len, reverse=True))
    store = RunStore(run_dir, create=True)
    cache = None
    try:
        started = time.time()
        manifest = existing or {
            "study": study.name,
            "study_hash": shash,
            "spec": study.model_dump(mode="json"),
            "seed": study.seed,
            "created": now_iso(started),
            "sessions": [],
        }
        manifest["models"] = [
            {
                "name": m.name,
                "params": dict(m.params),
                "replicates": m.replicates,
                "rpm": rpm or m.rpm,
                "tpm": tpm or m.tpm,
            }
            for m in study.models
        ]
        manifest["versions"] = package_versions()
        if router_config is not None:
            manifest["router"] = describe_router(router_config)
        session = {
            "started": now_iso(started),
            "ended": None,
            "command": scrub(" ".join(command if command is not None else sys.argv)),
            "trials_selected": len(rows),
            "limit": limit,
            "max_cost": max_cost,
            "concurrency": int(concurrency),
            "cache": bool(use_cache),
            "router": sorted(routed) or None,
        }
        manifest.setdefault("sessions", []).append(session)
        manifest["status"] = "running"
        write_manifest(run_dir, manifest, scrub)

        stored_rows = []
        redacted: dict = {}  # params strings repeat across trials: redact each once
        for r in rows:
            rr = dict(r)
            p = rr.get("params")
            if p not in redacted:
                redacted[p] = _redact_params_json(p)
            rr["params"] = redacted[p]
            stored_rows.append(rr)
        store.add_trials(stored_rows)

        done = store.final_ids()
        seen: set[str] = set()
        pending_rows = []
        for r in rows:
            tid = r["trial_id"]
            if tid in done or tid in seen:
                continue
            seen.add(tid)
            pending_rows.append(r)
        pending_rows = _local_in_compile_order(pending_rows, order)

        calls = _prepare_calls(pending_rows, study, study.seed, retry, spec_params, routed)
        stats = Stats(total=len(calls))
        writer = Writer(store, None)

        # ---- cache hits: served at once, no rate limit, cost 0
        if use_cache and any(c.cacheable for c in calls):
            cache = ResponseCache(cache_dir)
            writer.cache = cache
            hits = cache.get_many([c.cache_key for c in calls if c.cacheable])
            if hits:
                remaining = []
                hit_rows: list[tuple] = []
                for c in calls:
                    h = hits.get(c.cache_key) if c.cacheable else None
                    if h is None or h.get("model") != c.model:
                        remaining.append(c)
                        continue
                    out = Outcome(
                        text=h["raw_text"],
                        probs=json.loads(h["probs"]) if h.get("probs") else None,
                        prob_mass=h.get("prob_mass"),
                        prompt_tokens=int(h.get("prompt_tokens") or 0),
                        completion_tokens=int(h.get("completion_tokens") or 0),
                        cost=0.0,
                        attempts=0,
                        cache_hit=True,
                    )
                    row = build_row(c, out, scrub)
                    hit_rows.append(row)
                    if len(hit_rows) >= 5000:  # one transaction per 5,000 hits, not per hit
                        store.write_responses(hit_rows)
                        hit_rows = []
                    stats.done += 1
                    stats.cache_hits += 1
                    if row[10] == "ok":
                        stats.ok += 1
                    else:
                        stats.invalid += 1
                    stats.prompt_tokens += out.prompt_tokens
                    stats.completion_tokens += out.completion_tokens
                store.write_responses(hit_rows)
                calls = remaining

        spent = 0.0
        if max_cost is not None:
            est = sum(c.est_cost for c in calls)
            if est > max_cost:
                msg = f"note: estimated cost ${est:.4f} exceeds --max-cost ${max_cost:.4f}; the run stops before exceeding it"
            else:
                msg = None
        else:
            msg = None

        states = {}
        router_obj = make_router(router_config) if routed else None
        for name in model_names:
            spec = next((m for m in study.models if m.name == name), None)
            price = model_price(name, spec_params.get(name) or {})
            states[name] = ModelState(
                name=name,
                max_concurrency=1 if name.startswith(providers.LOCAL_PREFIX) else None,
                limiter=RateLimiter(rpm or (spec.rpm if spec else None), tpm or (spec.tpm if spec else None)),
                price_in=price.input,
                price_out=price.output,
                complete=router_obj.acompletion if name in routed else None,
            )

        async def main() -> Stats:
            async with ProgressDisplay(stats, enabled=progress) as display:
                if msg:
                    display.message(msg)
                sched = Scheduler(
                    calls,
                    states,
                    writer,
                    concurrency=concurrency,
                    retry=retry,
                    max_cost=max_cost,
                    spent=spent,
                    stats=stats,
                    on_message=display.message,
                    scrub=scrub,
                )
                await sched.run()
                main.budget_stop = sched.budget_stop  # type: ignore[attr-defined]
                return stats

        main.budget_stop = None  # type: ignore[attr-defined]
        interrupted = False
        try:
            _run_coro(main())
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            session["ended"] = now_iso()
            session["calls_done"] = stats.done
            stopped = {n: s.stopped for n, s in states.items() if s.stopped}
            session["stopped"] = stopped or None
            session["budget_stop"] = main.budget_stop  # type: ignore[attr-defined]
            manifest["status"] = "interrupted" if interrupted else ("incomplete" if stopped or main.budget_stop else "complete")  # type: ignore[attr-defined]
            write_manifest(run_dir, manifest, scrub)
    finally:
        store.close()
        if cache is not None:
            cache.close()

    results = RunResults(run_dir, manifest=manifest)
    results.stopped = stopped
    results.budget_stop = main.budget_stop  # type: ignore[attr-defined]
    results.stats = stats
    if stopped:
        err = RunError(
            "\n".join(stopped.values())
            + f"\nresults so far are saved in {run_dir}; fix the problem and run again to resume"
        )
        err.results = results  # type: ignore[attr-defined]
        raise err
    return results
