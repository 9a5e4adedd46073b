"""``python -m quote2cash`` is ``q2c``."""

from quote2cash.cli import main

main()
