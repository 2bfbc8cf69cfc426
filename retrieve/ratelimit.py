"""One polite limiter shared by every arXiv request (API and PDF): at most one request per `min_interval` seconds."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class RateLimiter:
    """Blocks until `min_interval` seconds have passed since the previous request. Thread-safe.

    `clock` and `sleep` are injectable so tests never really sleep.
    """

    def __init__(
        self,
        min_interval: float = 3.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.min_interval = min_interval
        self.clock = clock
        self.sleep = sleep
        self._last: float | None = None
        self._lock = threading.Lock()
        self.waited = 0.0  # total seconds slept, for logs and tests

    def wait(self) -> None:
        with self._lock:
            now = self.clock()
            if self._last is not None:
                due = self._last + self.min_interval
                if now < due:
                    delay = due - now
                    logger.debug("rate limit: sleeping %.2fs before the next arXiv request", delay)
                    self.sleep(delay)
                    self.waited += delay
                    now = self.clock()
            self._last = max(now, self._last + self.min_interval if self._last is not None else now)

    def defer(self, seconds: float) -> None:
        """Push the next allowed request `seconds` into the future (server said Retry-After)."""
        with self._lock:
            base = self.clock()
            self._last = max(self._last or base, base + seconds - self.min_interval)


_shared: dict[float, RateLimiter] = {}
_shared_lock = threading.Lock()


def shared_limiter(min_interval: float = 3.0) -> RateLimiter:
    """The process-wide limiter for arXiv traffic with this interval."""
    with _shared_lock:
        if min_interval not in _shared:
            _shared[min_interval] = RateLimiter(min_interval)
        return _shared[min_interval]
