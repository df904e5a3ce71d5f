"""Plain-text tables for the benchmark report."""

from __future__ import annotations

import math
from collections.abc import Sequence


def fmt(value: object, digits: int = 3) -> str:
    """A cell: floats to ``digits`` significant figures, None as ``-``, infinity as ``never``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isinf(value):
            return "never"
        if value == 0:
            return "0"
        return f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:.0f}"
    return str(value)


def render(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A titled table with left-aligned first column and right-aligned others."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths)))

    rule = "-" * len(line(header))
    return "\n".join([title, rule, line(header), rule, *(line(r) for r in cells), rule])


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"
