"""bcc's funclatency as an oracle: on the same run of the same target, coral
sees the same calls and puts them in the same latency buckets."""

import math
import re
import subprocess
import time
from collections import Counter

import pytest

from conftest import jsonl
from test_probe_attach import wait_until_attached

pytestmark = pytest.mark.bpf


def funclatency_histogram(output: str) -> Counter:
    """{log2 bucket low bound in us: count} from funclatency -u."""
    buckets = Counter()
    for low, count in re.findall(r"^\s*(\d+) -> \d+\s*: (\d+)", output, re.MULTILINE):
        if int(count):
            buckets[int(low)] += int(count)
    return buckets


def log2_bucket_us(duration_ns: int) -> int:
    us = duration_ns // 1000
    return 0 if us == 0 else 2 ** int(math.log2(us))


# The two tools time the same call from programs on the same uprobe and
# uretprobe, microseconds apart: a call this close to a power-of-two edge may
# fall on either side of it in the two histograms, and only such a call.
EDGE_MARGIN = 0.01  # of the edge
EDGE_MARGIN_MIN_US = 20


def near_edge(duration_ns: int) -> int:
    """+1: just below the bucket's upper edge; -1: just above its lower edge; else 0."""
    low = log2_bucket_us(duration_ns)
    us = duration_ns / 1000
    if low and us < low + max(low * EDGE_MARGIN, EDGE_MARGIN_MIN_US):
        return -1
    high = 2 * low if low else 1
    return 1 if high - us <= max(high * EDGE_MARGIN, EDGE_MARGIN_MIN_US) else 0


def histograms_agree(durations_ns: list[int], expected: Counter) -> str | None:
    """Whether coral's calls make funclatency's histogram exactly, each call
    in its own bucket or, only if it lies within the margin of an edge, in
    the bucket across that edge. Buckets form a line, so the number of calls
    crossing each edge follows from the counts below it. None, or why not."""
    ours = Counter(log2_bucket_us(d) for d in durations_ns)
    up = Counter(log2_bucket_us(d) for d in durations_ns if near_edge(d) > 0)      # may count one bucket higher
    down = Counter(log2_bucket_us(d) for d in durations_ns if near_edge(d) < 0)    # may count one bucket lower
    buckets = [0] + [2 ** i for i in range(40)]
    crossing = 0  # calls moved up across the lower edge of the current bucket (negative: down)
    for low, high in zip(buckets, buckets[1:]):
        crossing = ours[low] + crossing - expected[low]  # now: across the edge between low and high
        if not -down[high] <= crossing <= up[low]:
            return (f"{crossing:+d} calls across the {high} us edge, but only {up[low]} of ours lie just below "
                    f"it and {down[high]} just above: ours {dict(ours)}, funclatency {dict(expected)}")
    return None


def test_edge_tolerance_is_only_for_calls_at_an_edge():
    ms = 1_000_000
    assert histograms_agree([30 * ms, 300_000], Counter({16384: 1, 256: 1})) is None
    assert histograms_agree([32_700_000], Counter({32768: 1})) is None       # 68 us under the edge: either side
    assert histograms_agree([32_800_000], Counter({16384: 1})) is None       # 32 us over it: either side
    assert histograms_agree([30 * ms], Counter({32768: 1})) is not None       # 2.8 ms under: never moves
    assert histograms_agree([300_000], Counter({512: 1})) is not None
    assert histograms_agree([30 * ms], Counter({16384: 2})) is not None       # counts stay exact
    assert histograms_agree([1_100_000, 1_100_000], Counter({1024: 1, 512: 1})) is not None  # 76 us past 1024
    assert histograms_agree([1_030_000, 1_100_000], Counter({1024: 1, 512: 1})) is None  # 6 us past it


# Call durations far from powers of two (in us: 1100 is 76 us past 1024 and
# 947 us short of 2048; 20000 is 3.6 ms past 16384 and 12.7 ms short of 32768),
# so a slow wake-up on a busy machine does not carry a call across an edge.
FAST_US, SLOW_US, SLOW_EVERY, CALLS = 1100, 20000, 10, 200


def test_same_calls_and_latency_buckets_as_funclatency(coral, targets):
    counter = str(targets["counter"])
    oracle = subprocess.Popen(["funclatency-bpfcc", "-u", "-d", "6", f"{counter}:coral_work"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    attach = coral.popen("probe", "attach", "coral_work", "--args", "3", "-o", "jsonl", "--binary", counter,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until_attached(attach)
        first = oracle.stdout.readline()
        assert first.startswith("Tracing"), first
        time.sleep(0.5)
        # every 10th call sleeps SLOW_US, the others FAST_US
        run = subprocess.run([counter, str(CALLS), str(FAST_US), str(SLOW_EVERY), str(SLOW_US)], capture_output=True)
        assert run.returncode == CALLS % 7
        rest, _ = oracle.communicate(timeout=60)
    finally:
        if oracle.poll() is None:
            oracle.kill()
        attach.send_signal(subprocess.signal.SIGINT)
    out, err = attach.communicate(timeout=60)
    assert attach.returncode == 0, err
    events = jsonl(out)
    expected = funclatency_histogram(rest)
    assert sum(expected.values()) == CALLS, rest
    assert len(events) == CALLS
    # Each call as the target made it (args: i, 2i, its sleep), never shorter than its sleep.
    assert [e["args"][:2] for e in events] == [[i, 2 * i] for i in range(1, CALLS + 1)]
    for e in events:
        i, _, sleep_us = e["args"]
        assert sleep_us == (SLOW_US if i % SLOW_EVERY == 0 else FAST_US), e
        assert e["duration_ns"] >= sleep_us * 1000, e
    slow = CALLS // SLOW_EVERY
    assert sum(n for b, n in expected.items() if b >= 16384) == slow, rest
    assert sum(1 for e in events if log2_bucket_us(e["duration_ns"]) >= 16384) == slow
    problem = histograms_agree([e["duration_ns"] for e in events], expected)
    assert problem is None, problem
