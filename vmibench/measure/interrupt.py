"""The exception a run raises when SIGINT or SIGTERM stops it (its own module: the CLI imports it at start-up)."""

from __future__ import annotations

import signal


class Interrupted(Exception):
    """The run was stopped by SIGINT or SIGTERM; ``stored`` rows reached the store before that."""

    def __init__(self, signum: int, stored: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        self.stored = stored

    @property
    def exit_code(self) -> int:
        """128 + the signal number, the shell's convention (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum
