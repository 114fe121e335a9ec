"""USDT markers (`coral probe attach --usdt PROVIDER:NAME`, `trace.usdt`) on
real processes: tests/targets/usdt_target fires its own sys/sdt.h markers a
known number of times, usdt_throw fires libstdc++'s libstdcxx:throw, and
Debian's /usr/bin/python3 has python:gc__start (is-enabled)."""

import os
import signal
import subprocess
from collections import Counter

import pytest

from conftest import jsonl
from test_cli_errors import one_line_error
from test_detach import coral_programs, uprobe_events
from test_scripts import SCRIPTS, emitted

pytestmark = pytest.mark.bpf
# Debian's own python3 (python3-bpfcc depends on it), built --with-dtrace.
PYTHON = os.path.realpath("/usr/bin/python3")


def tick(i: int, nargs: int = 6) -> list[int]:
    return [i, 2 * i, 0, 0, 0, 0][:nargs]


def six(i: int) -> list[int]:
    # int64, int32, int16, int64, uint8 (3i & 0xff), int64: each sign- or zero-extended as it is
    return [i, -i, 2 * i, -2 * i, (3 * i) & 0xFF, -3 * i]


def by_function(events: list[dict]) -> dict[str, list[list[int]]]:
    out: dict[str, list[list[int]]] = {}
    for e in events:
        out.setdefault(e["function"], []).append(e["args"])
    return out


def assert_nothing_left(path) -> None:
    # coral's USDT programs only: other coral sessions may run beside these tests
    assert [p for p in coral_programs() if p.startswith("coral_usdt")] == []
    assert str(path) not in uprobe_events()


def wait_until_attached(proc) -> None:
    line = proc.stderr.readline()
    assert line.startswith("coral: attached"), line + proc.stderr.read()


class Waiting:
    """A target started with its *_WAIT variable: "ready", then a line on stdin per round."""

    def __init__(self, cmd: list[str], env_var: str | None = "USDT_WAIT"):
        env = {**os.environ, env_var: "1"} if env_var else None
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def go(self) -> str:
        """The round's own line (the next round's "ready" is skipped)."""
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        line = "ready"
        while line == "ready":
            line = self.proc.stdout.readline().strip()
        return line

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def test_command_exact_counts_and_args(coral, targets):
    n = 300
    result = coral.run("probe", "attach", "-o", "jsonl", "--usdt", "coral:tick", "--usdt", "coral:six",
                       "--usdt", "coral:bare", "--", str(targets["usdt_target"]), str(n))
    assert result.returncode == 0, result.stderr
    events = jsonl(result.stdout)
    got = by_function(events)
    assert got["coral:tick"] == [tick(i) for i in range(1, n + 1)]
    assert got["coral:six"] == [six(i) for i in range(1, n + 1)]
    assert got["coral:bare"] == [[0] * 6]
    assert len(events) == 2 * n + 1
    assert all(e["duration_ns"] is None and e["ret"] is None and e["comm"] == "usdt_target" for e in events)
    assert f"{2 * n + 1} events" in result.stderr and "lost 0" in result.stderr
    rows = coral.query("SELECT function_name, count(*), count(duration_ns) FROM probe_events GROUP BY 1 ORDER BY 1")
    assert rows == [("coral:bare", 1, 0), ("coral:six", n, 0), ("coral:tick", n, 0)]
    assert coral.query("SELECT DISTINCT probe_type, len(args) FROM probe_events") == [("usdt", 6)]
    assert coral.query("SELECT probe_type, hits, delivered FROM probe_sessions") == [("usdt", 2 * n + 1, 2 * n + 1)]
    assert_nothing_left(targets["usdt_target"])


def test_binary_probes_every_process_running_it(coral, targets):
    n = 200
    proc = coral.popen("probe", "attach", "-o", "jsonl", "--usdt", "coral:t*", "--binary", str(targets["usdt_target"]),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until_attached(proc)
        runs = [subprocess.run([str(targets["usdt_target"]), str(n)], capture_output=True, check=True)
                for _ in range(2)]
        assert all(r.stdout.strip() == b"round 1 guarded 0" for r in runs)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    events = jsonl(out)
    assert Counter(e["function"] for e in events) == {"coral:tick": 2 * n}  # the wildcard: tick, not six
    pids = list(dict.fromkeys(e["pid"] for e in events))
    assert len(pids) == 2
    for pid in pids:
        # args: as many as the markers have (tick: 2)
        assert [e["args"] for e in events if e["pid"] == pid] == [tick(i, 2) for i in range(1, n + 1)]
    assert_nothing_left(targets["usdt_target"])


def test_pid_enables_a_semaphore_guarded_marker_and_lowers_it_after(coral, targets):
    n = 100
    target = Waiting([str(targets["usdt_target"]), str(n), "2"])
    proc = coral.popen("probe", "attach", "-o", "jsonl", "--usdt", "coral:*", "--pid", str(target.proc.pid),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until_attached(proc)
        assert target.go() == f"round 1 guarded {n}"  # bcc raised the semaphore in the process
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        # coral is gone: the semaphore is lowered again, the marker idle
        assert target.go() == "round 2 guarded 0"
    finally:
        target.close()
        if proc.poll() is None:
            proc.kill()
    got = by_function(jsonl(out))
    assert got["coral:guarded"] == [[10 * i, 0, 0, 0, 0, 0] for i in range(1, n + 1)]
    assert got["coral:tick"] == [tick(i) for i in range(1, n + 1)]
    assert got["coral:six"] == [six(i) for i in range(1, n + 1)]
    assert got["coral:bare"] == [[0] * 6]
    assert f"{3 * n + 1} events" in err
    assert_nothing_left(targets["usdt_target"])


def test_libstdcxx_throw_a_debian_library_marker(coral, targets):
    """libstdc++6's own marker, found among the libraries the command loads:
    one hit per throw, arg 1 the thrown type's typeinfo."""
    n = 250
    for extra in ([], ["--binary", "libstdc++"]):
        result = coral.run("probe", "attach", "-o", "jsonl", "--usdt", "libstdcxx:throw", *extra, "--",
                           str(targets["usdt_throw"]), str(n))
        assert result.returncode == 0, result.stderr
        typeinfo = int(result.stderr.split("typeinfo ")[1].split()[0])  # the command's stdout is on stderr
        events = jsonl(result.stdout)
        assert len(events) == n, result.stderr
        assert {e["function"] for e in events} == {"libstdcxx:throw"}
        assert {e["args"][1] for e in events} == {typeinfo}
        assert all(e["args"][0] != 0 for e in events)  # the exception object
        assert f"caught {n}" in result.stderr


def test_python_gc_start_a_debian_is_enabled_marker(coral):
    """python:gc__start in Debian's python3: semaphore-guarded, so through --pid."""
    n = 25
    code = ("import gc, sys\ngc.disable()\nprint('ready', flush=True)\nsys.stdin.readline()\n"
            f"for _ in range({n}): gc.collect()\nprint('collected', flush=True)\nsys.stdin.readline()\n")
    target = Waiting([PYTHON, "-c", code], env_var=None)
    proc = coral.popen("probe", "attach", "-o", "jsonl", "--usdt", "python:gc__start", "--pid", str(target.proc.pid),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until_attached(proc)
        assert target.go() == "collected"
        proc.send_signal(signal.SIGINT)  # before the interpreter's exit collects once more
        out, err = proc.communicate(timeout=60)
    finally:
        target.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    events = jsonl(out)
    assert [e["args"] for e in events] == [[2]] * n  # gc.collect(): generation 2, its one argument
    assert_nothing_left(PYTHON)


def test_script_counts_a_marker_exactly(coral, targets):
    n = 1000
    result = coral.run("run", str(SCRIPTS / "count_usdt.ts"), "--param", "marker=coral:six", "--",
                       str(targets["usdt_target"]), str(n))
    assert result.returncode == 0, result.stderr
    [report] = emitted(coral, "usdt")
    sums = [sum(six(i)[k] for i in range(1, n + 1)) for k in range(6)]
    assert report == {"marker": "coral:six", "functionNames": ["coral:six"], "nargs": 6, "hasReturn": False,
                      "events": n, "sums": sums, "withDuration": 0}
    assert_nothing_left(targets["usdt_target"])


def test_script_with_pid_gets_a_guarded_marker(coral, targets):
    n = 40
    target = Waiting([str(targets["usdt_target"]), str(n)])
    run = coral.popen("run", str(SCRIPTS / "count_usdt.ts"), "--pid", str(target.proc.pid),
                      "--param", "marker=coral:guarded", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = run.stdout.readline()
        assert line.strip() == "subscribed", line + run.stderr.read()
        assert target.go() == f"round 1 guarded {n}"
        target.proc.wait(timeout=30)
        run.send_signal(signal.SIGINT)  # streams end with their last events; the script reports
        out, err = run.communicate(timeout=60)
    finally:
        target.close()
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130, err  # the interrupt's code, once the script reported
    [report] = emitted(coral, "usdt")
    assert (report["events"], report["sums"], report["hasReturn"]) == (n, [10 * n * (n + 1) // 2], False)
    assert_nothing_left(targets["usdt_target"])


def test_list_markers(coral, targets):
    result = coral.run("probe", "list", "--usdt", "--binary", str(targets["usdt_target"]))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["coral:tick", "coral:six", "coral:bare", "coral:guarded"]
    assert [("semaphore" in line) for line in lines] == [False, False, False, True]
    assert lines[1].split()[1] == "args=6"


def test_errors_are_one_line(coral, targets):
    binary = str(targets["usdt_target"])
    line = one_line_error(coral.run("probe", "attach", "--usdt", "coral:nope", "--binary", binary))
    assert line == (f"coral: no USDT marker coral:nope in {binary}; "
                    "it has: coral:tick, coral:six, coral:bare, coral:guarded")
    line = one_line_error(coral.run("probe", "attach", "--usdt", "coral:tick", "--binary", str(targets["counter"])))
    assert line == f"coral: no USDT marker coral:tick: {targets['counter']} has no USDT markers (sys/sdt.h probes)"
    line = one_line_error(coral.run("probe", "attach", "--usdt", "coral", "--binary", binary))
    assert line.startswith("coral: invalid USDT marker 'coral': expected PROVIDER:NAME")
    # an is-enabled marker asked for by name, where no running process can have its semaphore raised
    for target_args in (["--binary", binary], ["--", binary, "3"]):
        line = one_line_error(coral.run("probe", "attach", "--usdt", "coral:guarded", *target_args))
        assert "coral:guarded is an is-enabled marker" in line and line.endswith("use --pid PID")
    line = one_line_error(coral.run("probe", "attach", "--usdt", "coral:tick", "--min-duration", "1ms",
                                    "--binary", binary))
    assert "no duration" in line
    line = one_line_error(coral.run("probe", "attach", "--usdt", "coral:tick"))
    assert line == "coral: no target: give --binary PATH, --pid PID or -- COMMAND [ARGS]"
    assert_nothing_left(binary)


def test_dump_bpf_reads_each_argument_at_its_width(coral, targets):
    result = coral.run("probe", "attach", "--usdt", "coral:six", "--dump-bpf",
                       "--binary", str(targets["usdt_target"]))
    assert result.returncode == 0, result.stderr
    reads = [line.split()[1] for line in result.stdout.splitlines()
             if line.startswith("\t{ ") and "bpf_usdt_readarg(" in line]
    assert reads == ["s64", "s32", "s16", "s64", "u8", "s64"]

