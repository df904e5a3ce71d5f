"""Silences: label matchers that mute notifications for a while, as Alertmanager's do.

A silenced alert still changes state (pending, firing, resolved are recorded and exported as
metrics); only its notifications are held back. A firing alert whose silence ends is sent at
the next evaluation; a firing that was never sent is never resolved to receivers either.

Matchers use Alertmanager's operators: ``name=value``, ``name!=value``, ``name=~regex``,
``name!~regex`` (regexes anchored at both ends, as in Alertmanager). A silence applies when
all its matchers match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")

#: the longest a silence may last (366 days), in the API and the command line alike
MAX_SILENCE_SECONDS = 366 * 86_400


@dataclass(frozen=True)
class Matcher:
    """One label matcher.

    Attributes:
        name: label name.
        op: ``=``, ``!=``, ``=~`` or ``!~``.
        value: the value, or the regex (anchored) for ``=~`` / ``!~``.
    """

    name: str
    op: str
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether the labels satisfy the matcher (a missing label is the empty string)."""
        got = labels.get(self.name, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        hit = re.fullmatch(self.value, got) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


def parse_matcher(text: str) -> Matcher:
    """Parse ``name<op>value`` (value may be quoted with double quotes).

    Raises:
        ValueError: not of that form, or an invalid regex.
    """
    m = _MATCHER.match(text)
    if m is None:
        raise ValueError(f"matcher {text!r} is not name=value, name!=value, name=~regex or name!~regex")
    name, op, value = m.groups()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"matcher {text!r}: invalid regex: {exc}") from None
    return Matcher(name, op, value)


@dataclass(frozen=True)
class Silence:
    """A stored silence.

    Attributes:
        id: database id.
        matchers: all must match.
        starts_at_ms, ends_at_ms: active in ``[starts_at_ms, ends_at_ms)``, UTC epoch ms.
        created_by, comment: who and why (shown by ``inferwatch silence list``).
    """

    id: int
    matchers: tuple[Matcher, ...]
    starts_at_ms: int
    ends_at_ms: int
    created_by: str = ""
    comment: str = ""

    def active(self, now_ms: int) -> bool:
        """Whether the silence is in force at ``now_ms``."""
        return self.starts_at_ms <= now_ms < self.ends_at_ms

    def mutes(self, labels: dict[str, str], now_ms: int) -> bool:
        """Whether it is active and every matcher matches ``labels``."""
        return self.active(now_ms) and all(m.matches(labels) for m in self.matchers)


def silenced(labels: dict[str, str], silences: list[Silence], now_ms: int) -> bool:
    """Whether any of ``silences`` mutes an alert with these labels at ``now_ms``."""
    return any(s.mutes(labels, now_ms) for s in silences)
