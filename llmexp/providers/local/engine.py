"""The llama.cpp engine of the embedded model: loading, tokens, and KV prefix reuse.

`Engine` keeps the token sequence held in llama.cpp's KV cache and, for every request,
evaluates only the suffix after the longest common prefix; the log-probability rows it has
computed for still-valid positions are kept too, so scoring several labels after one prompt
evaluates the prompt once, and repeating a prompt evaluates nothing. Access is serialised by
one lock (a llama.cpp context is not thread-safe).

Results do not depend on what was cached before: llama.cpp's CPU kernels for batches of
fewer than 8 tokens round differently from the batched ones (next-token probabilities moved
by up to 0.03), so every evaluation uses batches of at least MIN_BATCH tokens, backing off
into the cached prefix when the new suffix is shorter. With that, cold and prefix-reusing
evaluations are bit-identical (checked by the tests), and seeded draws repeat exactly.

Loading: `Llama()` is built with llama.cpp's extra weight buffer types off (see
`_model_params`: AMX tile kernels crash on hosts that advertise AMX without granting it)
and `OMP_WAIT_POLICY=PASSIVE` unless set (spinning OpenMP workers slowed every batch ~6x on
a busy 2-core machine). `llama_cpp` itself is imported on first use only (`_import_llama`),
so importing llmexp never needs llama-cpp-python.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmexp.errors import RunError
from llmexp.providers.local import gemma

log = logging.getLogger("llmexp.local")

INSTALL_HINT = gemma.INSTALL_HINT
DEFAULT_N_CTX = 2048
N_BATCH = 512
# Never decode fewer tokens at once (see Engine.logprob_rows): 8 is the smallest batch on
# llama.cpp's batched kernels. It was 16; every label branch after the first backs off this
# far into the prompt, so 8 saves 8 token evaluations per branch (~15% of a binary trial) with
# bit-identical rows (tests/run/test_local_golden.py, recorded at 16).
MIN_BATCH = 8
MAX_ROWS = 64  # cap on cached log-prob rows (1 MB each for Gemma's 262k vocabulary)

_llama_module: Any = None
_log_callback: Any = None  # kept referenced: llama.cpp holds a raw pointer to it


def _import_llama() -> Any:
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
        import llama_cpp  # heavy optional dependency (llmexp[local]): loaded on first use
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
def _model_params(extra_bufts: bool) -> Iterator[None]:
    """Load models with llama.cpp's "extra buffer types" (weight repacking) off unless asked.

    A llama.cpp built with -march=native on a CPU that reports AMX (recent Xeons) puts the
    weights in AMX tile buffers; in VMs/sandboxes whose kernel does not grant the AMX tile
    state, the first matrix product dies with SIGSEGV (`ldtilecfg` in
    ggml_backend_amx_mul_mat), killing the process. `Llama()` has no argument for
    `llama_model_params.use_extra_bufts`, so its default-params factory is wrapped for the
    duration of the load. Plain CPU kernels are plenty for a 270M model.
    """
    import llama_cpp.llama as llama_mod  # only reached after _import_llama() succeeded

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


def default_threads() -> int:
    """CPU threads for llama.cpp: $LLMEXP_LOCAL_THREADS, else up to 4."""
    env = os.environ.get("LLMEXP_LOCAL_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    return max(1, min(4, os.cpu_count() or 1))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities from one row of logits (float64 sums, float32 result)."""
    x = logits.astype(np.float64)
    m = float(x.max())
    lse = m + math.log(float(np.exp(x - m).sum()))
    return (x - lse).astype(np.float32)


class Engine:
    """One llama.cpp model + context, with prefix reuse of its KV cache. Thread-safe."""

    def __init__(
        self,
        path: str | Path | None = None,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
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
        # depend only on the tokens (see logprob_rows), so they stay valid whatever the
        # KV cache holds later.
        self._rows: OrderedDict[tuple[int, ...], np.ndarray] = OrderedDict()
        self.lock = threading.RLock()
        self.decoded_tokens = 0  # tokens evaluated (for benchmarks)
        self.reused_tokens = 0  # prompt tokens served from the KV cache

    def close(self) -> None:
        """Free the llama.cpp context and model."""
        with self.lock:
            if self._batch is not None:
                self._c.llama_batch_free(self._batch)
                self._batch = None
            self._llm.close()

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

    def is_eog(self, token: int) -> bool:
        """True for an end-of-generation token."""
        return bool(self._c.llama_vocab_is_eog(self._vocab, int(token)))

    def piece(self, token: int, buf: Any) -> bytes:
        """The raw bytes of one token (`buf`: a ctypes buffer of 256 bytes, reused)."""
        n = self._c.llama_token_to_piece(self._vocab, token, buf, 256, 0, False)
        return buf.raw[:n] if n > 0 else b""

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
        off = 0
        for size in self._chunks(len(tokens)):
            chunk = tokens[off : off + size]
            base = start + off
            off += size
            self._decode_batch(chunk, base, want, out)
        return out

    def _decode_batch(self, chunk: Sequence[int], base: int, want: set[int], out: dict[int, np.ndarray]) -> None:
        """Evaluate one batch of tokens at positions base.. and collect the wanted rows."""
        batch = self._batch
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
                out[base + i] = log_softmax(np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)))

    def logprob_rows(self, tokens: Sequence[int], positions: Sequence[int], store: bool = True) -> list[np.ndarray]:
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
            for a, b in zip(self._kv, target, strict=False):  # the common prefix
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
