"""`coral doctor` on this machine: a line for every capability."""

import pytest


@pytest.mark.bpf
def test_doctor_reports_every_capability(coral):
    result = coral.run("doctor")
    names = ["kernel", "privileges", "BTF", "uprobes", "function probes", "kprobes", "tracefs", "tracepoints", "bcc",
             "kernel headers", "deno", "landlock", "script cgroups", "script files"]
    lines = result.stdout.splitlines()
    for name in names:
        assert any(line.split(None, 1)[1].startswith(name) for line in lines if line.strip()), (name, result.stdout)
    assert result.returncode == (1 if any(line.lstrip().startswith("FAIL") for line in lines) else 0)
    assert any("ok  privileges" in line for line in lines)
    assert any("deno 2." in line for line in lines)
    # This VM: Landlock ABI 7, and cgroup v2 without memory/pids (hybrid) -> v1.
    assert any("ok  landlock" in line and "ABI " in line for line in lines), result.stdout
    assert any("ok  script cgroups" in line for line in lines), result.stdout
