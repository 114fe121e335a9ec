"""CPU and memory from /proc, sampled by the agent (system_metrics_local)."""

import os
import threading
import time
from dataclasses import dataclass

from ..errors import StoreFailed


@dataclass(frozen=True)
class CpuTimes:
    busy: int
    total: int
    at: float


def read_cpu_times() -> CpuTimes:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return CpuTimes(total - idle, total, time.monotonic())


def read_memory() -> dict[str, int]:
    values = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, rest = line.split(":", 1)
            values[key] = int(rest.split()[0]) * 1024
    total, available = values["MemTotal"], values.get("MemAvailable", values["MemFree"])
    return {"total": total, "available": available, "used": total - available}


class SystemSampler:
    """Samples every `interval_s` into DuckDB and answers getCPU/getMemory."""

    def __init__(self, store, interval_s: float = 5.0):
        self.store, self.interval_s = store, interval_s
        self._last = read_cpu_times()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="coral-sysmetrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def cpu(self) -> dict:
        now = read_cpu_times()
        with self._lock:
            last = self._last
        if now.at - last.at < 0.05:  # too close to mean anything: wait a little
            time.sleep(0.1)
            now = read_cpu_times()
        busy, total = now.busy - last.busy, now.total - last.total
        load1, load5, load15 = os.getloadavg()
        return {"usage_percent": 100.0 * busy / total if total else 0.0, "cores": os.cpu_count() or 1,
                "load1": load1, "load5": load5, "load15": load15, "sampled_at_ms": int(time.time() * 1000)}

    def memory(self) -> dict:
        m = read_memory()
        return {**m, "usage_percent": 100.0 * m["used"] / m["total"]}

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                cpu = self.cpu()
                with self._lock:
                    self._last = read_cpu_times()
                mem = self.memory()
            except OSError:
                continue  # e.g. out of descriptors for a moment (a script can cause that): skip a sample
            try:
                self.store.record_system_metrics([("cpu.usage_percent", cpu["usage_percent"], "percent"),
                                                  ("memory.used_bytes", float(mem["used"]), "bytes"),
                                                  ("memory.usage_percent", mem["usage_percent"], "percent")])
            except StoreFailed:
                return  # the executor stops the runs and says why; samples have nowhere to go
