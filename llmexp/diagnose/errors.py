"""The diagnose stage's error type (kept apart so the CLI can load without litellm)."""

from llmexp.errors import LlmexpError


class DiagnoseError(LlmexpError):
    """A diagnosis cannot be run as asked (bad option, nothing to diagnose)."""
