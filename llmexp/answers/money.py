"""money [low to high]: a dollar amount, within low..high when given.

Parsed like a number ("$12.50", "between $3 and $5" -> 4); the prompt asks for a dollar
amount, the embedded model's number grammar allows a leading "$", and the synthetic
respondent writes "$1,234.50" (rounded to cents).
"""

from __future__ import annotations

from llmexp.answers.base import register
from llmexp.answers.number import Number


@register
class Money(Number):
    name = "money"
    unit_phrase = "a dollar amount"

    def _money(self) -> bool:
        return True
