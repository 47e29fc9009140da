"""``python -m vmibench`` (also how ``torchrun -m vmibench`` starts it)."""

from vmibench.cli import main

main()
