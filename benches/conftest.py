"""Fixtures of the benchmarks: real targets; skipped without eBPF."""

import subprocess
from pathlib import Path

import pytest

from coral_probe.doctor import probe_blocker

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    reason = probe_blocker()
    if reason:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=f"eBPF unavailable: {reason}"))


@pytest.fixture(scope="session")
def targets(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("targets")
    subprocess.run(["make", "-s", "-C", str(ROOT / "tests" / "targets"), f"OUT={out}"], check=True)
    return {p.name: p for p in out.iterdir()}


