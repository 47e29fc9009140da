"""``python -m vmibench.cli`` (the same as ``python -m vmibench``)."""

from vmibench.cli import main

main()
