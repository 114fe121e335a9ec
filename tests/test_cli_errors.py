"""Bad input: one clear line on stderr, a non-zero exit, never a traceback."""

import shutil
import subprocess
import sys

import pytest


def one_line_error(result) -> str:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("coral: ")
    return lines[0]


@pytest.mark.bpf
def test_unknown_symbol_suggests_close_names(coral, targets):
    line = one_line_error(coral.run("probe", "attach", "coral_wrok", "--binary", str(targets["counter"])))
    assert line == f"coral: unknown function 'coral_wrok' in {targets['counter']}; did you mean: coral_work, coral_recurse?"


def test_missing_binary(coral):
    line = one_line_error(coral.run("probe", "attach", "f", "--binary", "/no/such/binary"))
    assert line == "coral: binary not found: /no/such/binary"


def test_missing_command(coral):
    line = one_line_error(coral.run("probe", "attach", "f", "--", "/no/such/command"))
    assert line == "coral: command not found: /no/such/command"


def test_dead_pid(coral):
    proc = subprocess.Popen(["true"])
    proc.wait()
    line = one_line_error(coral.run("probe", "attach", "f", "--pid", str(proc.pid)))
    assert line == f"coral: no process with pid {proc.pid}"


def test_no_target(coral):
    line = one_line_error(coral.run("probe", "attach", "ProcessPayment"))
    assert line == "coral: no target: give --binary PATH, --pid PID or -- COMMAND [ARGS]"


@pytest.mark.parametrize("value", ["5xs", "fast", "-1ms", "ms"])
def test_malformed_min_duration(coral, value):
    line = one_line_error(coral.run("probe", "attach", "f", "--binary", sys.executable, "--min-duration", value))
    assert line == (f"coral: invalid --min-duration '{value}': expected a number with a unit "
                    "(ns, us, ms, s, m, h), e.g. 500ms")


def test_malformed_sample(coral):
    line = one_line_error(coral.run("probe", "attach", "f", "--binary", sys.executable, "--sample", "abc"))
    assert line == "coral: Invalid value for '--sample': 'abc' is not a valid integer."
    line = one_line_error(coral.run("probe", "attach", "f", "--binary", sys.executable, "--sample", "0"))
    assert line == "coral: invalid --sample 0: must be 1 or more (1 in N calls)"


def test_min_duration_needs_return_probes(coral):
    line = one_line_error(coral.run("probe", "attach", "f", "--binary", sys.executable, "--no-ret",
                                    "--min-duration", "1ms"))
    assert line == "coral: --min-duration needs return probes; drop --no-ret"


@pytest.mark.bpf
def test_not_root(coral, targets, tmp_path):
    if not shutil.which("setpriv"):
        pytest.fail("setpriv (util-linux) is needed to drop privileges")
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
           "--bounding-set=-all", *coral.cmd("probe", "attach", "coral_work", "--binary", str(targets["counter"]))]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**coral.env, "CORAL_HOME": str(tmp_path)})
    line = one_line_error(result)
    assert line == ("coral: permission denied: attaching eBPF probes needs root (or CAP_BPF and CAP_PERFMON); "
                    "run with sudo")


@pytest.mark.bpf
def test_kprobes_unavailable_is_one_clear_line(coral):
    from coral_probe.attach import kernel_has_kprobes

    result = coral.run("probe", "attach", "--kernel", "vfs_read", "--duration", "1s")
    if kernel_has_kprobes():
        assert result.returncode == 0, result.stderr
        return
    line = one_line_error(result)
    assert line.startswith("coral: cannot probe kernel function vfs_read: kprobes are not available on this "
                           "kernel (CONFIG_KPROBES is not set), and the fentry fallback was refused (")
    assert line.endswith("); use --tracepoint CATEGORY:NAME instead")


def test_bad_tracepoint_spec(coral):
    line = one_line_error(coral.run("probe", "attach", "--tracepoint", "nocolon"))
    assert line == "coral: invalid tracepoint 'nocolon': expected CATEGORY:NAME, e.g. syscalls:sys_enter_openat"


@pytest.mark.bpf
def test_unknown_tracepoint(coral):
    line = one_line_error(coral.run("probe", "attach", "--tracepoint", "nope:nothing"))
    assert line == "coral: unknown tracepoint 'nope:nothing' (no /sys/kernel/tracing/events/nope/nothing/format)"


@pytest.mark.bpf
def test_wildcard_cap_lists_matches(coral):
    line = one_line_error(coral.run("probe", "attach", "str*", "--binary", "libc", "--max-functions", "3"))
    assert "functions, more than the cap of 3: " in line and "narrow the pattern" in line
