"""Lets `llmexp.compile(...)` and `llmexp.run(...)` stay functions although `llmexp.compile`
and `llmexp.run` are also subpackages.

Importing a subpackage sets it as an attribute of `llmexp`, replacing the function of the
same name; so each of those subpackages makes its own module object callable instead.
"""

from __future__ import annotations

import sys
import types
from typing import Callable


def make_callable(module_name: str, call: Callable) -> None:
    """Give the module `module_name` a `__call__` that forwards to `call`."""

    class CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return call(*args, **kwargs)

    CallableModule.__call__.__doc__ = call.__doc__
    sys.modules[module_name].__class__ = CallableModule
