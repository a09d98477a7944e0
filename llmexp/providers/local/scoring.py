"""Label scoring: the probability of each answer option as a continuation of the prompt.

Labels are scored as whole token sequences: the sum of the label tokens' log-probabilities.
A label that is a token-prefix of another (" 1" of " 10") is scored as *terminated* (its
probability times 1 - P(the longer labels' next token)), so the events are disjoint.

Answer texts are counted in two surface forms, plain and opening with a quote (' "purchase'),
since the prompts quote the labels and a base model mostly answers with a quote
(`score_options`). `probs` are normalised over the labels and `mass` is the raw probability
the labels covered. `choose` turns probabilities into the returned answer: the argmax at
temperature 0, else a seeded draw from probs^(1/T).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from llmexp.providers.local.engine import Engine


def logsumexp(values: Sequence[float]) -> float:
    m = max(values)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(v - m) for v in values))


def normalise(logp: dict[str, float]) -> tuple[dict[str, float], float]:
    """(probabilities normalised over the keys, total raw mass) from log-probabilities."""
    lse = logsumexp(list(logp.values()))
    if lse == -math.inf:
        return {k: 1.0 / len(logp) for k in logp}, 0.0
    return {k: math.exp(v - lse) for k, v in logp.items()}, min(1.0, math.exp(lse))


def label_logps(
    engine: Engine, prompt_tokens: list[int], labels: list[str]
) -> tuple[dict[str, float], dict[str, list[int]]]:
    """Log-probability of each continuation as a whole token sequence (see the module doc);
    also each label's tokens. The caller holds `engine.lock`."""
    if not labels:
        raise ValueError("no labels to score")
    if not prompt_tokens:
        raise ValueError("empty prompt")
    seqs: dict[str, list[int]] = {}
    for label in labels:
        toks = engine.tokenize(label)
        if not toks:
            raise ValueError(f"label {label!r} has no tokens")
        seqs[label] = toks
    p_end = len(prompt_tokens) - 1
    logp: dict[str, float] = {}
    # sorted by token sequence: labels sharing a prefix are adjacent, so each one only
    # evaluates the tokens after the prefix it shares with the previous one
    for label in sorted(seqs, key=lambda k: seqs[k]):
        toks = seqs[label]
        n = len(toks)
        nexts = {
            seqs[o][n] for o in seqs if len(seqs[o]) > n and seqs[o][:n] == toks
        }  # continuations into longer labels
        depth = n if nexts else n - 1  # label tokens whose next-token row is needed
        rows = engine.logprob_rows(prompt_tokens + toks[:depth], [p_end + j for j in range(depth + 1)])
        lp = float(sum(float(rows[j][toks[j]]) for j in range(n)))
        if nexts:
            cont = float(sum(math.exp(float(rows[n][t])) for t in nexts))
            lp += math.log1p(-min(cont, 1.0 - 1e-12))
        logp[label] = lp
    return logp, seqs


def score_options(
    engine: Engine, prompt_tokens: list[int], texts: Sequence[str]
) -> tuple[dict[str, float], float, dict[str, list[int]]]:
    """Probabilities of answer texts, each counted in its surface forms ' t' and ' "t'.

    The prompts state the labels in quotes (`Answer with exactly one of: "purchase" or
    "not purchase"`), and a base model then opens its answer with a quote more often
    than not (over half the next-token mass on the demand prompts), so plain labels
    alone covered ~1-2% of the mass and quoted ones ~30%. Both forms of one answer are
    disjoint events and are added. Returns (probs by text, mass, text -> tokens of " t").
    The caller holds `engine.lock`.
    """
    forms: dict[str, str] = {}
    for text in texts:
        for cont in (" " + text, ' "' + text):
            forms.setdefault(cont, text)
    logp, seqs = label_logps(engine, prompt_tokens, list(forms))
    per_text = {
        text: logsumexp([lp for cont, lp in logp.items() if forms[cont] == text]) for text in texts
    }
    probs, mass = normalise(per_text)
    return probs, mass, {text: seqs[" " + text] for text in texts}


def choose(probs: dict[str, float], labels: Sequence[str], temperature: float, rng: np.random.Generator) -> str:
    """argmax at temperature 0 (first label wins ties); else a draw from probs^(1/T)."""
    if temperature <= 0:
        return max(labels, key=lambda lab: (probs[lab], -labels.index(lab)))
    logs = [math.log(max(probs[lab], 1e-300)) / temperature for lab in labels]
    m = max(logs)
    weights = np.array([math.exp(v - m) for v in logs])
    c = np.cumsum(weights)
    k = int(np.searchsorted(c, rng.random() * c[-1], side="right"))
    return labels[min(k, len(labels) - 1)]
