"""Template strings: `{field}` or `{units.column}` placeholders, `{{` and `}}` for braces.

Kept deliberately tiny (no logic, no attribute access) so a study file cannot run code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


class TemplateError(ValueError):
    def __init__(self, message: str, index: int):
        super().__init__(message)
        self.index = index


def fields(template: str) -> list[tuple[str, int]]:
    """The fields a template uses with their character offsets."""
    found = []
    for match in FIELD.finditer(template):
        if match.group(0) in ("{{", "}}"):
            continue
        name = match.group(1).strip()
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?", name):
            raise TemplateError(f"'{{{match.group(1)}}}' is not a field name", match.start())
        found.append((name, match.start()))
    # A brace that is not part of {{, }} or a {field} is unbalanced: blank the well-formed
    # pieces (keeping offsets) and point at the first brace left.
    blanked = re.sub(r"\{\{|\}\}|\{[^{}]*\}", lambda m: " " * len(m.group(0)), template)
    stray = [i for i, ch in enumerate(blanked) if ch in "{}"]
    if stray:
        raise TemplateError("unbalanced brace (write {{ or }} for a literal brace)", stray[0])
    return found


def render(template: str, lookup: Callable[[str], str] | Mapping[str, str]) -> str:
    get = lookup.__getitem__ if isinstance(lookup, Mapping) else lookup

    def replace(match: re.Match) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return get(match.group(1).strip())

    return FIELD.sub(replace, template)
