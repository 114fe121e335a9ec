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
        return self.take_each([n])[0]

    def take_each(self, amounts: list[float]) -> list[bool]:
        """take() of each amount in turn, at one moment (requests received together)."""
        with self._lock:
            now = time.monotonic()
            tokens = min(self.burst, self._tokens + (now - self._at) * self.rate_per_s)
            self._at = now
            taken = []
            for n in amounts:
                enough = tokens >= n
                if enough:
                    tokens -= n
                taken.append(enough)
            self._tokens = tokens
            return taken
