"""A real `coral agent start` for tests: started on a test's CORAL_HOME, its
stderr collected line by line, a gRPC stub on its Unix socket."""

import signal
import subprocess
import threading
import time

import pytest

from coral_probe.api import client


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

