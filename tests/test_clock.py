import time

from coral_probe.clock import monotonic_to_epoch_offset_ns


def test_offset_turns_monotonic_into_wall_clock():
    offset = monotonic_to_epoch_offset_ns()
    wall = time.clock_gettime_ns(time.CLOCK_MONOTONIC) + offset
    assert abs(wall - time.time_ns()) < 5_000_000  # same clock reading, to a few ms on a loaded box
    assert offset > 1_600_000_000 * 10**9  # an epoch offset, not a small boot-relative number
