"""Fields added after v0.1 stay out of the study hash at their default (spec.Frozen._added_fields)."""

from typing import ClassVar

from llmexp.spec import Frozen


class _Old(Frozen):
    a: int = 1


class _New(Frozen):
    _added_fields: ClassVar[frozenset[str]] = frozenset({"b"})
    a: int = 1
    b: str | None = None


def test_an_added_field_at_its_default_is_left_out_of_the_json():
    assert _New().model_dump(mode="json") == _Old().model_dump(mode="json") == {"a": 1}


def test_an_added_field_set_away_from_its_default_is_kept():
    assert _New(b="x").model_dump(mode="json") == {"a": 1, "b": "x"}


def test_fields_not_declared_added_are_always_kept():
    class _Plain(Frozen):
        a: int = 1
        c: str | None = None

    assert _Plain().model_dump(mode="json") == {"a": 1, "c": None}
