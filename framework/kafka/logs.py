"""Where librdkafka's own log lines go: Python logging, rate-limited.

Without a logger, librdkafka prints to stderr, and an unreachable broker produces a
line per reconnect attempt. Routed through ``logging`` the lines get levels and the
structured format, and a filter lets each distinct message through at most once
per :data:`REPEAT_WINDOW` seconds, saying how many repeats it held back.
"""

from __future__ import annotations

import logging
import re
import threading
import time

#: Seconds during which a repeated librdkafka message is logged once.
REPEAT_WINDOW = 30.0
_DIGITS = re.compile(r"\d+")


class RepeatFilter(logging.Filter):
    """Drop repeats of a message (digits ignored) within a time window."""

    def __init__(self, window: float = REPEAT_WINDOW, max_keys: int = 1_000) -> None:
        super().__init__()
        self.window = window
        self.max_keys = max_keys
        self._seen: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = _DIGITS.sub("#", record.getMessage())
        now = time.monotonic()
        with self._lock:
            first, held = self._seen.get(key, (0.0, 0))
            if now - first < self.window:
                self._seen[key] = (first, held + 1)
                return False
            if len(self._seen) >= self.max_keys:
                self._seen.clear()
            self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.getMessage()} (and {held} more like it in {self.window:.0f} s)"
            record.args = None
        return True


LIBRDKAFKA_LOG = logging.getLogger("framework.kafka.librdkafka")
LIBRDKAFKA_LOG.addFilter(RepeatFilter())


_ERRORS = RepeatFilter()


def first_in_window(message: str) -> bool:
    """Whether an error-callback message should be logged now (not a recent repeat)."""
    return _ERRORS.filter(logging.LogRecord("ktf", logging.WARNING, "", 0, message, None, None))
