"""`python -m llmexp.cli`: the same as the `llmexp` command."""

from llmexp.cli import main

main()
