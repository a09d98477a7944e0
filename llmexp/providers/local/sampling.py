"""Drawing text from the embedded model: seeded token draws, numbers, per-condition lines.

- `generate_tokens`: a seeded draw at the trial's temperature (pure softmax(logits / T);
  `top_p` honoured), either free (stopping at the first stop string after some text) or
  constrained token by token to one number (`grammar.NumberGrammar`, given the answer
  type's `NumberForm`), ending at a newline, end of text or the token budget.
- `answer_lines`: one answer per condition, each line started by appending "k)" to the text
  so far (so every line reuses the KV cache of everything before it): "1) 45%\\n2) 38%".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llmexp.answers import NumberForm, condition_line, condition_marker
from llmexp.providers.local.engine import Engine
from llmexp.providers.local.grammar import NumberGrammar, number_classes
from llmexp.providers.local.scoring import choose, score_options

NUMBER_TOKENS = 8  # token budget for one numeric answer (digits are single tokens in Gemma)
FREE_TOKENS = 16  # default budget for free text (no trial attached, no max_tokens)


def pick(row: np.ndarray, temperature: float, rng: np.random.Generator, allowed: np.ndarray | None, top_p: float) -> int:
    """One token from a log-prob row: argmax at T <= 0, else a seeded draw from softmax(row / T)."""
    lp = (row[allowed] if allowed is not None else row).astype(np.float64)
    if temperature <= 0:
        k = int(np.argmax(lp))
    else:
        z = lp / temperature
        p = np.exp(z - z.max())
        if top_p < 1.0:
            order = np.argsort(-p, kind="stable")
            csum = np.cumsum(p[order]) / p.sum()
            keep = order[: int(np.searchsorted(csum, top_p)) + 1]
            kept = np.zeros_like(p)
            kept[keep] = p[keep]
            p = kept
        c = np.cumsum(p)
        k = min(int(np.searchsorted(c, rng.random() * c[-1], side="right")), len(p) - 1)
    return int(allowed[k]) if allowed is not None else k


def _grammar(engine: Engine, form: NumberForm | None, tokens: list[int], new: list[int]) -> NumberGrammar | None:
    """The number grammar for `form` (None: free text). "Answer: 45" is [":", " ", "4", "5"]:
    when the form takes the space as given, it is appended to `tokens`/`new` here (one step
    fewer); money keeps it optional because " $" is one token."""
    if form is None:
        return None
    grammar = NumberGrammar(number_classes(engine), form)
    if form.space_given:
        space = engine.tokenize(" ")
        if len(space) == 1 and grammar.advance(space[0]):
            new.append(space[0])
            tokens.append(space[0])
    return grammar


def _cut_at_stop(text: str, stop: Sequence[str]) -> str | None:
    """The free text up to the first stop string after leading blanks, or None if none yet."""
    body = text.lstrip()
    cut = [body.find(s) for s in stop if s and body.find(s) >= 0]
    return body[: min(cut)] if cut else None


def generate_tokens(
    engine: Engine,
    prompt_tokens: list[int],
    max_tokens: int,
    temperature: float,
    rng: np.random.Generator,
    form: NumberForm | None = None,
    stop: Sequence[str] = ("\n",),
    top_p: float = 1.0,
) -> tuple[str, list[int]]:
    """Sample up to max_tokens after prompt_tokens; returns (answer text, tokens drawn).

    form: draw one number of that form (None: free text). Only the row at the end of the
    prompt is kept in the row cache (a repeated prompt reuses it); rows of drawn tokens are
    used once and dropped. The caller holds `engine.lock`.
    """
    tokens = list(prompt_tokens)
    new: list[int] = []
    grammar = _grammar(engine, form, tokens, new)
    text = ""
    for step in range(max(1, int(max_tokens)) - len(new)):
        allowed = grammar.allowed() if grammar is not None else None
        if allowed is not None and len(allowed) == 0:
            break
        row = engine.logprob_rows(tokens, [len(tokens) - 1], store=(step == 0))[0]
        tok = pick(row, temperature, rng, allowed, top_p)
        new.append(tok)
        if grammar is not None:
            if not grammar.advance(tok):
                break
            tokens.append(tok)
            continue
        if engine.is_eog(tok):
            break
        tokens.append(tok)
        text = engine.detokenize(new, prev=prompt_tokens)
        cut = _cut_at_stop(text, stop)
        if cut is not None:
            text = cut
            break
    if grammar is not None:
        stops = number_classes(engine)["stop_set"]
        text = engine.detokenize([t for t in new if t not in stops], prev=prompt_tokens).strip().rstrip(".")
    return text.strip(), new


def answer_lines(
    engine: Engine,
    prompt: str,
    n: int,
    options: Sequence[tuple[str, str]] | None,
    temperature: float,
    seed: int,
    form: NumberForm | None = None,
    max_tokens: int = NUMBER_TOKENS,
) -> tuple[str, int, int, list[dict[str, float]]]:
    """One answer per condition: "1) <answer>" lines, each continuing the text so far.

    options: (key, answer text) pairs (the answer type's `options()`) to pick one of per
    line, scored as for single answers; else draw a number of `form`. Returns (text,
    prompt_tokens, completion_tokens, per-line label probs). Every line reuses the KV cache
    of the text before it.
    """
    with engine.lock:
        rng = np.random.default_rng(seed)
        tokens = engine.tokenize(prompt, bos=True)
        n_prompt = len(tokens)
        lines: list[str] = []
        line_probs: list[dict[str, float]] = []
        for k in range(1, n + 1):
            tokens = tokens + engine.tokenize("\n" + condition_marker(k))
            if options:
                texts = [text for _, text in options]
                probs, _, seqs = score_options(engine, tokens, texts)
                chosen = choose(probs, texts, temperature, rng)
                line_probs.append({key: probs[text] for key, text in options})
                tokens = tokens + seqs[chosen]
                value = chosen
            else:
                value, drawn = generate_tokens(engine, tokens, max_tokens, temperature, rng, form=form)
                stops = number_classes(engine)["stop_set"]
                tokens = tokens + [t for t in drawn if t not in stops]
            lines.append(condition_line(k, value))
        return "\n".join(lines), n_prompt, len(tokens) - n_prompt, line_probs
