"""`python -m llmexp`: the same as the `llmexp` command."""

from llmexp.cli import main

main()
