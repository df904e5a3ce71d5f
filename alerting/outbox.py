"""The outbox worker: delivers the stored outgoing requests, retrying with backoff.

Every outgoing call is first a row of the ``outbox`` table, written in the transaction that
decided it (``Store.enqueue``). The worker claims due rows (a lease, so two workers, even in
two processes on one PostgreSQL, never send one row at the same time), sends each once
(:func:`alerting.delivery.deliver`) and records the outcome:

- accepted: delivered;
- retryable (transport error, 408, 429, 5xx): the next attempt is due after an exponential
  backoff with jitter (tenacity's ``wait_exponential_jitter``), stored as
  ``next_attempt_at_ms`` so a restarted process continues the same schedule;
- refused for good (another 4xx, an unknown target): dead at once;
- past its expiry: dead with reason ``expired``.

Per target, rows go out in the order they were written: a row waits while an older row of the
same target is neither delivered nor dead. Delivery is at least once: a process killed
between a receiver's answer and the database update sends that row again, with the same
``Idempotency-Key`` (and ``webhook-id``), which receivers use to drop the repeat.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field
from tenacity import RetryCallState, wait_exponential_jitter

from alerting.endpoint import Endpoint

log = logging.getLogger(__name__)

OUTCOMES = ("delivered", "retry", "dead", "expired")


class OutboxConfig(BaseModel):
    """Outbox delivery settings (``alerting.outbox``).

    Attributes:
        expire_after_seconds: a message not delivered this long after it was written is given
            up (dead, reason ``expired``); null: never.
        backoff_initial_seconds: wait after the first failed attempt; doubles per attempt.
        backoff_max_seconds: longest wait between attempts.
        jitter_seconds: a random 0..jitter seconds added to each wait, so many messages do not
            retry in step.
        poll_interval_seconds: how often the background worker looks for due messages.
        batch_size: messages handled per run at most.
        lease_seconds: how long a claimed message is reserved for the worker sending it; after
            that (a worker that died mid-send) another worker may send it. Must exceed the
            longest receiver timeout.
        retention_seconds: delivered and dead messages are deleted this long after they were
            delivered or given up (the background worker checks every few minutes); null:
            kept forever.
    """

    model_config = ConfigDict(extra="forbid")

    expire_after_seconds: float | None = Field(86400, gt=0)
    backoff_initial_seconds: float = Field(1.0, gt=0)
    backoff_max_seconds: float = Field(300.0, gt=0)
    jitter_seconds: float = Field(1.0, ge=0)
    poll_interval_seconds: float = Field(1.0, gt=0)
    batch_size: int = Field(100, gt=0)
    lease_seconds: float = Field(60.0, gt=0)
    retention_seconds: float | None = Field(7 * 86400, gt=0)


_PURGE_EVERY_SECONDS = 300.0


class OutboxStore(Protocol):
    """The store methods the worker uses (``inferwatch.store.Store``)."""

    def claim_due(self, now_ms: int, lease_ms: int, limit: int) -> list: ...

    def mark_delivered(self, row_id: int, now_ms: int) -> None: ...

    def mark_retry(self, row_id: int, next_at_ms: int, error: str) -> None: ...

    def mark_dead(self, row_id: int, now_ms: int, error: str, attempted: bool = True) -> None: ...

    def purge_outbox(self, before_ms: int) -> int: ...


def backoff_seconds(config: OutboxConfig, attempt: int) -> float:
    """Wait after failed attempt number ``attempt`` (1 for the first):
    ``min(backoff_initial * 2**(attempt-1) + uniform(0, jitter), backoff_max)`` seconds."""
    wait = wait_exponential_jitter(initial=config.backoff_initial_seconds, max=config.backoff_max_seconds,
                                   jitter=config.jitter_seconds)
    state = RetryCallState(None, None, (), {})
    state.attempt_number = max(1, attempt)
    return float(wait(state))


class OutboxWorker:
    """Delivers outbox rows to their targets.

    Args:
        store: the database (``claim_due``, ``mark_delivered``, ``mark_retry``, ``mark_dead``).
        targets: target name → ``(kind, endpoint)``; kind is ``webhook``, ``alertmanager``,
            ``pagerduty`` or ``slack``. A row naming no configured target goes dead.
        config: backoff, expiry, polling and lease settings.
        on_outcome: called with ``(target, outcome)`` after each attempt; outcome is
            ``delivered``, ``failed`` (will be retried) or ``dead`` (given up, expiry included).
            For metrics; exceptions it raises are logged, not propagated.
    """

    def __init__(self, store: OutboxStore, targets: Mapping[str, tuple[str, Endpoint]],
                 config: OutboxConfig | None = None,
                 on_outcome: Callable[[str, str], None] | None = None) -> None:
        self.store = store
        self.targets = dict(targets)
        self.config = config or OutboxConfig()
        self.on_outcome = on_outcome
        self._client = httpx.Client(follow_redirects=False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _report(self, target: str, outcome: str) -> None:
        if self.on_outcome is not None:
            try:
                self.on_outcome(target, outcome)
            except Exception:  # noqa: BLE001 - a metrics hook must not stop delivery
                log.exception("outbox outcome callback failed")

    def run_once(self, now_ms: int | None = None) -> dict[str, int]:
        """Claim and handle the messages due now, until none is due or ``batch_size`` were
        handled.

        Args:
            now_ms: the time to judge due and expired by (UTC epoch ms); None: the clock,
                read again before each claim.

        Returns:
            how many messages came to each outcome: ``{"delivered", "retry", "dead",
            "expired"}`` (``dead``: refused for good or unknown target).
        """
        from alerting.delivery import deliver

        counts = dict.fromkeys(OUTCOMES, 0)
        cfg = self.config
        handled = 0
        while handled < cfg.batch_size and not self._stop.is_set():
            now = now_ms if now_ms is not None else int(time.time() * 1000)
            rows = self.store.claim_due(now, int(cfg.lease_seconds * 1000), cfg.batch_size - handled)
            if not rows:
                break
            for row in rows:
                handled += 1
                now = now_ms if now_ms is not None else int(time.time() * 1000)
                key = row.idempotency_key
                if row.expires_at_ms is not None and now >= row.expires_at_ms:
                    self.store.mark_dead(row.id, now, "expired", attempted=False)
                    counts["expired"] += 1
                    self._report(row.target, "dead")
                    log.error("outbox message %s to %s expired undelivered after %d attempts", key, row.target,
                              row.attempts)
                    continue
                target = self.targets.get(row.target)
                if target is None:
                    self.store.mark_dead(row.id, now, f"unknown target {row.target!r}: not configured",
                                         attempted=False)
                    counts["dead"] += 1
                    self._report(row.target, "dead")
                    log.error("outbox message %s: target %s is not configured", key, row.target)
                    continue
                kind, endpoint = target
                outcome = deliver(self._client, kind, endpoint, row.request, now)
                if outcome.accepted:
                    self.store.mark_delivered(row.id, int(time.time() * 1000) if now_ms is None else now)
                    counts["delivered"] += 1
                    self._report(row.target, "delivered")
                elif outcome.retryable:
                    wait = backoff_seconds(cfg, row.attempts + 1)
                    if outcome.retry_after_seconds is not None:
                        wait = min(max(wait, outcome.retry_after_seconds), cfg.backoff_max_seconds)
                    self.store.mark_retry(row.id, now + int(wait * 1000), outcome.detail)
                    counts["retry"] += 1
                    self._report(row.target, "failed")
                    log.warning("outbox message %s to %s not delivered (attempt %d, next in %.1f s): %s", key,
                                row.target, row.attempts + 1, wait, outcome.detail)
                else:
                    self.store.mark_dead(row.id, now, outcome.detail)
                    counts["dead"] += 1
                    self._report(row.target, "dead")
                    log.error("outbox message %s to %s refused, given up: %s", key, row.target, outcome.detail)
        return counts

    def purge(self, now_ms: int | None = None) -> int:
        """Delete delivered and dead messages older than ``retention_seconds``; returns how many."""
        if self.config.retention_seconds is None:
            return 0
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return self.store.purge_outbox(now - int(self.config.retention_seconds * 1000))

    def _loop(self) -> None:
        next_purge = 0.0
        failures = 0
        while not self._stop.is_set():
            wait = self.config.poll_interval_seconds
            try:
                self.run_once()
                if time.monotonic() >= next_purge:
                    self.purge()
                    next_purge = time.monotonic() + _PURGE_EVERY_SECONDS
                if failures:
                    log.info("outbox delivery resumed")
                failures = 0
            except Exception as exc:  # noqa: BLE001 - a database outage: wait, then try again
                failures += 1
                # one line per outage, not a traceback per poll; the wait doubles up to a minute
                wait = min(60.0, wait * 2 ** min(failures, 10))
                if failures == 1:
                    first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
                    log.warning("outbox delivery paused (%s: %s); retrying, at most every %.0f s", type(exc).__name__,
                                first[0] if first else "", 60.0)
                log.debug("outbox delivery run failed", exc_info=True)
            self._stop.wait(wait)

    def start(self) -> None:
        """Run :meth:`run_once` every ``poll_interval_seconds`` in a background thread."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="outbox-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the background thread (after the message being sent) and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def close(self) -> None:
        """Stop and release the HTTP connections."""
        self.stop()
        self._client.close()
