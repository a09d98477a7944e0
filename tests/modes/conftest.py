"""Fixtures for the mode tests."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Never touch the user's ~/.cache/llmexp from a test."""
    monkeypatch.setenv("LLMEXP_CACHE_DIR", str(tmp_path / "default-cache"))
