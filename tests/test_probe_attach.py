"""`coral probe attach` on real processes: exact counts, latencies, args,
return values, through every kind of target."""

import os
import subprocess
import sys
import time
from collections import Counter

import pytest

from conftest import jsonl

pytestmark = pytest.mark.bpf


@pytest.fixture(autouse=True, params=["uprobe_multi", "per-probe"])
def uprobe_mode(request, coral):
    """Every test here twice: through uprobe_multi links, and through the
    per-probe path kernels before 6.6 get (forced)."""
    if request.param == "per-probe":
        coral.env["CORAL_UPROBE_MODE"] = "per-probe"
    return request.param


def attach_jsonl(coral, *args, timeout=120):
    result = coral.run("probe", "attach", "-o", "jsonl", *args, timeout=timeout)
    return result, jsonl(result.stdout)


def wait_until_attached(proc) -> None:
    """coral says `coral: attached ...` on stderr once its probes are live."""
    line = proc.stderr.readline()
    assert line.startswith("coral: attached"), line + proc.stderr.read()


def test_command_mode_exact_count_with_latency_args_and_return(coral, targets):
    result, events = attach_jsonl(coral, "coral_work", "--args", "2", "--", str(targets["counter"]), "50", "200")
    assert result.returncode == 50 % 7, result.stderr  # the command's own exit code
    assert len(events) == 50
    assert [e["args"] for e in events] == [[i, 2 * i] for i in range(1, 51)]
    assert [e["ret"] for e in events] == [3 * i for i in range(1, 51)]
    assert all(e["function"] == "coral_work" and e["comm"] == "counter" for e in events)
    assert all(e["duration_ns"] >= 200_000 for e in events)
    ts = [e["ts_ns"] for e in events]
    assert ts == sorted(ts)
    assert abs(ts[-1] / 1e9 - time.time()) < 60, "timestamps must be wall clock"
    assert "50 events" in result.stderr and "lost 0" in result.stderr


def test_entry_only_has_no_latency(coral, targets):
    result, events = attach_jsonl(coral, "coral_work", "--no-ret", "--args", "1", "--",
                                  str(targets["counter"]), "30")
    assert len(events) == 30, result.stderr
    assert all(e["duration_ns"] is None and e["ret"] is None for e in events)
    assert [e["args"][0] for e in events] == list(range(1, 31))


def test_latencies_match_known_sleeps(coral, targets):
    # every 5th call sleeps 60 ms, the others 2 ms
    result, events = attach_jsonl(coral, "coral_work", "--args", "1", "--",
                                  str(targets["counter"]), "20", "2000", "5", "60000")
    assert len(events) == 20, result.stderr
    slow = [e for e in events if e["args"][0] % 5 == 0]
    fast = [e for e in events if e["args"][0] % 5 != 0]
    assert all(e["duration_ns"] >= 60_000_000 for e in slow)
    assert all(2_000_000 <= e["duration_ns"] < 60_000_000 for e in fast)


def test_min_duration_filters_in_kernel(coral, targets):
    result, events = attach_jsonl(coral, "coral_work", "--args", "1", "--min-duration", "30ms", "--",
                                  str(targets["counter"]), "20", "1000", "4", "40000")
    assert sorted(e["args"][0] for e in events) == [4, 8, 12, 16, 20], result.stderr
    assert "filtered 15" in result.stderr


def test_sample_keeps_exactly_one_in_n(coral, targets):
    result, events = attach_jsonl(coral, "coral_work", "--sample", "10", "--", str(targets["counter"]), "1000")
    assert len(events) == 100, result.stderr
    assert "hits 1,000" in result.stderr and "filtered 900" in result.stderr


def test_recursive_calls_pair_by_stack_pointer(coral, targets):
    proc = subprocess.Popen([str(targets["counter"]), "0"], env={**os.environ, "COUNTER_WAIT": "1",
                            "COUNTER_RECURSE": "5"}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    attach = coral.popen("probe", "attach", "-o", "jsonl", "coral_recurse", "--args", "1",
                         "--pid", str(proc.pid), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until_attached(attach)
    proc.stdin.write("go\n")
    proc.stdin.flush()
    proc.wait(timeout=30)
    out, err = attach.communicate(timeout=60)  # coral stops when the process exits
    events = jsonl(out)
    assert attach.returncode == 0, err
    by_depth = {e["args"][0]: e for e in events}
    assert sorted(by_depth) == [0, 1, 2, 3, 4, 5]
    assert all(by_depth[d]["ret"] == d for d in range(6))
    # an outer frame lasts longer than the frame it called
    assert all(by_depth[d]["duration_ns"] > by_depth[d - 1]["duration_ns"] for d in range(1, 6))


def test_pid_mode_counts_only_that_process(coral, targets):
    waiting = {**os.environ, "COUNTER_WAIT": "1"}
    procs = [subprocess.Popen([str(targets["counter"]), str(n)], env=waiting, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for n in (40, 25)]
    for p in procs:
        assert p.stdout.readline() == "ready\n"
    attach = coral.popen("probe", "attach", "-o", "jsonl", "coral_work", "--pid", str(procs[0].pid),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until_attached(attach)
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        p.wait(timeout=30)
    out, err = attach.communicate(timeout=60)
    events = jsonl(out)
    assert attach.returncode == 0, err
    assert len(events) == 40
    assert {e["pid"] for e in events} == {procs[0].pid}


def test_binary_mode_sees_processes_started_after_attach(coral, targets):
    attach = coral.popen("probe", "attach", "-o", "jsonl", "coral_work", "--binary", str(targets["counter"]),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until_attached(attach)
    runs = [subprocess.run([str(targets["counter"]), str(n)], capture_output=True) for n in (7, 11)]
    assert all(r.returncode == n % 7 for r, n in zip(runs, (7, 11)))
    time.sleep(0.5)
    attach.send_signal(subprocess.signal.SIGINT)
    out, err = attach.communicate(timeout=60)
    events = jsonl(out)
    assert attach.returncode == 0, err
    assert sorted(Counter(e["pid"] for e in events).values()) == [7, 11]
    rows = coral.query("SELECT count(*), count(DISTINCT pid) FROM probe_events")
    assert rows == [(18, 2)]


def test_threads_have_exact_per_thread_counts(coral, targets):
    result, events = attach_jsonl(coral, "coral_thread_work", "--args", "1", "--",
                                  str(targets["threads"]), "4", "500")
    assert result.returncode == 0, result.stderr
    per_thread = Counter((e["tid"], e["args"][0]) for e in events)
    assert sorted(per_thread.values()) == [500, 1000, 1500, 2000]
    assert all(count == 500 * k for (tid, k), count in per_thread.items())
    assert len({tid for tid, _ in per_thread}) == 4
    assert all(e["ret"] == e["args"][0] for e in events)


def test_shared_library_function(coral, targets):
    lib = targets["libcoraltarget.so"]
    result, events = attach_jsonl(coral, "coral_lib_add", "--binary", str(lib), "--args", "2", "--",
                                  str(targets["uselib"]), "25")
    assert result.returncode == 0, result.stderr
    assert len(events) == 25
    assert [e["ret"] for e in events] == [i + 1 for i in range(25)]


def test_library_short_name_resolves_like_bcc(coral, targets):
    def getpid_events(calls: int) -> list[dict]:
        result, events = attach_jsonl(coral, "getpid", "--binary", "libc", "--no-ret", "--",
                                      sys.executable, "-c", f"import os\nfor _ in range({calls}): os.getpid()")
        assert result.returncode == 0, result.stderr
        assert all(e["function"] == "getpid" and e["comm"].startswith("python") for e in events)
        return events

    # the interpreter calls getpid on its own too: the difference is ours, exactly
    assert len(getpid_events(9)) - len(getpid_events(0)) == 9


def test_cpp_method_by_demangled_name(coral, targets):
    result, events = attach_jsonl(coral, "billing::Ledger::post", "--args", "2", "--", str(targets["ledger"]), "12")
    assert result.returncode == 0, result.stderr
    assert len(events) == 12
    assert {e["function"] for e in events} == {"billing::Ledger::post"}
    assert [e["args"][1] for e in events] == list(range(1, 13))  # arg0 is `this`
    assert events[-1]["ret"] == sum(range(1, 13))


def test_cpp_overloads_are_probed_by_signature(coral, targets):
    result, events = attach_jsonl(coral, "billing::fee", "--", str(targets["ledger"]), "5")
    assert result.returncode == 0, result.stderr
    assert Counter(e["function"] for e in events) == {"billing::fee(long)": 5, "billing::fee(int, int)": 5}


def test_wildcard_selects_matching_functions(coral, targets):
    result, events = attach_jsonl(coral, "coral_*", "--", str(targets["counter"]), "6")
    assert result.returncode == 6 % 7, result.stderr
    assert Counter(e["function"] for e in events) == {"coral_work": 6}


def test_go_return_probes_do_not_crash_and_time_right(coral, targets):
    result, events = attach_jsonl(coral, "main.processItem", "--args", "2", "--", str(targets["gowork"]), "20", "15")
    assert result.returncode == 0, result.stderr
    assert "total" in result.stderr  # the program ran to completion (its stdout goes to stderr in jsonl mode)
    assert sorted(e["args"][0] for e in events) == list(range(1, 21))
    assert all(e["duration_ns"] >= 15_000_000 for e in events)
    assert all(e["ret"] == (e["args"][0] * 10 if e["args"][0] % 2 == 0 else -e["args"][0]) for e in events)
    assert "unpaired" not in result.stderr


def test_tracepoint_counts_syscalls(coral):
    result, events = attach_jsonl(coral, "--tracepoint", "syscalls:sys_enter_kill", "--",
                                  "/bin/sh", "-c", "for i in 1 2 3 4 5 6 7; do kill -0 $$; done")
    assert result.returncode == 0, result.stderr
    assert len(events) == 7
    assert all(e["function"] == "syscalls:sys_enter_kill" and e["duration_ns"] is None for e in events)
    assert {e["args"][2] for e in events} == {0}  # fields: __syscall_nr, pid, sig


def test_events_are_stored_in_duckdb(coral, targets):
    result, events = attach_jsonl(coral, "coral_work", "--args", "2", "--", str(targets["counter"]), "15", "100")
    assert result.returncode == 1, result.stderr
    rows = coral.query("SELECT epoch_ns(timestamp), function_name, pid, tid, comm, duration_ns, args, return_value,"
                       " binary_path FROM probe_events ORDER BY timestamp")
    assert len(rows) == len(events) == 15
    for row, e in zip(rows, events):
        assert row[:8] == (e["ts_ns"], "coral_work", e["pid"], e["tid"], "counter", e["duration_ns"],
                           e["args"], e["ret"])
        assert row[8].endswith("/counter")
    session = coral.query("SELECT hits, delivered, lost, functions FROM probe_sessions")
    assert session == [(15, 15, 0, ["coral_work"])]


def test_table_output_prints_summary(coral, targets):
    result = coral.run("probe", "attach", "coral_work", "--", str(targets["counter"]), "12", "100")
    assert result.returncode == 12 % 7, result.stderr
    assert "12 events" in result.stdout and "lost 0" in result.stdout and "p99" in result.stdout


def test_the_attached_line_says_one_probe(coral, targets):
    result, events = attach_jsonl(coral, "coral_work", "--no-ret", "--", str(targets["counter"]), "7")
    assert len(events) == 7
    assert "coral: attached 1 probe for coral_work in " in result.stderr
