"""Where a function's uprobe goes (native/src/symbols.rs attach_points): past
instructions the kernel single-steps (endbr64, sub rsp, mov: 10-20 us a hit
here) onto the first one it emulates (push, nop, branches: 1-2 us), only
across instructions that change nothing an entry probe reads.

(a) the decision on the real machine code of tests/targets/prologues.c and
gowork; (b) real probes through the CLI on every prologue kind: exact counts,
args, return values, latencies, and the breakpoint's place in the target's
memory."""

import os
import subprocess
from collections import Counter, defaultdict

import pytest

from coral_probe import _native
from coral_probe.symbols import SymbolTable
from conftest import jsonl

MOVED = "moved"

# name -> (entry offset, skipped, reason) with a return probe; the uretprobe
# goes where the entry goes.
WITH_RETURN = {
    "pro_endbr_push": (4, ["endbr64"], MOVED),
    "pro_endbr_arg": (0, [], "writes an argument register"),
    "pro_sub": (0, [], "moves the stack pointer"),
    "pro_endbr_sub": (0, [], "moves the stack pointer"),
    "pro_mov": (3, ["mov"], MOVED),
    "pro_push": (0, [], "first instruction is emulated"),
    "pro_loop": (0, [], "a branch targets the prologue"),
    "pro_tailer": (4, ["endbr64"], MOVED),
    "pro_tail": (4, ["endbr64"], MOVED),
    # attach_points alone would move it; the plan keeps it put (enter_past jumps onto the push).
    "pro_entered": (4, ["endbr64"], MOVED),
}
# Entry only, an immediate stack adjustment may be crossed: nothing pairs.
ENTRY_ONLY = {**WITH_RETURN,
              "pro_sub": (4, ["sub"], MOVED),
              "pro_endbr_sub": (8, ["endbr64", "sub"], MOVED)}
ROUND = ["pro_endbr_push", "pro_endbr_arg", "pro_sub", "pro_endbr_sub", "pro_mov", "pro_push", "pro_loop",
         "pro_tailer", "pro_tail", "pro_entered"]
# What the plan does beyond attach_points: a function entered past its start
# from elsewhere keeps its probe on its first instruction.
PLACED = {"pro_entered": 0}


def functions(path) -> dict[str, tuple[int, bytes]]:
    """name -> (address, machine code)"""
    with SymbolTable(str(path)) as table:
        return {fn.name: (fn.address, table.code(fn)) for fn in table.functions}


def decide(fns, name, *, go_abi=False, with_return=True):
    address, code = fns[name]
    points = _native.attach_points(code, address, go_abi, with_return)
    return points, address


# (a) ------------------------------------------------------------------------

@pytest.mark.parametrize("with_return", [True, False])
def test_each_prologue_gets_its_attach_point(targets, with_return):
    fns = functions(targets["prologues"])
    expected = WITH_RETURN if with_return else ENTRY_ONLY
    for name, (offset, skipped, reason) in expected.items():
        points, address = decide(fns, name, with_return=with_return)
        assert (points.entry - address, points.skipped, points.reason) == (offset, skipped, reason), name
        assert points.ret == (points.entry if with_return else None), name


def test_instructions_the_kernel_emulates_stay_first(targets):
    # The first instructions benches/test_attach_point_cost.py measures as cheap.
    fns = functions(targets["prologues"])
    for name in ("first_push", "first_push_r15", "first_nop", "first_nop5", "first_jmp", "first_jcc"):
        points, address = decide(fns, name)
        assert (points.entry, points.reason) == (address, "first instruction is emulated"), name


def test_go_entry_moves_past_the_stack_check(targets):
    fns = functions(targets["gowork"])
    for name, skipped in (("main.processItem", ["cmp", "jbe"]), ("main.hold", ["cmp", "jbe"]),
                          ("main.grow", ["lea", "cmp", "jbe"])):
        for with_return in (True, False):
            points, address = decide(fns, name, go_abi=True, with_return=with_return)
            assert (points.skipped, points.reason, points.ret) == (skipped, MOVED, None), name
            code = fns[name][1][points.entry - address:]
            assert code[0] == 0x55, f"{name}: not the push after the stack check: {code[:2].hex()}"
    # A frameless leaf storing through its argument first: stays.
    points, address = decide(fns, "main.tally", go_abi=True)
    assert (points.entry, points.reason) == (address, "writes memory")


# (b) ------------------------------------------------------------------------

@pytest.fixture(params=["uprobe_multi", "per-probe"])
def uprobe_mode(request, coral):
    """Both attach paths: uprobe_multi links, and one probe each (kernels < 6.6)."""
    if request.param == "per-probe":
        coral.env["CORAL_UPROBE_MODE"] = "per-probe"
    return request.param


def run_prologues(coral, targets, *args, calls=40, sleep_us=0):
    result = coral.run("probe", "attach", "-o", "jsonl", "pro_*", "--args", "2", *args, "--",
                       str(targets["prologues"]), str(calls), str(sleep_us))
    assert result.returncode == calls % 7, result.stderr
    by_function = defaultdict(list)
    for e in jsonl(result.stdout):
        by_function[e["function"]].append(e)
    for events in by_function.values():
        events.sort(key=lambda e: e["ts_ns"])
    return result, by_function


def expected_ret(name, i):
    # pro_endbr_arg doubles its first argument after the probe read it.
    return 8 * i if name == "pro_endbr_arg" else 5 * i


@pytest.mark.bpf
def test_every_prologue_counts_args_and_returns(coral, targets, uprobe_mode):
    result, by_function = run_prologues(coral, targets, calls=40)
    assert Counter({f: len(e) for f, e in by_function.items()}) == Counter({f: 40 for f in ROUND}), result.stderr
    for name in ROUND:
        events = by_function[name]
        assert [e["args"] for e in events] == [[i, 2 * i] for i in range(1, 41)], name
        assert [e["ret"] for e in events] == [expected_ret(name, i) for i in range(1, 41)], name
        assert all(e["duration_ns"] is not None for e in events), name
    assert "unpaired" not in result.stderr and "lost 0" in result.stderr


@pytest.mark.bpf
def test_every_prologue_entry_only(coral, targets, uprobe_mode):
    result, by_function = run_prologues(coral, targets, "--no-ret", calls=40)
    assert Counter({f: len(e) for f, e in by_function.items()}) == Counter({f: 40 for f in ROUND}), result.stderr
    for name in ROUND:
        events = by_function[name]
        assert [e["args"] for e in events] == [[i, 2 * i] for i in range(1, 41)], name
        assert all(e["duration_ns"] is None and e["ret"] is None for e in events), name


@pytest.mark.bpf
def test_every_prologue_times_its_calls(coral, targets, uprobe_mode):
    # Every call sleeps 20 ms inside prologue_body.
    result, by_function = run_prologues(coral, targets, calls=4, sleep_us=20_000)
    for name in ROUND:
        events = by_function[name]
        assert len(events) == 4, (name, result.stderr)
        assert all(e["duration_ns"] >= 20_000_000 for e in events), name
    # The tail jump: one return ends both calls, the outer one entered first.
    for outer, inner in zip(by_function["pro_tailer"], by_function["pro_tail"]):
        assert outer["args"] == inner["args"] and outer["ret"] == inner["ret"]
        assert outer["duration_ns"] >= inner["duration_ns"]


def breakpoints(pid: int, path, names) -> dict[str, list[int]]:
    """name -> offsets from the function's start holding int3 (0xcc) in the
    process's memory: where the kernel put each uprobe."""
    real = os.path.realpath(path)
    maps = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and fields[5] == real:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                maps.append((start, end, int(fields[2], 16)))
    found = {}
    with SymbolTable(str(path)) as table, open(f"/proc/{pid}/mem", "rb") as mem:
        for fn in table.functions:
            if fn.name not in names:
                continue
            offset = table.file_offset(fn.address)
            start, _, file_start = next(m for m in maps if m[2] <= offset < m[2] + (m[1] - m[0]))
            mem.seek(start + offset - file_start)
            code, original = mem.read(fn.size), table.code(fn)
            found[fn.name] = [i for i, (now, was) in enumerate(zip(code, original)) if now != was and now == 0xCC]
    return found


def attach_to_waiting(coral, target_cmd, env, pattern, *args):
    proc = subprocess.Popen(target_cmd, env={**os.environ, **env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline() == "ready\n"
    attach = coral.popen("probe", "attach", "-o", "jsonl", pattern, *args, "--pid", str(proc.pid),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = attach.stderr.readline()
    assert line.startswith("coral: attached"), line + attach.stderr.read()
    return proc, attach


@pytest.mark.bpf
@pytest.mark.parametrize("entry_only", [False, True])
def test_the_breakpoint_sits_on_the_chosen_instruction(coral, targets, uprobe_mode, entry_only):
    expected = ENTRY_ONLY if entry_only else WITH_RETURN
    flags = ["--no-ret"] if entry_only else []
    proc, attach = attach_to_waiting(coral, [str(targets["prologues"]), "5"], {"PROLOGUES_WAIT": "1"},
                                     "pro_*", "--args", "2", *flags)
    try:
        placed = breakpoints(proc.pid, targets["prologues"], set(expected))
    finally:
        proc.stdin.write("go\n")
        proc.stdin.flush()
        proc.wait(timeout=30)
        out, err = attach.communicate(timeout=60)
    # An entry and its uretprobe share one breakpoint.
    assert placed == {name: [PLACED.get(name, offset)] for name, (offset, _, _) in expected.items()}
    assert attach.returncode == 0, err
    assert Counter(e["function"] for e in jsonl(out)) == Counter({f: 5 for f in ROUND})


@pytest.mark.bpf
def test_go_breakpoint_sits_past_the_stack_check_and_pairs(coral, targets, uprobe_mode):
    fns = functions(targets["gowork"])
    points, address = decide(fns, "main.hold", go_abi=True)
    proc, attach = attach_to_waiting(coral, [str(targets["gowork"]), "hold"], {}, "main.hold", "--args", "1")
    try:
        placed = breakpoints(proc.pid, targets["gowork"], {"main.hold"})["main.hold"]
        for _ in range(3):
            proc.stdin.write("hold\n")
            proc.stdin.flush()
            assert proc.stdout.readline().startswith("held")
        proc.stdin.write("release\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "released 3\n"
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        out, err = attach.communicate(timeout=60)
    # The entry past the stack check; the RET probes after it (Go has no uretprobe).
    assert placed[0] == points.entry - address, placed
    events = jsonl(out)
    assert attach.returncode == 0, err
    assert len(events) == 3 and all(e["ret"] == 1 and e["duration_ns"] > 0 for e in events), err
    assert "unpaired" not in err


@pytest.mark.bpf
def test_go_entry_moved_still_counts_exactly(coral, targets, uprobe_mode):
    # Stack growth (grow(2000) on every 5th item) and preemption requests send
    # functions through runtime.morestack, which restarts them from their first
    # instruction and so past the moved probe again: each call counts once.
    result = coral.run("probe", "attach", "-o", "jsonl", "main.processItem", "--args", "2", "--",
                       str(targets["gowork"]), "20", "5")
    events = jsonl(result.stdout)
    assert result.returncode == 0, result.stderr
    assert sorted(e["args"][0] for e in events) == list(range(1, 21))
    assert all(e["ret"] == (e["args"][0] * 10 if e["args"][0] % 2 == 0 else -e["args"][0]) for e in events)
    assert all(e["duration_ns"] >= 5_000_000 for e in events)


@pytest.mark.bpf
@pytest.mark.parametrize("with_return", [True, False])
def test_a_call_whose_stack_grows_is_one_entry(coral, targets, uprobe_mode, with_return):
    """grow recurses 2,000 deep, so runtime.morestack restarts it from its
    first instruction again and again; with the entry past the stack check,
    each call is one hit with or without return probes (4 items x 2001 calls)."""
    result = coral.run("probe", "attach", "-o", "jsonl", "main.grow", *([] if with_return else ["--no-ret"]),
                       "--", str(targets["gowork"]), "20", "0")
    assert result.returncode == 0, result.stderr
    assert len(jsonl(result.stdout)) == 4 * 2001, result.stderr
    assert "hits 8,004, delivered 8,004" in result.stderr


@pytest.mark.bpf
def test_a_function_entered_past_its_start_keeps_its_probe_there(coral, targets, uprobe_mode):
    result, by_function = run_prologues(coral, targets, calls=30)
    # enter_past's 30 calls run pro_entered's body from its push: not calls of pro_entered.
    assert len(by_function["pro_entered"]) == 30, result.stderr
