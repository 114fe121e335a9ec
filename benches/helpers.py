"""Pieces the benchmarks share: the report line, the peer's ctypes view of
the event, the synthetic in-kernel producer."""

import ctypes
import os


def report(title: str, **figures) -> None:
    """One greppable line per benchmark: `BENCH title: k=v ...`."""
    body = " ".join(f"{k}={v:,.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
    print(f"\nBENCH {title}: {body}", flush=True)


class CoralEventC(ctypes.Structure):
    """The peer's view of bpf/coral_event.h: what a bcc tool would write."""
    _fields_ = [("ts_ns", ctypes.c_uint64), ("duration_ns", ctypes.c_uint64), ("tgid", ctypes.c_uint32),
                ("tid", ctypes.c_uint32), ("probe_id", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("args", ctypes.c_int64 * 6), ("ret", ctypes.c_int64), ("comm", ctypes.c_char * 16)]


class SyntheticProducer:
    """bpf/synthetic.bpf.c: each getppid() of this process commits `burst` events."""

    def __init__(self, burst: int = 1024, ringbuf_pages: int = 16384):
        from coral_probe.attach import Attachment
        from coral_probe.bpf_source import synthetic_producer

        self.burst = burst
        self.attachment = Attachment(synthetic_producer(burst=burst, filter_tgid=os.getpid(),
                                                        ringbuf_pages=ringbuf_pages))
        self.capacity_events = ringbuf_pages * 4096 // (ctypes.sizeof(CoralEventC) + 8)

    def submitted(self) -> int:
        return self.attachment.counters()["submitted"]

    def fill(self, events: int) -> int:
        """Commits about `events` records (whole bursts); returns how many."""
        before = self.submitted()
        for _ in range(max(1, events // self.burst)):
            os.getppid()
        return self.submitted() - before

    def close(self) -> None:
        self.attachment.detach()
