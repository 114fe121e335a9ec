"""A real `coral agent start` for tests: started on a test's CORAL_HOME, its
stderr collected line by line, a gRPC stub on its Unix socket."""

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from coral_probe.api import client
from test_uprobe_multi import _bpftool


class Agent:
    """A running `coral agent start`, its stderr collected line by line."""

    def __init__(self, coral, *args: str):
        self.coral = coral
        self.proc = coral.popen("agent", "start", *args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self.serving = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 60
        while not self.serving.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self._reader.join(5)
                pytest.fail("agent did not start: " + "\n".join(self.lines))
        self.channel = client.channel(None, home=coral.home)
        self.stub = client.stub(self.channel)

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("coral agent: serving on unix:"):
                self.serving.set()

    def terminate(self) -> int:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        self._reader.join(10)
        return code

    def stop(self) -> None:
        """A test's end: SIGTERM (scripts stopped, their scratch and cgroups
        removed), SIGKILL only if it does not stop in time."""
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)

    def bpf_held(self) -> dict[str, set[int]]:
        return bpf_objects_of(self.proc.pid)

    def probes_held(self, within_s: float = 10) -> dict[str, set[int]]:
        """The programs and links the agent still holds once it had `within_s`
        to let go of them ({} when it holds none)."""
        deadline = time.monotonic() + within_s
        while True:
            held = {kind: ids for kind, ids in self.bpf_held().items() if kind != "map" and ids}
            if not held or time.monotonic() > deadline:
                return held
            time.sleep(0.05)


def bpf_objects_of(pid: int) -> dict[str, set[int]]:
    """The BPF programs, links and maps the process holds, from its fds' fdinfo:
    what it alone loaded, whatever else runs on the machine."""
    held: dict[str, set[int]] = {"prog": set(), "link": set(), "map": set()}
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            fields = dict(line.split(":", 1) for line in info.read_text().splitlines() if ":" in line)
        except OSError:
            continue  # closed meanwhile
        for kind in held:
            if f"{kind}_id" in fields and (kind != "prog" or "prog_type" in fields):
                held[kind].add(int(fields[f"{kind}_id"]))
    return held


def still_loaded(held: dict[str, set[int]]) -> dict[str, set[int]]:
    left = {kind: ids & {o["id"] for o in _bpftool(kind, "show")} for kind, ids in held.items()}
    return {kind: ids for kind, ids in left.items() if ids}


def released(held: dict[str, set[int]], within_s: float = 10) -> dict[str, set[int]]:
    """What of `held` is still in the kernel once it had `within_s` to go ({} when all went)."""
    deadline = time.monotonic() + within_s
    while (left := still_loaded(held)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left

