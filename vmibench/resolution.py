"""Input resolutions: ``224`` (square) or ``HxW`` strings, and their labels in result rows."""

from __future__ import annotations

from vmibench.errors import UserError


def as_hw(res: int | str | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``224`` / ``"224"`` / ``"800x1280"`` / ``(800, 1280)`` -> ``(h, w)``; :class:`UserError` otherwise."""
    if isinstance(res, (tuple, list)):
        if len(res) != 2:
            raise UserError(f"resolution {res!r} must be one size or height x width")
        h, w = (_positive(str(v), str(res)) for v in res)
        return h, w
    if isinstance(res, int):
        v = _positive(str(res), str(res))
        return v, v
    text = str(res).strip().lower()
    parts = text.split("x")
    if len(parts) == 1:
        v = _positive(parts[0], text)
        return v, v
    if len(parts) == 2:
        return _positive(parts[0], text), _positive(parts[1], text)
    raise UserError(f"bad resolution '{res}': use a positive integer like 224 or HxW like 800x1280")


def _positive(text: str, whole: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"bad resolution '{whole}': use a positive integer like 224 or HxW like 800x1280") from None
    if value <= 0:
        raise UserError(f"bad resolution '{whole}': sizes must be positive")
    return value


def label(hw: tuple[int, int]) -> str:
    """``(h, w)`` -> row label: ``"224"`` for square inputs, ``"800x1280"`` otherwise."""
    h, w = hw
    return str(h) if h == w else f"{h}x{w}"


def hxw_label(res: int | str | tuple[int, int]) -> str:
    """Any resolution (as :func:`as_hw` reads it) -> ``"HxW"`` always: ``224`` -> ``"224x224"`` (where :func:`label`
    writes ``"224"``)."""
    h, w = as_hw(res)
    return f"{h}x{w}"


def pixels(res: int | str | tuple[int, int]) -> int:
    """Any resolution (as :func:`as_hw` reads it) -> its pixel count: ``"800x1280"`` -> 1024000."""
    h, w = as_hw(res)
    return h * w
