"""Progress bars on stderr (rich): a counted one, the runner's (with its predicted time left), and ``track``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


@contextmanager
def progress(total: int, label: str) -> Iterator[Callable[[str], None]]:
    """A rich progress bar on stderr; yields ``advance(description)``."""
    with progress_bar(label) as update:
        done = 0
        started = time.monotonic()

        def advance(description: str) -> None:
            nonlocal done
            done += 1
            per_item = (time.monotonic() - started) / done
            update(description, done, total, per_item * (total - done))

        yield advance


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[str, int, int, float], None]]:
    """A rich progress bar on stderr: the running job's name, jobs done/total, elapsed time and the runner's
    predicted time left; yields ``update(running, done, total, eta_s)``, where ``running`` names the job about to
    run."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA {task.fields[eta]}"),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None, eta="?")

        def update(running: str, done: int, total: int, eta_s: float) -> None:
            bar.update(task, completed=done, total=max(total, done), description=f"{label}: {running}",
                       eta=_clock(eta_s))  # fmt: skip

        yield update


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def track(items: Iterable[T], total: int, label: str, describe: Callable[[T], str]) -> Iterator[T]:
    """Iterate ``items`` with a progress bar whose text names the current item."""
    with progress(total, label) as advance:
        for item in items:
            yield item
            advance(describe(item))
