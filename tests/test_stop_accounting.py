"""Every hit accounted at every stop: Ctrl-C, SIGTERM and --duration on a
busy target that is mid-call at both ends of the session."""

import io
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.bpf

RUNS_PER_STOP = 20
SUMMARY = re.compile(r"coral: ([\d,]+) events in .*; (\d+) rows in .* \(session (\w+)\)")


class HeldCalls:
    """A target driven over stdin: `hold()` leaves one more call in flight
    (inside coral_hold / main.hold), `release()` lets them all return."""

    def __init__(self, argv: list[str]):
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready"

    @property
    def pid(self) -> int:
        return self.process.pid

    def _say(self, command: str) -> str:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def hold(self, n: int) -> None:
        for _ in range(n):
            assert self._say("hold").startswith("held ")

    def release(self) -> None:
        assert self._say("release").startswith("released ")

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def midcall(targets):
    target = HeldCalls([str(targets["midcall"])])
    yield target
    target.close()


@pytest.fixture
def go_holds(targets):
    target = HeldCalls([str(targets["gowork"]), "hold"])
    yield target
    target.close()


def start_session(coral, out: Path, *args: str) -> subprocess.Popen:
    """coral probe attach ... -o jsonl > out, returned once its probes are attached.
    stdout goes to a file: a full pipe nobody reads would block coral's writes."""
    with out.open("wb") as sink:
        session = coral.popen("probe", "attach", "-o", "jsonl", *args, stdout=sink, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL)
    line = session.stderr.readline()
    assert line.startswith("coral: attached "), line + session.stderr.read()
    return session


def finish_session(coral, session: subprocess.Popen, out: Path, *, expect_exit: int = 0) -> dict:
    """Waits for coral, then checks what every stop must leave behind: the
    documented exit code, one summary line, events printed == rows stored
    == delivered, and hits = delivered + lost + filtered + in_flight_at_stop."""
    stderr = session.stderr.read()
    code = session.wait(timeout=60)
    assert code == expect_exit, stderr
    assert "internal error" not in stderr and "Traceback" not in stderr, stderr
    match = SUMMARY.search(stderr)
    assert match, stderr
    events, rows, session_id = int(match[1].replace(",", "")), int(match[2]), match[3]
    printed = len(out.read_bytes().splitlines())
    (row,) = coral.query(
        "SELECT hits, delivered, lost, filtered, unpaired, too_deep, in_flight_at_stop, in_flight_at_attach,"
        " stop_reason, (SELECT count(*) FROM probe_events e WHERE e.session_id = s.session_id)"
        " FROM probe_sessions s WHERE session_id = ?", [session_id])
    names = ("hits", "delivered", "lost", "filtered", "unpaired", "too_deep", "in_flight_at_stop",
             "in_flight_at_attach", "stop_reason", "stored")
    counts = dict(zip(names, row))
    print(f"{counts['stop_reason']}: printed {printed} = stored {counts['stored']} = delivered "
          f"{counts['delivered']}; hits {counts['hits']} = {counts['delivered']} + lost {counts['lost']}"
          f" + filtered {counts['filtered']} + in flight {counts['in_flight_at_stop']}")
    assert printed == events == rows == counts["stored"] == counts["delivered"], (stderr, counts)
    assert counts["hits"] == (counts["delivered"] + counts["lost"] + counts["filtered"]
                              + counts["in_flight_at_stop"]), counts
    assert "UNACCOUNTED" not in stderr
    return counts


def test_calls_in_flight_at_attach_and_at_stop_are_counted_apart(coral, midcall, tmp_path):
    midcall.hold(2)  # in flight before the probes exist
    out = tmp_path / "events.jsonl"
    session = start_session(coral, out, "coral_hold", "--pid", str(midcall.pid))
    midcall.release()  # they return while attached: their entries were never seen
    midcall.hold(3)  # and these are still inside coral_hold at the stop
    session.send_signal(signal.SIGINT)
    counts = finish_session(coral, session, out)
    assert counts["stop_reason"] == "interrupt"
    assert (counts["hits"], counts["in_flight_at_stop"], counts["delivered"]) == (3, 3, 0)
    # A uretprobe only sees calls entered after it: the two released calls
    # are not half-seen, and nothing is a pairing failure.
    assert counts["in_flight_at_attach"] == 0
    assert counts["unpaired"] == 0 and counts["lost"] == 0


def test_go_calls_in_flight_at_attach_are_not_pairing_failures(coral, go_holds, tmp_path):
    go_holds.hold(2)
    out = tmp_path / "events.jsonl"
    session = start_session(coral, out, "main.hold", "--pid", str(go_holds.pid))
    go_holds.release()  # Go return probes sit on RET: these two returns are seen without an entry
    go_holds.hold(3)
    session.send_signal(signal.SIGTERM)
    counts = finish_session(coral, session, out)
    assert counts["stop_reason"] == "terminate"
    assert (counts["in_flight_at_attach"], counts["in_flight_at_stop"], counts["hits"]) == (2, 3, 3)
    assert counts["unpaired"] == 0 and counts["delivered"] == 0


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM", "duration"])
def test_every_stop_under_load_accounts_for_every_hit(coral, midcall, tmp_path, stop):
    """Twenty stops each, at different moments of a ~100k calls/s target."""
    midcall.hold(1)
    for run in range(RUNS_PER_STOP):
        out = tmp_path / f"events-{run}.jsonl"
        duration = ["--duration", f"{100 + 37 * run}ms"] if stop == "duration" else []
        session = start_session(coral, out, "coral_tick", "coral_hold", "--pid", str(midcall.pid), *duration)
        if run % 2:
            midcall.hold(1)  # a call opened mid-session, in flight at the stop
        if stop != "duration":
            subprocess.run(["sleep", f"{0.05 + 0.025 * run}"], check=True)
            session.send_signal(getattr(signal, stop))
        counts = finish_session(coral, session, out)
        assert counts["stop_reason"] == {"SIGINT": "interrupt", "SIGTERM": "terminate"}.get(stop, stop)
        assert counts["in_flight_at_stop"] in (run % 2, run % 2 + 1)  # + a coral_tick mid-call
        if run % 2:
            midcall.release()


def test_duration_is_a_deadline_for_a_command_that_keeps_running(coral, targets, tmp_path):
    """The command never ends by itself: coral stops at --duration, ends it
    and exits with its status (terminated: 128 + SIGTERM)."""
    out = tmp_path / "events.jsonl"
    session = start_session(coral, out, "coral_tick", "--duration", "500ms", "--", str(targets["midcall"]))
    counts = finish_session(coral, session, out, expect_exit=128 + signal.SIGTERM)
    assert counts["stop_reason"] == "duration"
    assert counts["delivered"] > 0


@pytest.mark.parametrize("delay", [0.05, 0.1, 0.2, 0.4, 0.8, 1.6])
def test_ctrl_c_during_start_up_is_a_clean_stop(coral, midcall, tmp_path, delay):
    """A terminal's Ctrl-C reaches coral's whole process group at any moment:
    importing, compiling, attaching. After the attach, the stop is accounted;
    before, nothing is left behind but a clean exit."""
    out = tmp_path / "events.jsonl"
    with out.open("wb") as sink:
        session = coral.popen("probe", "attach", "coral_tick", "--pid", str(midcall.pid), "-o", "jsonl",
                              stdout=sink, stderr=subprocess.PIPE, start_new_session=True)
    subprocess.run(["sleep", str(delay)], check=True)
    os.killpg(session.pid, signal.SIGINT)
    err = session.stderr.read()
    code = session.wait(timeout=60)
    assert "Traceback" not in err and "internal error" not in err, err
    if "coral: attached" in err:
        session.stderr = io.StringIO(err.split("\n", 1)[1])
        finish_session(coral, session, out)
    else:
        assert code == 130 and not err, err


@pytest.mark.parametrize("sample", [1, 7])
def test_go_stack_growth_is_not_a_second_hit(coral, targets, tmp_path, sample):
    """main.grow recurses 2,000 deep for items 5 and 10: the goroutine's stack
    grows, and runtime.morestack restarts the function whose prologue asked,
    so its entry probe fires twice for one call. That is one hit, sampled
    out or not."""
    out = tmp_path / "events.jsonl"
    session = start_session(coral, out, "main.grow", "--sample", str(sample), "--", str(targets["gowork"]), "10",
                            "0")
    counts = finish_session(coral, session, out)
    assert counts["stop_reason"] == "command exited"
    assert (counts["hits"], counts["lost"], counts["in_flight_at_stop"]) == (2 * 2001, 0, 0)
    assert counts["delivered"] in (2 * 2001 // sample, 2 * 2001 // sample + 1)


def test_ctrl_c_while_stdout_is_full_loses_no_line(coral, targets):
    """The reader reads only after coral exits: its jsonl write blocks on the
    full pipe when Ctrl-C lands. That write came back short, and the rest of
    the batch (thousands of events, and half a line) was silently gone."""
    attach = coral.popen("probe", "attach", "coral_work", "--args", "1", "-o", "jsonl",
                         "--binary", str(targets["counter"]), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert attach.stderr.readline().startswith("coral: attached")
    subprocess.run([str(targets["counter"]), "5000"], stdout=subprocess.DEVNULL, timeout=60)
    deadline = time.monotonic() + 30
    while "write" not in _wchan(attach.pid) and time.monotonic() < deadline:
        time.sleep(0.05)  # until coral blocks writing to the pipe nobody reads yet
    attach.send_signal(signal.SIGINT)
    out, err = attach.communicate(timeout=60)
    assert attach.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["args"][0] for e in events] == list(range(1, 5001))
    assert "delivered 5,000, lost 0" in err


def _wchan(pid: int) -> str:
    """What the process's main thread sleeps in (pipe_write while the pipe is full)."""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return f.read()
    except OSError:
        return ""
