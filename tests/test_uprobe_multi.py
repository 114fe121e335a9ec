"""Function probes through uprobe_multi links: thousands of functions, one
program for the entries and one for the returns, one link each, each hit
told apart by its cookie; and the refusals past what the kernel accepts."""

import json
import os
import signal
import subprocess
from collections import Counter

import pytest

from conftest import jsonl

pytestmark = pytest.mark.bpf

FUNCTIONS = 2000


def _bpftool(*args: str) -> list[dict]:
    # bpftool's listing breaks its JSON when a program goes away mid-dump
    # (another test's session ending): read it again.
    for _ in range(5):
        out = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True, check=True).stdout
        try:
            return json.loads(out)
        except json.JSONDecodeError:
            continue
    raise AssertionError(f"bpftool {' '.join(args)}: no valid JSON")


def coral_programs() -> dict[int, str]:
    """id -> name of every coral BPF program loaded now."""
    return {p["id"]: p["name"] for p in _bpftool("prog", "show") if p.get("name", "").startswith("coral_")}


def _expected_calls(rounds: int) -> Counter:
    return Counter({f"fn_{i:04d}": rounds * (i % 4 + 1) for i in range(FUNCTIONS)})


def test_two_thousand_functions_one_program_each_way_exact_counts(coral, targets):
    before = coral_programs()
    target = subprocess.Popen([str(targets["manyfuncs"]), "2"], env={**os.environ, "MANYFUNCS_WAIT": "1"},
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert target.stdout.readline() == "ready\n"
    attach = coral.popen("probe", "attach", "fn_*", "--max-functions", str(FUNCTIONS), "--args", "1",
                         "-o", "jsonl", "--pid", str(target.pid), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = attach.stderr.readline()
    assert line.startswith(f"coral: attached {FUNCTIONS} probes for fn_0000, fn_0001"), line
    assert "and 1,992 more" in line
    # Loaded and verified once per session, not once per function.
    ours = {i: name for i, name in coral_programs().items() if i not in before}
    assert sorted(ours.values()) == ["coral_entry", "coral_return"], ours
    # One link each. bpftool before 7.3 knows the type only by its number (BPF_LINK_TYPE_UPROBE_MULTI).
    links = [link for link in _bpftool("link", "show") if link.get("prog_id") in ours]
    assert len(links) == 2 and {link["type"] for link in links} <= {"uprobe_multi", 12}, links
    target.communicate("go\n", timeout=60)
    out, err = attach.communicate(timeout=120)
    assert attach.returncode == 0, err
    events = jsonl(out)
    assert Counter(e["function"] for e in events) == _expected_calls(2)
    # The cookie says which function: its argument i and return i + 1 agree with its name.
    assert all(e["args"][0] == int(e["function"][3:]) and e["ret"] == e["args"][0] + 1 for e in events)
    assert f"hits {len(events):,}, delivered {len(events):,}, lost 0" in err
    assert coral.query("SELECT count(*) FROM probe_events")[0][0] == len(events)
    assert not set(ours) & set(coral_programs())


def test_every_process_of_a_binary_and_a_clean_ctrl_c(coral, targets):
    """No pid: the link fires for any process running the file; Ctrl-C detaches the 4,000 probes at once."""
    before = coral_programs()
    attach = coral.popen("probe", "attach", "fn_*", "--max-functions", str(FUNCTIONS), "-o", "jsonl",
                         "--binary", str(targets["manyfuncs"]), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert attach.stderr.readline().startswith("coral: attached")
    for _ in range(2):
        subprocess.run([str(targets["manyfuncs"]), "1"], check=True, timeout=60)
    attach.send_signal(signal.SIGINT)
    out, err = attach.communicate(timeout=60)
    assert attach.returncode == 0, err
    events = jsonl(out)
    assert Counter(e["function"] for e in events) == _expected_calls(2)
    assert {e["duration_ns"] is not None for e in events} == {True}
    assert "lost 0" in err and "UNACCOUNTED" not in err
    assert set(coral_programs()) <= set(before)


def test_the_cap_is_what_the_kernel_accepts_and_a_refusal_is_one_line(coral, targets):
    binary = str(targets["manyfuncs"])
    over = coral.run("probe", "attach", "fn_*", "--max-functions", str((1 << 20) + 1), "--binary", binary)
    assert over.returncode == 2 and "1048576" in over.stderr, over.stderr
    capped = coral.run("probe", "attach", "fn_*", "--binary", binary)
    assert capped.returncode != 0 and capped.stderr.count("\n") == 1, capped.stderr
    assert "matches 2000 functions, more than the cap of 64" in capped.stderr


def test_the_per_probe_fallback_refuses_past_bccs_quota_in_one_line(coral, targets):
    coral.env["CORAL_UPROBE_MODE"] = "per-probe"
    result = coral.run("probe", "attach", "fn_0[0-5]*", "--max-functions", "600", "--binary", str(targets["manyfuncs"]))
    assert result.returncode != 0 and result.stderr.count("\n") == 1, result.stderr
    assert "600 functions need 1200 probes, more than the 1000" in result.stderr
    assert "uprobe_multi" in result.stderr


def test_doctor_names_the_mode(coral):
    assert "function probes uprobe_multi links" in coral.run("doctor").stdout
    coral.env["CORAL_UPROBE_MODE"] = "per-probe"
    assert "function probes per-probe uprobes, forced by CORAL_UPROBE_MODE" in coral.run("doctor").stdout


def test_a_bcc_tools_probe_already_there_is_shared_one_by_one(coral, targets):
    """bcc 0.26 gives its uprobes an uninitialised reference-counter offset; a
    uprobe_multi link on the same instruction is refused (EINVAL: "ref_ctr_offset
    mismatch"), so the session attaches its probes one by one instead."""
    from bcc import BPF

    counter = str(targets["counter"]).encode()
    peer = BPF(text=b"int noop(void *ctx) { return 0; }")
    try:
        peer.attach_uprobe(name=counter, sym=b"coral_work", fn_name=b"noop")
        peer.attach_uretprobe(name=counter, sym=b"coral_work", fn_name=b"noop")
        result = coral.run("probe", "attach", "coral_work", "--args", "1", "-o", "jsonl", "--",
                           str(targets["counter"]), "25")
    finally:
        peer.cleanup()
    assert result.returncode == 25 % 7, result.stderr
    assert [e["args"][0] for e in jsonl(result.stdout)] == list(range(1, 26))


def test_a_link_takes_the_pid_only_where_the_kernel_filters_by_process():
    """Before 6.10 a link's pid matched one thread: the link takes every
    process and the program's tgid filter keeps the target's."""
    from coral_probe.uprobe_links import link_pid

    assert link_pid(4242, "6.9.12-200.fc40.x86_64") == link_pid(4242, "6.6.0") == 0
    assert link_pid(4242, "6.10.0") == link_pid(4242, "6.18.44-fc-v669") == link_pid(4242, "7.0") == 4242
    assert link_pid(None, "6.12.1") == link_pid(4242, "unknown") == 0


# A function whose first instruction carries a lock prefix, which the x86
# uprobe decoder refuses (-ENOTSUPP, 524, when a process maps the file).
LOCKED = r"""
#include <stdio.h>
__asm__(".text\n.globl coral_locked\n.type coral_locked, @function\n"
        "coral_locked:\n\tlock incl (%rdi)\n\tret\n.size coral_locked, .-coral_locked\n");
void coral_locked(int *);
int main(void)
{
	int x = 0; char line[8];
	coral_locked(&x);
	puts("ready"); fflush(stdout);
	return !fgets(line, sizeof line, stdin) || x != 1;
}
"""


def test_a_refused_instruction_is_named_not_an_unknown_error(tmp_path):
    from bcc import BPF

    from coral_probe import uprobe_links
    from coral_probe.symbols import SymbolTable

    (tmp_path / "locked.c").write_text(LOCKED)
    binary = str(tmp_path / "locked")
    subprocess.run(["cc", "-O2", "-o", binary, str(tmp_path / "locked.c")], check=True)
    with SymbolTable(binary) as table:
        [fn] = table.match("coral_locked")
        offset = table.file_offset(fn.address)
    target = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    bpf = BPF(text=b"int noop(void *ctx) { return 0; }")
    try:
        assert target.stdout.readline() == "ready\n"
        program = bpf.load_func(b"noop", BPF.KPROBE, attach_type=uprobe_links.BPF_TRACE_UPROBE_MULTI)
        with pytest.raises(OSError) as caught:
            os.close(uprobe_links.link(program.fd, binary, [offset], [0], target.pid, returns=False))
    finally:
        bpf.cleanup()
        target.communicate("go\n", timeout=60)
    assert caught.value.errno == 524
    assert caught.value.strerror == "the kernel refuses a uprobe on one of these instructions"
