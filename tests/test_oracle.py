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


def test_same_calls_and_latency_buckets_as_funclatency(coral, targets):
    counter = str(targets["counter"])
    oracle = subprocess.Popen(["funclatency-bpfcc", "-u", "-d", "6", f"{counter}:coral_work"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    attach = coral.popen("probe", "attach", "coral_work", "-o", "jsonl", "--binary", counter,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until_attached(attach)
        first = oracle.stdout.readline()
        assert first.startswith("Tracing"), first
        time.sleep(0.5)
        # 200 calls: every 10th sleeps 30 ms, the others 300 us
        run = subprocess.run([counter, "200", "300", "10", "30000"], capture_output=True)
        assert run.returncode == 200 % 7
        rest, _ = oracle.communicate(timeout=60)
    finally:
        if oracle.poll() is None:
            oracle.kill()
        attach.send_signal(subprocess.signal.SIGINT)
    out, err = attach.communicate(timeout=60)
    assert attach.returncode == 0, err
    events = jsonl(out)
    expected = funclatency_histogram(rest)
    assert sum(expected.values()) == 200, rest
    assert len(events) == 200
    # Bucket edges: a call a hair from a power of two may land either side.
    ours = Counter(log2_bucket_us(e["duration_ns"]) for e in events)
    moved = sum((ours - expected).values())
    assert moved <= 4, (ours, expected)
    assert {b for b in ours if b >= 16384} == {b for b in expected if b >= 16384} == {16384}
