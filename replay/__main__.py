"""`python -m replay` runs the command line."""

from replay.cli import run

run()
