"""What a real script may probe: its target (binary or process, and their
libraries) by default; kernel functions, tracepoints, other files and other
processes only by an operator's --allow-probe. Refusals are
PERMISSION_DENIED naming the rule, and say nothing about whether a file
exists."""

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.bpf
ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "scripts" / "policy_attempts.ts"


def attempt(coral, attempts: list[dict], *args: str) -> list[dict]:
    result = coral.run("run", str(SCRIPT), *args, "--param", "attempts=" + json.dumps(attempts))
    assert result.returncode == 0, result.stderr
    [row] = coral.query("SELECT data FROM emitted_events WHERE name = 'policy_results'")
    return json.loads(row[0])


def outcome(r: dict) -> str:
    return "ok" if r.get("ok") else r["code"]


@pytest.fixture
def running(targets):
    """Two processes calling coral_work: a script's target, and a bystander."""
    procs = [subprocess.Popen([str(targets["counter"]), "100000000", "1000"], stdout=subprocess.DEVNULL)
             for _ in range(2)]
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def test_without_a_target_nothing_may_be_probed(coral, targets):
    results = attempt(coral, [
        {"call": "uprobe", "name": "write", "opts": {"binary": "libc"}},  # every process on the host
        {"call": "uprobe", "name": "coral_work", "opts": {"binary": str(targets["counter"])}},
        {"call": "kprobe", "name": "do_nanosleep", "opts": {"noReturn": True}},
        {"call": "tracepoint", "name": "sched:sched_switch"},
        {"call": "list", "name": "*", "opts": {"binary": str(targets["counter"])}},
    ])
    assert [outcome(r) for r in results] == ["PERMISSION_DENIED"] * 5, results
    assert "probe policy refused tracepoint sched:sched_switch" in results[3]["message"]
    assert "--allow-probe tracepoint:sched:sched_switch" in results[3]["message"]


def test_a_refusal_does_not_tell_whether_a_file_exists(coral, tmp_path):
    missing = str(tmp_path / "no_such_binary")
    results = attempt(coral, [{"call": "list", "name": "*", "opts": {"binary": "/etc/shadow"}},
                              {"call": "get", "name": "main", "opts": {"binary": missing}}])
    assert [outcome(r) for r in results] == ["PERMISSION_DENIED"] * 2, results
    shadow, nothing = (r["message"] for r in results)
    assert shadow.replace("/etc/shadow", "PATH") == nothing.replace(missing, "PATH")


def test_a_refusal_does_not_tell_what_a_name_resolves_to(coral, tmp_path):
    """The agent's /proc/self/cwd, another process's fd, whether a library
    exists: each refusal reads the same, only the name as the script wrote it."""
    specs = ["/proc/self/cwd/x", "/proc/1/cwd", "libz", "libno_such_library_here"]
    results = attempt(coral, [{"call": "list", "name": "*", "opts": {"binary": spec}} for spec in specs])
    assert [outcome(r) for r in results] == ["PERMISSION_DENIED"] * 4, results
    messages = {r["message"].replace(spec, "NAME") for r, spec in zip(results, specs)}
    assert len(messages) == 1, messages
    assert os.getcwd() not in messages.pop()


def test_a_pid_target_allows_its_process_and_libraries_only(coral, running):
    target, bystander = running
    results = attempt(coral, [
        {"call": "uprobe", "name": "coral_work"},
        {"call": "uprobe", "name": "write", "opts": {"binary": "libc"}},  # a library the target maps
        {"call": "list", "name": "coral_*"},
        {"call": "list", "name": "write", "opts": {"binary": "libc"}},
        {"call": "uprobe", "name": "coral_work", "opts": {"pid": bystander.pid}},
        {"call": "uprobe", "name": "write", "opts": {"binary": "libc", "pid": bystander.pid}},
        {"call": "list", "name": "*", "opts": {"binary": os.path.realpath("/bin/sh")}},
    ], "--pid", str(target.pid))
    assert [outcome(r) for r in results] == ["ok"] * 4 + ["PERMISSION_DENIED"] * 3, results
    assert f"pid {target.pid}" in results[4]["message"] and f"pid:{bystander.pid}" in results[4]["message"]


def test_a_binary_target_allows_the_libraries_it_links(coral, targets):
    uselib = targets["uselib"]
    library = str(uselib.parent / "libcoraltarget.so")  # DT_NEEDED, found through its RUNPATH
    results = attempt(coral, [
        {"call": "list", "name": "*", "opts": {"binary": library}},
        {"call": "list", "name": "write", "opts": {"binary": "libc"}},
        {"call": "list", "name": "coral_work", "opts": {"binary": str(targets["counter"])}},
    ], "--binary", str(uselib))
    assert [outcome(r) for r in results] == ["ok", "ok", "PERMISSION_DENIED"], results


def test_the_operator_allows_more_with_allow_probe(coral, targets):
    counter = os.path.realpath(targets["counter"])
    results = attempt(coral, [
        {"call": "tracepoint", "name": "sched:sched_switch"},
        {"call": "tracepoint", "name": "syscalls:sys_enter_openat"},
        {"call": "uprobe", "name": "coral_work", "opts": {"binary": counter}},
        {"call": "list", "name": "coral_*", "opts": {"binary": counter}},
        {"call": "kprobe", "name": "do_nanosleep", "opts": {"noReturn": True}},
    ], "--allow-probe", "tracepoint:sched:*", "--allow-probe", f"binary:{counter}", "--allow-probe", "kernel:do_*")
    assert [outcome(r) for r in results[:4]] == ["ok", "PERMISSION_DENIED", "ok", "ok"], results
    assert "allowed: tracepoint:sched:*, binary:" in results[1]["message"]
    assert outcome(results[4]) != "PERMISSION_DENIED", results[4]  # kernels without kprobes: UNAVAILABLE


def test_probe_attach_script_may_probe_what_the_session_probes(coral):
    result = coral.run("probe", "attach", "--tracepoint", "sched:sched_switch", "--duration", "30s", "-o", "jsonl",
                       "--script", str(SCRIPT.parent / "policy_session.ts"))
    assert result.returncode == 0, result.stderr
    [row] = coral.query("SELECT data FROM emitted_events WHERE name = 'policy_session'")
    assert json.loads(row[0]) == {"sched:sched_switch": "ok", "sched:sched_wakeup": "PERMISSION_DENIED"}


@pytest.mark.parametrize("spec", ["bogus", "kernel:", "file:/etc"])
def test_a_bad_allow_probe_is_one_line(coral, tmp_path, spec):
    script = tmp_path / "noop.ts"
    script.write_text("")
    result = coral.run("run", str(script), "--allow-probe", spec)
    assert result.returncode == 2
    assert result.stderr.startswith(f"coral: invalid --allow-probe '{spec}'") and result.stderr.count("\n") == 1
