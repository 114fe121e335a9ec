"""A token bucket: a sustained rate with a burst, for what scripts send the
agent (emits, log lines)."""

import threading
import time


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: float):
        self.rate_per_s, self.burst = rate_per_s, burst
        self._tokens = burst
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: float = 1) -> bool:
        """Takes `n` tokens if there are that many; False (and takes none) if not."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate_per_s)
            self._at = now
            if self._tokens < n:
                return False
            self._tokens -= n
            return True
