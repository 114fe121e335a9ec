"""Shared fixtures: real targets built from tests/targets, the real `coral`
CLI in a subprocess, a private CORAL_HOME per test."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from coral_probe.doctor import probe_blocker

ROOT = Path(__file__).resolve().parent.parent
TARGETS_SRC = ROOT / "tests" / "targets"


def pytest_collection_modifyitems(config, items):
    # With CORAL_REQUIRE_BPF=1 nothing is skipped: the session fixture below
    # ends the run with a failure instead.
    reason = probe_blocker()
    if reason is None or os.environ.get("CORAL_REQUIRE_BPF") == "1":
        return
    for item in items:
        if "bpf" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=f"eBPF unavailable: {reason}"))


@pytest.fixture(scope="session", autouse=True)
def _fail_when_bpf_required():
    reason = probe_blocker()
    if reason and os.environ.get("CORAL_REQUIRE_BPF") == "1":
        pytest.exit(f"CORAL_REQUIRE_BPF=1 but eBPF is unavailable: {reason}", returncode=1)


@pytest.fixture(scope="session")
def targets(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("targets")
    subprocess.run(["make", "-s", "-C", str(TARGETS_SRC), f"OUT={out}"], check=True)
    return {p.name: p for p in out.iterdir()}


@pytest.fixture
def coral_home(tmp_path) -> Path:
    home = tmp_path / "coral-home"
    home.mkdir()
    return home


class Coral:
    """Runs the real CLI: `coral.run("probe", "attach", ...)`."""

    def __init__(self, home: Path):
        self.home = home
        self.env = {**os.environ, "CORAL_HOME": str(home)}

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "coral_probe", *args]

    def run(self, *args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(self.cmd(*args), capture_output=True, text=True, timeout=timeout,
                              env=self.env, **kw)

    def popen(self, *args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(self.cmd(*args), env=self.env, text=True, **kw)

    @property
    def db(self) -> Path:
        return self.home / "agent.duckdb"

    def query(self, sql: str, params=None) -> list[tuple]:
        con = duckdb.connect(str(self.db), read_only=True)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()


@pytest.fixture
def coral(coral_home) -> Coral:
    return Coral(coral_home)


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]



class MemoryCap:
    """A transient memory cgroup (v1 or v2), standing on its own: it contains
    a regression of the agent's code too."""

    def __init__(self, limit_bytes: int):
        name = f"coral-test-limits-{os.getpid()}-{time.monotonic_ns()}"
        if Path("/sys/fs/cgroup/cgroup.controllers").exists():
            self.path, limit_file, self.peak_file = Path("/sys/fs/cgroup") / name, "memory.max", "memory.peak"
        elif Path("/sys/fs/cgroup/memory").is_dir():
            self.path, limit_file = Path("/sys/fs/cgroup/memory") / name, "memory.limit_in_bytes"
            self.peak_file = "memory.max_usage_in_bytes"
        else:
            # A memory attack never runs uncontained; under CI it must not pass unseen either.
            if os.environ.get("CORAL_REQUIRE_BPF") == "1":
                pytest.fail("no memory cgroup to contain this test")
            pytest.skip("no memory cgroup to contain this test")
        self.path.mkdir()
        (self.path / limit_file).write_text(str(limit_bytes))

    def wrap(self, cmd: list[str]) -> list[str]:
        """`cmd` started inside the cgroup (the shell joins it, then execs)."""
        return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(self.path), *cmd]

    def peak_bytes(self) -> int:
        return int((self.path / self.peak_file).read_text())

    def remove(self) -> None:
        """With the groups the agent made inside it for its scripts, deepest first."""
        for group in sorted((p for p in self.path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [self.path]:
            for pid in (group / "cgroup.procs").read_text().split():
                os.kill(int(pid), 9)  # left by this test's own commands
            deadline = time.monotonic() + 10
            while group.exists():
                try:
                    group.rmdir()
                except OSError:
                    assert time.monotonic() < deadline, f"cannot remove {group}"
                    time.sleep(0.05)


@pytest.fixture
def memory_cap():
    """`memory_cap(limit_bytes)` -> MemoryCap, removed after the test."""
    made: list[MemoryCap] = []

    def make(limit_bytes: int) -> MemoryCap:
        made.append(MemoryCap(limit_bytes))
        return made[-1]

    yield make
    for cap in made:
        cap.remove()


@pytest.fixture
def agent(coral):
    """A running `coral agent start` on this test's home (killed at the end if still up)."""
    from agents import Agent

    started = Agent(coral)
    yield started
    started.stop()


@pytest.fixture
def agent_of(coral, targets):
    """Starts agents allowed to probe the `counter` target, with more options if given."""
    from agents import Agent

    started = []

    def start(*args: str):
        counter = os.path.realpath(targets["counter"])
        started.append(Agent(coral, "--allow-probe", f"binary:{counter}", *args))
        return started[-1]

    yield start
    for agent in started:
        agent.stop()
