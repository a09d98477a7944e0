"""Blinding modes: one class per mode, one file per class, in one registry.

Every module of this package is imported here, so adding a mode is adding a file: its
class declares its capabilities (see `Mode`) and registers itself with `@register`.
Callers ask `llmexp.modes.get(name)` for a mode's capabilities or renderer; they never
compare mode names.
"""

from __future__ import annotations

import importlib
import pkgutil

from llmexp.modes.base import MODES, Mode, default, get, names, register, unregister, with_capability

__all__ = ["MODES", "Mode", "default", "get", "names", "register", "unregister", "with_capability"]


def _load_modes() -> None:
    """Imports every module of the package (each registers its mode)."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_load_modes()
