"""Drain rate of a pre-filled ring buffer: coral's Rust consumer vs bcc's
open_ring_buffer + Python callback + ctypes decode, same records, same run."""

import ctypes
import time

import pytest

from helpers import CoralEventC, SyntheticProducer, report
from coral_probe import _native
from coral_probe.clock import monotonic_to_epoch_offset_ns

EVENTS = 400_000  # fits the 64 MiB ring of the producer


@pytest.fixture(scope="module")
def producer():
    p = SyntheticProducer(burst=1024, ringbuf_pages=16384)
    assert p.capacity_events > EVENTS
    yield p
    p.close()


def rust_drain(producer) -> tuple[int, float]:
    filled = producer.fill(EVENTS)
    offset = monotonic_to_epoch_offset_ns()
    t0 = time.perf_counter()
    drained = _native.drain_ring(producer.attachment.ringbuf_fd, offset)
    elapsed = time.perf_counter() - t0
    assert drained == filled
    return drained, elapsed


def bcc_drain(producer) -> tuple[int, float]:
    seen = 0
    sink = []

    def callback(ctx, data, size):
        nonlocal seen
        e = ctypes.cast(data, ctypes.POINTER(CoralEventC)).contents
        sink.append((e.ts_ns, e.duration_ns, e.tgid, e.tid, e.probe_id, e.flags, tuple(e.args), e.ret,
                     e.comm.decode()))
        seen += 1

    bpf = producer.attachment.bpf
    filled = producer.fill(EVENTS)
    bpf[b"events"].open_ring_buffer(callback)
    t0 = time.perf_counter()
    bpf.ring_buffer_consume()
    elapsed = time.perf_counter() - t0
    assert seen == filled
    return seen, elapsed


def test_drain_rate_rust_vs_bcc_python(benchmark, producer):
    rates = []

    def one_round():
        n, s = rust_drain(producer)
        rates.append(n / s)

    benchmark.pedantic(one_round, rounds=5, iterations=1)
    bcc_n, bcc_s = bcc_drain(producer)
    rust_rate, bcc_rate = max(rates), bcc_n / bcc_s
    report("drain_rate", coral_events_per_s=rust_rate, bcc_python_events_per_s=bcc_rate,
           ratio=rust_rate / bcc_rate, target_ratio=30.0)
    benchmark.extra_info.update(coral_events_per_s=rust_rate, bcc_events_per_s=bcc_rate,
                                ratio=rust_rate / bcc_rate)
