"""A requests.Session for arXiv: shared rate limit, timeout, User-Agent, retries with backoff honouring Retry-After.

The same session object serves the `arxiv.Client` (as its session) and our PDF downloads, so every request to arXiv
passes through one limiter and one retry policy, and each failure surfaces as a typed error.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from claimscope import __version__
from claimscope.errors import NetworkError, RateLimited, RequestTimeout, ServerError
from claimscope.retrieve.ratelimit import RateLimiter, shared_limiter

logger = logging.getLogger(__name__)

USER_AGENT = f"claimscope/{__version__} (citation checker; polite arXiv client, 1 request per 3 s)"
MAX_RETRY_AFTER = 300.0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent or unparseable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, dt.timestamp() - (time.time() if now is None else now))


def _retry_after_of(err: BaseException) -> float | None:
    return getattr(err, "retry_after", None)


class PoliteSession(requests.Session):
    """Every request waits on the shared limiter, carries a timeout and our User-Agent, and is retried on
    429 / 5xx / timeouts / connection errors with exponential backoff + jitter (Retry-After wins when given).
    After the last try it raises RateLimited / ServerError / RequestTimeout / NetworkError naming the URL."""

    def __init__(
        self,
        *,
        limiter: RateLimiter | None = None,
        timeout: float = 30.0,
        num_retries: int = 4,
        backoff_base: float = 2.0,
        backoff_max: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self.limiter = limiter or shared_limiter()
        self.timeout = timeout
        self.num_retries = num_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_sleep = sleep
        self.request_count = 0
        self.headers["User-Agent"] = USER_AGENT

    def _wait(self, state: RetryCallState) -> float:
        err = state.outcome.exception() if state.outcome else None
        after = _retry_after_of(err) if err else None
        if after is not None:
            return min(after, MAX_RETRY_AFTER)
        expo = min(self.backoff_max, self.backoff_base * 2 ** (state.attempt_number - 1))
        return expo * (0.5 + random.random() / 2)  # jitter in [expo/2, expo]

    def _before_sleep(self, state: RetryCallState) -> None:
        err = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        logger.warning("%s; retry %d/%d in %.1fs", err, state.attempt_number, self.num_retries, wait)

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        headers = dict(kwargs.pop("headers", None) or {})
        headers = {k: v for k, v in headers.items() if k.lower() != "user-agent"}
        headers["User-Agent"] = USER_AGENT
        kwargs["headers"] = headers
        retrying = Retrying(
            stop=stop_after_attempt(self.num_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, NetworkError) and e.retryable),
            sleep=self.retry_sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        return retrying(self._once, method, url, *args, **kwargs)

    def _once(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        u = url.decode() if isinstance(url, bytes) else url
        self.limiter.wait()
        self.request_count += 1
        try:
            resp = super().request(method, url, *args, **kwargs)
        except requests.Timeout as e:
            raise RequestTimeout(u, f"no answer within {kwargs.get('timeout')}s") from e
        except requests.ConnectionError as e:
            raise ServerError(u, f"connection failed: {str(e)[:150]}") from e
        if resp.status_code == 429 or resp.status_code >= 500:
            after = parse_retry_after(resp.headers.get("Retry-After"))
            resp.close()
            cls = RateLimited if resp.status_code == 429 else ServerError
            hint = f" (Retry-After {after:.0f}s)" if after is not None else ""
            err = cls(u, f"HTTP {resp.status_code}{hint}")
            err.retry_after = after
            if after is not None:
                self.limiter.defer(min(after, MAX_RETRY_AFTER))
            raise err
        return resp
