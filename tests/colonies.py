"""A real `coral colony start` for tests: started on a CORAL_HOME of its
own, its stderr collected line by line, a QueryService stub on its socket."""

import signal
import subprocess
import threading
import time

import pytest

from coral_probe.api import client, qpb_grpc


class Colony:
    """A running `coral colony start --agent ID=ADDR ...`."""

    def __init__(self, coral, agents: dict[str, str], *args: str):
        """`agents`: id -> address (unix:PATH or HOST:PORT), as --agent takes them."""
        self.coral = coral
        self.socket = coral.home / "colony.sock"
        specs = [f"--agent={agent_id}={address}" for agent_id, address in agents.items()]
        self.proc = coral.popen("colony", "start", *specs, *args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self.serving = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 60
        while not self.serving.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self._reader.join(5)
                pytest.fail("colony did not start: " + "\n".join(self.lines))
        self.channel = client.channel(f"unix:{self.socket}", home=coral.home)
        self.query = qpb_grpc.QueryServiceStub(self.channel)

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("coral colony: serving on unix:"):
                self.serving.set()

    def stop(self) -> int:
        """SIGTERM; SIGKILL only if it does not stop in time. The exit code."""
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        code = self.proc.wait(30)
        self._reader.join(10)
        return code
