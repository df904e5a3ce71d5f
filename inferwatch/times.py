"""Times and durations as people type them on the command line and in API queries.

One reading for every entry point (``backfill --since``, ``report --window``, ``silence add
--for``, the HTTP API's ``since``/``until``), so the same text means the same instant
everywhere.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from inferwatch.store import now_ms

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
# earliest and latest instants accepted: years 1 to 9999, as RFC 3339 can write them
MIN_MS = -62_135_596_800_000
MAX_MS = 253_402_300_799_999
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_ms(text: str) -> int:
    """A duration such as ``90s``, ``30m``, ``12h``, ``7d`` or ``1.5w`` in milliseconds (> 0).

    Raises:
        ValueError: not a positive number followed by one of the units s, m, h, d, w.
    """
    m = _DURATION.match(text.strip())
    if m is None or float(m.group(1)) <= 0:
        raise ValueError(f"{text!r}: use a positive number and a unit s, m, h, d or w (30m, 12h, 7d, 2w)")
    return int(round(float(m.group(1)) * _UNIT_SECONDS[m.group(2)] * 1000))


def parse_time(text: str, now: int | None = None, *, durations: bool = True, require_offset: bool = False) -> int:
    """A point in time as UTC epoch milliseconds.

    Args:
        text: RFC 3339 (``2026-11-01T00:00:00Z``, ``2026-11-01T02:00:00+02:00``, ``z`` and ``t``
            in either case); unless ``require_offset``, a date alone (``2026-11-01``) or a time
            without offset is read as UTC. With ``durations``, also a duration before ``now``
            (``12h``, ``7d``; see :func:`duration_ms`).
        now: epoch ms the durations count back from; default the current time.
        durations: accept durations.
        require_offset: refuse a date without a time and a time without an offset (the HTTP
            API, where a client's local time must not be taken for UTC silently).

    Raises:
        ValueError: none of the accepted forms (the message says which are accepted), or an
            instant outside the years 1 to 9999.
    """
    value = text.strip()
    if durations and _DURATION.match(value):
        return _in_range(text, (now_ms() if now is None else now) - duration_ms(value))
    upper = value.upper()
    forms = "RFC 3339 (2026-11-01T00:00:00Z" + (")" if require_offset else ", or a date 2026-11-01)")
    if durations:
        forms += " or a duration before now (30m, 12h, 7d, 2w)"
    try:
        when = datetime.fromisoformat(upper[:-1] + "+00:00" if upper.endswith("Z") else upper)
    except ValueError:
        raise ValueError(f"{text!r}: use {forms}") from None
    if when.tzinfo is None:
        if require_offset:
            raise ValueError(f"{text!r}: an RFC 3339 date-time needs a time and an offset (Z or +hh:mm)")
        when = when.replace(tzinfo=timezone.utc)
    elif require_offset and "T" not in upper:
        raise ValueError(f"{text!r}: an RFC 3339 date-time needs a time and an offset (Z or +hh:mm)")
    try:
        return _in_range(text, int(round(when.timestamp() * 1000)))
    except (OverflowError, OSError):
        raise ValueError(f"{text!r} is outside the years 1 to 9999") from None


def _in_range(text: str, ms: int) -> int:
    if not MIN_MS <= ms <= MAX_MS:
        raise ValueError(f"{text!r} is outside the years 1 to 9999")
    return ms
