"""Delivery of a JSON webhook with a timeout and bounded retries."""

from __future__ import annotations

import httpx
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential_jitter


class DeliveryError(RuntimeError):
    """The receiver did not accept the message (non-2xx answer or transport failure).

    ``retryable`` is False for answers that will not change on a retry (4xx other than 429).
    """

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and (exc.response.status_code >= 500
                                                       or exc.response.status_code == 429)


def post_json(url: str, body_text: str, idempotency_key: str, timeout_seconds: float, attempts: int = 3) -> int:
    """POST ``body_text`` (JSON) to ``url``; retries transport errors, 429 and 5xx with
    exponential backoff and jitter.

    The ``Idempotency-Key`` header lets receivers drop a message delivered twice (a crash
    between delivery and recording it).

    Returns:
        the HTTP status code (2xx).

    Raises:
        DeliveryError: still failing after ``attempts`` tries, or a 4xx other than 429.
    """

    @retry(stop=stop_after_attempt(attempts), wait=wait_exponential_jitter(multiplier=0.2, max=2.0),
           retry=retry_if_exception(_retryable), reraise=True)
    def _send() -> int:
        with httpx.Client(timeout=timeout_seconds) as client:
            resp = client.post(url, content=body_text.encode(), headers={
                "Content-Type": "application/json", "Idempotency-Key": idempotency_key,
                "User-Agent": "inferwatch"})
            resp.raise_for_status()
            return resp.status_code

    try:
        return _send()
    except (httpx.HTTPError, httpx.HTTPStatusError) as exc:
        raise DeliveryError(f"POST {url} failed: {exc}", retryable=_retryable(exc)) from exc
