"""Errors that are the user's to fix: the CLI prints them as one line and exits with status 2."""


class UserError(Exception):
    """Bad input (unknown model, bad resolution, unreadable checkpoint, missing data).

    The message is one line that says what to do; the CLI prints it without a traceback.
    """


class CheckpointError(UserError):
    """A checkpoint that cannot be read or does not match the model's parameter names and shapes."""
