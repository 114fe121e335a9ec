"""Human durations ("500ms", "1.5s", "2m") to nanoseconds."""

import re

from .errors import CoralError

_UNITS_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
             "m": 60_000_000_000, "h": 3_600_000_000_000}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h)\s*$")


def parse_duration_ns(text: str, *, option: str) -> int:
    match = _PATTERN.match(text)
    if not match:
        if text.strip() == "0":
            return 0
        raise CoralError(f"invalid {option} '{text}': expected a number with a unit "
                         "(ns, us, ms, s, m, h), e.g. 500ms")
    return round(float(match.group(1)) * _UNITS_NS[match.group(2)])


def format_ns(ns: float | int | None) -> str:
    if ns is None:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g}{unit}" if ns < 100 * scale else f"{ns / scale:.0f}{unit}"
    return f"{int(ns)}ns"
