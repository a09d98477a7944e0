"""Fixtures for the diagnose tests: a small synthetic study written to disk."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).parent))

from diaghelp import QUICK, SMALL_STUDY, write_small_study  # noqa: E402,F401


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMEXP_CACHE_DIR", str(tmp_path / "default-cache"))
