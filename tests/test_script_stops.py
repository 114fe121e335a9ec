"""A script gets to report at every stop: its streams end (last events, an
end frame), the code after its loops runs within the grace period, and
only then is it killed; the execution records which happened."""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from test_stop_accounting import HeldCalls

pytestmark = pytest.mark.bpf

SCRIPT = Path(__file__).parent / "scripts" / "report_at_end.ts"
GRACE = "5s grace period"


@pytest.fixture
def midcall(targets):
    target = HeldCalls([str(targets["midcall"])])
    yield target
    target.close()


def start_run(coral, midcall, *args: str) -> subprocess.Popen:
    """`coral run report_at_end.ts --pid P`, returned once the script has subscribed."""
    run = coral.popen("run", str(SCRIPT), "--pid", str(midcall.pid), "--param", "function=coral_tick", *args,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = run.stdout.readline()
    assert line.strip() == "subscribed", line + run.stderr.read()
    return run


def final_report(coral) -> tuple[dict, dict]:
    """The script's last emit, and its probe's probe_sessions row."""
    (data,) = coral.query("SELECT data FROM emitted_events WHERE name = 'final'")[0]
    (row,) = coral.query("SELECT hits, delivered, lost, filtered, in_flight_at_stop, stop_reason FROM probe_sessions"
                         " WHERE execution_id = (SELECT execution_id FROM script_executions)")
    session = dict(zip(("hits", "delivered", "lost", "filtered", "in_flight_at_stop", "stop_reason"), row))
    return json.loads(data), session


def check_accounting(report: dict, session: dict) -> None:
    # Every event the probe delivered reached the script or is in its lost count.
    assert report["events"] + report["lost"] == session["delivered"] > 0, (report, session)
    assert session["hits"] == (session["delivered"] + session["lost"] + session["filtered"]
                               + session["in_flight_at_stop"]), session
    assert session["stop_reason"] == "script stopped"


def test_a_script_reports_after_its_timeout(coral, midcall):
    run = start_run(coral, midcall, "--timeout", "3")
    out, err = run.communicate(timeout=60)
    assert run.returncode == 124, err
    assert "reported" in out
    # One line per real event, nothing else (no bcc, perf or nanobind noise).
    assert err == f"coral: script stopped: timeout (3s), ended within the {GRACE}\n"
    check_accounting(*final_report(coral))
    assert coral.query("SELECT status, end_reason FROM script_executions") == [
        ("timeout", f"timeout (3s), ended within the {GRACE}")]


@pytest.mark.parametrize("sig, reason", [(signal.SIGINT, "interrupt"), (signal.SIGTERM, "terminate")])
def test_a_script_reports_when_coral_run_is_stopped(coral, midcall, sig, reason):
    run = start_run(coral, midcall)
    run.send_signal(sig)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 128 + sig, err
    assert "reported" in out
    assert err == f"coral: script stopped: {reason}, ended within the {GRACE}\n"
    check_accounting(*final_report(coral))
    assert coral.query("SELECT status, end_reason FROM script_executions") == [
        ("stopped", f"{reason}, ended within the {GRACE}")]


def test_a_script_that_keeps_running_is_killed_after_the_grace_period(coral, midcall):
    run = start_run(coral, midcall, "--param", "ignoreEnd=1")
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert "reported" in out  # its loop ended and the code after it ran; then it would not exit
    assert err == f"coral: script stopped: interrupt, killed after the {GRACE}\n"
    assert coral.query("SELECT status, end_reason FROM script_executions") == [
        ("stopped", f"interrupt, killed after the {GRACE}")]


def test_a_second_ctrl_c_kills_without_waiting(coral, midcall):
    run = start_run(coral, midcall, "--param", "ignoreEnd=1")
    run.send_signal(signal.SIGINT)
    assert run.stdout.readline().strip() == "reported"
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert err == "coral: script stopped: interrupt, killed\n"
    assert coral.query("SELECT status, end_reason FROM script_executions") == [("stopped", "interrupt, killed")]


def test_probe_attach_script_reports_at_ctrl_c(coral, targets, tmp_path):
    """The command is held until the script subscribed, so every event the
    session delivered reached the script too (or is in its lost count)."""
    out = tmp_path / "events.jsonl"
    with out.open("wb") as sink:
        session = coral.popen("probe", "attach", "coral_tick", "-o", "jsonl", "--script", str(SCRIPT),
                              "--", str(targets["midcall"]), stdout=sink, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL)
    # In jsonl mode the script prints on stderr: stdout holds only the session's events.
    for line in session.stderr:
        if line.strip() == "subscribed":
            break
    else:
        pytest.fail("the script never subscribed")
    session.send_signal(signal.SIGINT)
    err = session.stderr.read()
    assert session.wait(timeout=60) == 128 + signal.SIGTERM, err  # the command's: coral ended it
    assert "reported" in err
    (stored,) = coral.query("SELECT count(*) FROM probe_events")[0]
    assert len(out.read_bytes().splitlines()) == stored  # nothing but events on stdout
    (data,) = coral.query("SELECT data FROM emitted_events WHERE name = 'final'")[0]
    report = json.loads(data)
    (delivered,) = coral.query("SELECT delivered FROM probe_sessions WHERE execution_id IS NULL")[0]
    assert report["events"] + report["lost"] == delivered > 0, (report, delivered, err)


@pytest.mark.parametrize("delay", [0.05, 0.1, 0.2, 0.4, 0.8])
def test_ctrl_c_at_any_moment_of_the_start_is_a_clean_stop(coral, midcall, delay):
    """A terminal's Ctrl-C reaches coral's whole process group, whatever it is
    doing: importing, checking the script, starting Deno, subscribing."""
    run = coral.popen("run", str(SCRIPT), "--pid", str(midcall.pid), "--param", "function=coral_tick",
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    subprocess.run(["sleep", str(delay)], check=True)
    os.killpg(run.pid, signal.SIGINT)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert len(err.splitlines()) <= 1 and "Traceback" not in err and "refused" not in err, err
    if "subscribed" in out:  # the script had started: it got to report
        assert "reported" in out, (out, err)


def test_a_crashing_script_leaves_only_its_own_error(coral, targets):
    """A script that throws mid-stream: its error (Deno's, echoed) and nothing
    from coral's teardown: no perf ioctl, bcc detach or nanobind lines."""
    result = coral.run("run", str(SCRIPT.parent / "crash_mid_stream.ts"), "--", str(targets["counter"]), "100000")
    assert result.returncode == 1, result.stderr
    assert "crashed on purpose mid-stream" in result.stderr
    for noise in ("ioctl", "Failed to detach", "leaked", "Traceback", "coral: internal error"):
        assert noise not in result.stderr, result.stderr
