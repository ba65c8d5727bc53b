"""The shapes arguments take across the package, read one way: paths and durations.

Every argument that takes paths takes one path or a sequence of them (a lone string is one
path, never its characters). Every duration takes seconds as a number, a
:class:`datetime.timedelta`, or the plugin's spelling (``"500ms"``, ``"30s"``, ``"5m"``,
``"2h"``, ``"14d"``, ``"2w"``), read by the same parser as the plugin's flags.
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Sequence
from typing import Union

from kubezen import _core

#: One path: text or an :class:`os.PathLike`.
PathArg = Union[str, "os.PathLike[str]"]
#: One path, or a sequence of them.
Paths = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]]
#: Seconds, a :class:`datetime.timedelta`, or text such as ``"30s"`` or ``"5m"``.
Seconds = Union[float, datetime.timedelta, str]


def path(value: PathArg | None) -> str | None:
    """``value`` as text; ``None`` stays ``None``."""
    return None if value is None else os.fspath(value)


def paths(name: str, value: Paths | None) -> list[str] | None:
    """One path or a sequence of them, as a list of texts; ``None`` stays ``None``.

    Raises ``TypeError`` naming ``name`` for anything else (bytes, a number, a sequence holding
    something that is not a path)."""
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    if isinstance(value, (bytes, bytearray)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} takes a path or a sequence of paths, not {type(value).__name__}")
    listed = []
    for item in value:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"{name} takes a path or a sequence of paths, and holds a "
                            f"{type(item).__name__}")
        listed.append(os.fspath(item))
    return listed


def seconds(name: str, value: Seconds) -> float:
    """A duration as seconds: a number, a :class:`datetime.timedelta`, or ``"30s"``-style text.

    Raises ``ValueError`` naming ``name`` for a negative, infinite or unreadable duration and
    ``TypeError`` for anything else (``True`` is not a duration)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} takes seconds, a timedelta or text such as '30s', not a bool")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, datetime.timedelta):
        number = value.total_seconds()
    elif isinstance(value, str):
        try:
            return _core.parse_duration(value)
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
    else:
        raise TypeError(f"{name} takes seconds, a timedelta or text such as '30s', not "
                        f"{type(value).__name__}")
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a non-negative duration, not {value!r}")
    return number


def seconds_or_none(name: str, value: Seconds | None) -> float | None:
    """:func:`seconds`, with ``None`` kept (no limit)."""
    return None if value is None else seconds(name, value)
