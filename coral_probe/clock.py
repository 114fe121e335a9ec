"""Wall-clock time for kernel timestamps.

bpf_ktime_get_ns() is CLOCK_MONOTONIC: time since boot, not an epoch. The
offset to CLOCK_REALTIME is measured once per session; the tightest of
several bracketed readings bounds the error by one clock read (~tens of ns).
"""

import time


def monotonic_to_epoch_offset_ns(samples: int = 32) -> int:
    best_gap, best_offset = None, 0
    for _ in range(samples):
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        wall = time.clock_gettime_ns(time.CLOCK_REALTIME)
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        gap = after - before
        if best_gap is None or gap < best_gap:
            best_gap, best_offset = gap, wall - (before + after) // 2
    return best_offset
