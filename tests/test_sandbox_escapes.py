"""Escapes out of the script sandbox, tried as an attacker would: each test
is the attack that worked before its defence existed."""

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from test_cli_errors import one_line_error

pytestmark = pytest.mark.bpf
ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "scripts" / "hostile"

INJECTION = 'vfs_read)\n#if __has_include("{path}")\n#error coral-file-exists\n#endif\n//'


@pytest.mark.parametrize("exists", [True, False])
def test_kernel_probe_name_never_becomes_bpf_c(coral, tmp_path, exists):
    # Before: the name was pasted into CORAL_FENTRY(0, NAME) and compiled as
    # root; the compiler's verdict told the script whether any file existed.
    secret = tmp_path / "secret"
    if exists:
        secret.write_text("x")
    result = coral.run("run", str(HOSTILE / "kernel_name_injection.ts"), "--param", f"path={secret}",
                       "--allow-probe", "kernel:*")
    assert result.returncode == 0, result.stderr
    assert "coral-file-exists" not in result.stdout
    assert "refused: invalid kernel function name 'vfs_read)\\n#if __has_include" in result.stdout


def test_cli_kernel_name_is_checked_before_bcc(coral, tmp_path):
    line = one_line_error(coral.run("probe", "attach", "--kernel", INJECTION.format(path=tmp_path)))
    assert line.startswith("coral: invalid kernel function name 'vfs_read)\\n#if")
    line = one_line_error(coral.run("probe", "attach", "--kernel", "coral_no_such_kernel_function"))
    assert line == "coral: unknown kernel function 'coral_no_such_kernel_function' (not in /proc/kallsyms)"


@pytest.mark.parametrize("spec", ["../../../../etc:passwd", "syscalls:sys_enter_openat/../../x", "a b:c"])
def test_tracepoint_names_cannot_walk_tracefs(coral, spec):
    line = one_line_error(coral.run("probe", "attach", "--tracepoint", spec))
    assert line.startswith("coral: invalid tracepoint '")


def _decoy_pair(directory: Path, secret: Path) -> Path:
    # `deno info report%41.ts` used to decode the name and check reportA.ts.
    (directory / "reportA.ts").write_text('console.log("decoy");\n')
    real = directory / "report%41.ts"
    real.write_text(f'import s from "{secret}" with {{ type: "text" }};\nconsole.log("stolen: " + s);\n')
    return real


def test_percent_escaped_name_runs_what_was_checked(coral, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("TOPSECRET")
    secret.chmod(0o600)
    result = coral.run("run", str(_decoy_pair(tmp_path, secret)))
    assert "TOPSECRET" not in result.stdout + result.stderr
    assert result.returncode != 0
    # The check itself runs confined: Deno cannot even read the file to report it.
    assert result.stderr.startswith("coral: script refused: ") and str(secret) in result.stderr


def test_symbolic_link_in_the_script_directory_is_not_followed(coral, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("TOPSECRET")
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "data.txt").symlink_to(secret)
    (scripts / "leak.ts").write_text('import s from "./data.txt" with { type: "text" };\nconsole.log(s);\n')
    result = coral.run("run", str(scripts / "leak.ts"))
    assert "TOPSECRET" not in result.stdout + result.stderr
    assert result.returncode != 0
    assert f"it imports {scripts / 'data.txt'}, a symbolic link" in result.stderr


def test_script_in_a_directory_with_spaces_runs_with_its_modules(coral, tmp_path):
    directory = tmp_path / "my scripts" / "100% real"
    (directory / "lib dir").mkdir(parents=True)
    (directory / "lib dir" / "helper one.ts").write_text('export const greeting = "hello from a sibling";\n')
    (directory / "notes.txt").write_text("text module")
    (directory / "main script.ts").write_text(
        'import { greeting } from "./lib dir/helper one.ts";\n'
        'import notes from "./notes.txt" with { type: "text" };\n'
        'console.log(greeting, "/", notes);\n')
    result = coral.run("run", str(directory / "main script.ts"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello from a sibling / text module"


def test_a_deno_escape_meets_the_os_not_root(tmp_path):
    # Every Deno permission granted: only the OS confinement stands.
    import socket
    import tempfile

    from coral_probe.agent.sandbox import Sandbox, new_script_uid

    runtime = Path(tempfile.mkdtemp(prefix="coral-test-"))
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        sandbox = Sandbox("/nonexistent.sock", runtime)
        sandbox.prepare_runtime()
        copy, _ = sandbox.prepare(HOSTILE / "escaped_deno.ts", "escape")
        uid = new_script_uid()
        written = Path(tempfile.gettempdir()) / f"coral-escape-{uid}"
        command = sandbox.confined(copy, uid, [], ["run", "--allow-all", "--no-prompt", *sandbox.common_flags(),
                                                   copy.entry_url, str(listener.getsockname()[1]), str(written)])
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=sandbox.environment(""))
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {
            "read /etc/passwd": "PermissionDenied", "write /tmp": "PermissionDenied",
            "tcp connect": "PermissionDenied", "run /bin/sh": "PermissionDenied", "uid": str(uid)}
        assert not written.exists()
    finally:
        listener.close()
        shutil.rmtree(runtime, ignore_errors=True)


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def test_scripts_run_unprivileged_in_a_cgroup_of_their_own(tmp_path):
    from coral_probe.agent.runtime import AgentRuntime
    from coral_probe.agent.subscriptions import AgentTarget
    from coral_probe.store import Store

    store = Store(tmp_path / "agent.duckdb")
    script = tmp_path / "idle.ts"
    script.write_text("await new Promise((resolve) => setTimeout(resolve, 20_000));\n")
    try:
        with AgentRuntime(store, echo=False) as agent:
            run = agent.executor.start(script, target=AgentTarget(), timeout_s=30)
            deadline = time.monotonic() + 10
            while "deno" not in Path(f"/proc/{run.process.pid}/comm").read_text() and time.monotonic() < deadline:
                time.sleep(0.02)
            status = _status(run.process.pid)
            cgroups = Path(f"/proc/{run.process.pid}/cgroup").read_text()
            agent.executor.kill(run)
            run.wait(10)
        uids = status["Uid"].split()
        assert int(uids[0]) > 0 and len(set(uids)) == 1
        assert int(status["Gid"].split()[0]) > 0 and status["Groups"].strip() == ""
        assert {status[k] for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")} == {"0000000000000000"}
        assert status["NoNewPrivs"].strip() == "1"
        assert f"/coral/x{run.execution_id}" in cgroups
        assert not run.copy.directory.exists()  # the copy goes with the run
        assert not any(g.exists() for g in run.cgroup.dirs)
    finally:
        store.close()


@pytest.mark.parametrize("attack", ["array_buffers", "workers", "cache_flood"])
def test_memory_outside_the_heap_stops_at_the_script_limit(coral, memory_cap, attack):
    # Before: 4 GB of ArrayBuffers and 12 Workers (1.66 GB) ran to completion.
    command = memory_cap(1536 << 20).wrap(coral.cmd("run", str(HOSTILE / f"{attack}.ts")))
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=coral.env)
    assert result.returncode == 137  # SIGKILL, from the kernel's OOM killer in the script's cgroup
    assert "ran" not in result.stdout and "held" not in result.stdout, result.stdout
    assert "coral: script stopped: memory limit reached (512 MiB)" in result.stderr
    assert coral.query("SELECT status, end_reason FROM script_executions") == \
        [("failed", "memory limit reached (512 MiB): killed by the kernel")]


def test_scripts_get_no_persistent_storage(coral):
    # Before: the Cache API wrote to $CORAL_HOME/deno/location_data, kept
    # across runs. Now a run's storage is memory of its own cgroup, gone at its end.
    for _ in range(2):
        result = coral.run("run", str(HOSTILE / "storage.ts"))
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"cache": False, "localStorage": False}
    assert not (coral.home / "deno").exists()
    runs = [row[0] for row in coral.query("SELECT execution_id FROM script_executions")]
    assert len(runs) == 2
    # Scratch dirs are named for their execution (the machine may hold other agents' runs).
    assert not [p for p in Path("/dev/shm").glob("coral-*") if any(p.name.endswith(f"-x{r}") for r in runs)]
