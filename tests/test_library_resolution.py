"""A library named short (`--binary libz`) is the file the target loads: the
copy a command finds through its RUNPATH or LD_LIBRARY_PATH and the one a
process maps, not whatever ld.so's cache names. And `--pid` names a process
as it was started, not by its symlink's target."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coral_probe.errors import CoralError
from coral_probe.libraries import linked_files
from coral_probe.targets import resolve_binary, resolve_pid
from conftest import jsonl
from test_scripts import SCRIPTS, emitted

CALLS = 1000


def held(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    """`argv` started and waiting for a line on stdin (it says `ready`)."""
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    return proc


def release(proc: subprocess.Popen) -> int:
    proc.stdin.write("go\n")
    proc.stdin.flush()
    return proc.wait(timeout=60)


@pytest.fixture
def zcalls(targets) -> Path:
    private = targets["lib"] / "libz.so.1"
    # The case this file is about: ld.so's cache names another libz than the one zcalls loads.
    assert not os.path.samefile(resolve_binary("libz").path, private)
    return targets["zcalls"]


@pytest.mark.bpf
def test_command_probes_the_library_it_loads_through_runpath(coral, zcalls):
    result = coral.run("run", str(SCRIPTS / "count_calls.ts"), "--param", "function=crc32",
                       "--binary", "libz", "--", str(zcalls), str(CALLS))
    assert result.returncode == 0, result.stderr
    assert emitted(coral, "calls") == [{"function": "crc32", "events": CALLS}]


def copy_ld_so_loads(zcalls: Path, tmp_path: Path, monkeypatch, library_path: bool) -> Path:
    """The libz zcalls will load: its RUNPATH copy, or with `library_path` a
    second copy in LD_LIBRARY_PATH, which comes before RUNPATH."""
    expected = zcalls.parent / "lib" / "libz.so.1"
    if not library_path:
        return expected
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("LD_LIBRARY_PATH", str(other))
    return Path(shutil.copy(expected, other / "libz.so.1"))


@pytest.mark.parametrize("library_path", [False, True], ids=["runpath", "ld_library_path"])
def test_command_and_process_resolve_the_copy_ld_so_loads(zcalls, tmp_path, monkeypatch, library_path):
    expected = copy_ld_so_loads(zcalls, tmp_path, monkeypatch, library_path)
    proc = held([str(zcalls), str(CALLS)], {**os.environ, "ZCALLS_WAIT": "1"})
    try:
        # ld.so itself is the oracle: what the running copy maps.
        assert os.path.samefile(resolve_binary("libz", proc.pid).path, expected)
        assert os.path.samefile(resolve_binary("libz", program=str(zcalls)).path, expected)
        # The probe policy's closure still leaves LD_LIBRARY_PATH out (opt-in only).
        assert str(zcalls.parent / "lib" / "libz.so.1") in linked_files(str(zcalls))
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.bpf
@pytest.mark.parametrize("library_path", [False, True], ids=["runpath", "ld_library_path"])
def test_pid_probes_the_copy_ld_so_loaded(coral, zcalls, tmp_path, monkeypatch, library_path):
    copy_ld_so_loads(zcalls, tmp_path, monkeypatch, library_path)
    assert_crc32_calls_counted(coral, zcalls, "--binary", "libz")


def assert_crc32_calls_counted(coral, zcalls, *args: str) -> None:
    """zcalls, held, probed for crc32 (`args` say where) by pid: every call, once."""
    proc = held([str(zcalls), str(CALLS)], {**os.environ, "ZCALLS_WAIT": "1"})
    try:
        attach = coral.popen("probe", "attach", "-o", "jsonl", "crc32", "--no-ret", *args,
                             "--pid", str(proc.pid), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = attach.stderr.readline()
        assert line.startswith("coral: attached"), line + attach.stderr.read()
        assert release(proc) == 0
        out, err = attach.communicate(timeout=60)  # coral stops when the process exits
    finally:
        proc.kill()
        proc.wait()
    assert attach.returncode == 0, err
    events = jsonl(out)
    assert len(events) == CALLS
    assert {(e["function"], e["pid"]) for e in events} == {("crc32", proc.pid)}


def test_a_short_name_matching_two_loaded_files_is_an_error(coral, zcalls, tmp_path):
    copies = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        copies.append(str(shutil.copy(zcalls.parent / "lib" / "libz.so.1", tmp_path / name / "libz.so.1")))
    # ld.so maps a second copy when it is another file, whatever its name.
    loader = "import ctypes, sys\nfor path in sys.argv[1:]: ctypes.CDLL(path)\nprint('ready', flush=True)\n" \
             "sys.stdin.readline()"
    proc = held([sys.executable, "-c", loader, *copies], dict(os.environ))
    try:
        with pytest.raises(CoralError) as caught:
            resolve_binary("libz", proc.pid)
        assert all(c in str(caught.value) for c in copies)
        result = coral.run("probe", "attach", "crc32", "--binary", "libz", "--pid", str(proc.pid), "--dump-bpf")
    finally:
        release(proc)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and all(c in lines[0] for c in copies), result.stderr


@pytest.mark.parametrize("name", ["svc", "a-service-named-past-15-bytes"])
def test_pid_names_the_process_as_started_with_its_file(targets, tmp_path, name):
    real = Path(shutil.copy(targets["counter"], tmp_path / "counter-build-7"))
    (tmp_path / name).symlink_to(real)
    proc = held([str(tmp_path / name), "3"], {**os.environ, "COUNTER_WAIT": "1"})
    try:
        assert resolve_pid(proc.pid).display == f"{name} ({real})"
    finally:
        release(proc)
    # Started by its own name, it is shown by its path alone, as before.
    proc = held([str(real), "3"], {**os.environ, "COUNTER_WAIT": "1"})
    try:
        assert resolve_pid(proc.pid).display == str(real)
    finally:
        release(proc)


@pytest.mark.bpf
def test_pid_attach_says_the_name_the_process_was_started_as(coral, targets, tmp_path):
    real = Path(shutil.copy(targets["counter"], tmp_path / "counter-build-7"))
    (tmp_path / "payments-api").symlink_to(real)
    proc = held([str(tmp_path / "payments-api"), "40"], {**os.environ, "COUNTER_WAIT": "1"})
    try:
        attach = coral.popen("probe", "attach", "-o", "jsonl", "coral_work", "--pid", str(proc.pid),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = attach.stderr.readline()
        assert line.startswith("coral: attached"), line + attach.stderr.read()
        assert f" in payments-api ({real}) " in line
        release(proc)
        out, err = attach.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert attach.returncode == 0, err
    assert len(jsonl(out)) == 40
