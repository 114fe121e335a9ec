"""Shared fixtures: real targets built from tests/targets, the real `coral`
CLI in a subprocess, a private CORAL_HOME per test."""

import json
import os
import subprocess
import sys
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


@pytest.fixture
def memory_capped():
    """Wraps a command so it runs in a transient cgroup with a memory cap:
    a memory attack that a regression lets through meets this cap, not the
    machine's memory."""
    import uuid

    from coral_probe.agent.cgroups import ScriptCgroup

    groups = []

    def wrap(command: list[str], memory_mb: int = 1536) -> list[str]:
        group = ScriptCgroup.create(f"test-{uuid.uuid4().hex[:8]}", memory_bytes=memory_mb << 20, max_pids=4096)
        groups.append(group)
        join = " ".join(f'echo $$ > "{f}";' for f in group.procs_files)
        return ["sh", "-c", f'{join} exec "$@"', "sh", *command]

    yield wrap
    for group in groups:
        group.remove()
