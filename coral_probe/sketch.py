"""Latency sketches that merge: the percentiles of QueryService.

A DDSketch-style log-bucketed histogram (Masson, Rim, Lee, "DDSketch: a fast
and fully-mergeable quantile sketch with relative-error guarantees", VLDB
2019): a value x > 0 counts in bucket k = ceil(log_gamma(x)), gamma =
(1 + a) / (1 - a), and the bucket reads back as 2 gamma^k / (gamma + 1), which
is within relative error `a` of every value in it. Sketches of one accuracy
merge exactly by adding counts per key, so a fleet's percentile is the
percentile of its agents' merged sketches, never an average of percentiles.

Hand-written (about 50 lines) rather than the `ddsketch` package: the buckets
are computed by DuckDB in the agent's query (one GROUP BY, no per-value
Python), and only this key mapping and the rank walk are needed on both sides.

Rank rule: the q-quantile of n values is the value of rank floor(q (n - 1))
(0-based) in sorted order, as in DDSketch; the sketch's answer is within
`a` of it (relative). Durations are integers >= 0: a 0 counts in zero_count.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
LN_GAMMA = math.log(GAMMA)


def bucket_sql(column: str) -> str:
    """DuckDB's expression for the bucket key of `column` (> 0), the same as key()."""
    return f"CAST(ceil(ln({column}) / {LN_GAMMA!r}) AS INTEGER)"


def key(value: float) -> int:
    return math.ceil(math.log(value) / LN_GAMMA)


def value_of(k: int) -> float:
    return 2 * GAMMA ** k / (GAMMA + 1)


@dataclass
class Sketch:
    zero_count: int = 0
    counts: Counter[int] = field(default_factory=Counter)

    @classmethod
    def of(cls, values: Iterable[float]) -> "Sketch":
        sketch = cls()
        for v in values:
            if v > 0:
                sketch.counts[key(v)] += 1
            else:
                sketch.zero_count += 1
        return sketch

    @property
    def count(self) -> int:
        return self.zero_count + sum(self.counts.values())

    def merge(self, other: "Sketch") -> None:
        self.zero_count += other.zero_count
        self.counts.update(other.counts)

    def quantile(self, q: float) -> float:
        """The q-quantile (0 <= q <= 1); 0.0 for an empty sketch."""
        n = self.count
        if n == 0:
            return 0.0
        rank = math.floor(q * (n - 1))
        if rank < self.zero_count:
            return 0.0
        seen = self.zero_count
        for k in sorted(self.counts):
            seen += self.counts[k]
            if seen > rank:
                return value_of(k)
        raise AssertionError("rank past the count")  # unreachable: rank < n

    def to_proto(self, message) -> None:
        """Fills a coral.colony.v1.LatencySketch."""
        message.relative_accuracy = RELATIVE_ACCURACY
        message.zero_count = self.zero_count
        keys = sorted(self.counts)
        message.keys[:] = keys
        message.counts[:] = [self.counts[k] for k in keys]

    @classmethod
    def from_proto(cls, message) -> "Sketch":
        """Refuses a sketch of another accuracy: its keys mean other buckets."""
        if message.keys and not math.isclose(message.relative_accuracy, RELATIVE_ACCURACY):
            raise ValueError(f"a sketch of relative accuracy {message.relative_accuracy}: "
                             f"this coral merges only {RELATIVE_ACCURACY}")
        if len(message.keys) != len(message.counts):
            raise ValueError("a sketch with keys and counts of different lengths")
        sketch = cls(message.zero_count)
        for k, n in zip(message.keys, message.counts):
            sketch.counts[k] += n
        return sketch
