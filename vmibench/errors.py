"""Errors that are the user's to fix: the CLI prints them as one line and exits with status 2."""


class UserError(Exception):
    """Bad input (unknown model, bad resolution, unreadable checkpoint, missing data).

    The message is one line that says what to do; the CLI prints it without a traceback.
    """


class CheckpointError(UserError):
    """A checkpoint that cannot be read or does not match the model's parameter names and shapes."""


def classify_failure(exc: BaseException) -> str:
    """Row status for a failed measurement: ``oom`` for out-of-memory errors of either device, else ``error``."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return "oom"
    text = str(exc).lower()
    if "out of memory" in text or "can't allocate memory" in text or "cannot allocate memory" in text:
        return "oom"
    return "error"


def first_line(exc: BaseException, limit: int = 300) -> str:
    """First line of an exception's message (its type name when the message is empty), at most ``limit`` chars."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, short enough for a table cell."""
    return f"{type(exc).__name__}: {first_line(exc)}"
