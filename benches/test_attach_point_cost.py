"""What a uprobe hit costs depends on the probed instruction: x86 Linux
emulates `push reg`, NOPs and direct branches and single-steps everything else
out of line (arch/x86/kernel/uprobes.c). CET-built distro binaries start
almost every function with `endbr64`, which is single-stepped; coral moves
the probe onto the following `push` (native/src/symbols.rs attach_points).

1. The cost of one uprobe hit on each kind of first instruction (bpftrace
   counting hits on tests/targets/prologues.c first_*): the list the Rust
   code relies on, measured on this kernel.
2. Per call on an `endbr64; push %rbp` function (pro_endbr_push): coral vs
   bpftrace (which probes the symbol, the endbr64) on the same function, same
   run, with a return probe and entry-only; and the floor, no-op programs on
   the endbr64 and on the push, which is what moving the probe can gain."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from helpers import report

CALLS = 50_000
# First instruction -> function of tests/targets/prologues.c.
FIRST = {"push_rbp": "first_push", "push_r15": "first_push_r15", "nop": "first_nop", "nop5": "first_nop5",
         "jmp_rel8": "first_jmp", "jbe_rel8": "first_jcc", "endbr64": "first_endbr", "sub_rsp_8": "first_sub",
         "mov_rax_rdi": "first_mov", "lea_rax": "first_lea"}
TIMED = {**os.environ, "PROLOGUES_TIME": "1", "BPFTRACE_MAX_MAP_KEYS": "65536"}

pytestmark = pytest.mark.skipif(not shutil.which("bpftrace"), reason="bpftrace is the peer here")


def elapsed_ns(text: str) -> int:
    match = re.search(r"elapsed_ns (\d+)", text)
    assert match, text[-2000:]
    return int(match.group(1))


def bare_ns(target, fn: str) -> int:
    run = subprocess.run([str(target), str(CALLS), "0", fn], env=TIMED, capture_output=True, text=True)
    return elapsed_ns(run.stderr)


def bpftrace_ns(target, program: str, fn: str) -> int:
    run = subprocess.run(["bpftrace", "-e", program, "-c", f"{target} {CALLS} 0 {fn}"], env=TIMED,
                         capture_output=True, text=True)
    return elapsed_ns(run.stderr + run.stdout)


def coral_ns(target, fn: str, db, *flags: str) -> int:
    run = subprocess.run([sys.executable, "-m", "coral_probe", "probe", "attach", fn, "--args", "2", *flags,
                          "-o", "jsonl", "--db", str(db), "--", str(target), str(CALLS), "0", fn],
                         env=TIMED, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert run.returncode == CALLS % 7, run.stderr[-2000:]
    assert f"{CALLS:,} events" in run.stderr or f"{CALLS} events" in run.stderr, run.stderr[-2000:]
    assert "lost 0" in run.stderr, run.stderr[-2000:]
    return elapsed_ns(run.stderr)


def noop_ns(target, fn: str, offset: int) -> int:
    """The floor: uprobe + uretprobe programs that only return, `offset` bytes
    into the function (0: the endbr64; 4: the push coral picks)."""
    from bcc import BPF

    from coral_probe.symbols import SymbolTable

    with SymbolTable(str(target)) as table:
        address = next(f.address for f in table.functions if f.name == fn) + offset
    bpf = BPF(text=b"int noop(void *ctx) { return 0; }")
    try:
        bpf.attach_uprobe(name=str(target).encode(), addr=address, fn_name=b"noop")
        bpf.attach_uretprobe(name=str(target).encode(), addr=address, fn_name=b"noop")
        run = subprocess.run([str(target), str(CALLS), "0", fn], env=TIMED, capture_output=True, text=True)
        return elapsed_ns(run.stderr)
    finally:
        bpf.cleanup()


def per_call_us(probed_ns: int, bare: int) -> float:
    return (probed_ns - bare) / CALLS / 1e3


def test_uprobe_hit_cost_by_first_instruction(benchmark, targets):
    target = targets["prologues"]
    costs = {}

    def one_round():
        for label, fn in FIRST.items():
            bare = bare_ns(target, fn)
            probed = bpftrace_ns(target, f"uprobe:{target}:{fn} {{ @hits = count(); }}", fn)
            costs[label] = min(costs.get(label, float("inf")), per_call_us(probed, bare))

    benchmark.pedantic(one_round, rounds=2, iterations=1)
    report("uprobe_hit_us_by_first_instruction", **costs)
    benchmark.extra_info.update(costs)


def test_endbr64_push_function_coral_vs_bpftrace(benchmark, targets, tmp_path):
    target, fn = targets["prologues"], "pro_endbr_push"
    runs: dict[str, list[int]] = {"bare": [], "coral": [], "coral_entry": [], "bpftrace": [], "bpftrace_entry": [],
                                  "noop_on_endbr64": [], "noop_on_push": []}
    # bpftrace as a user would write it: on the symbol, the endbr64.
    with_return = (f"uprobe:{target}:{fn} {{ @start[tid] = nsecs; }} "
                   f"uretprobe:{target}:{fn} /@start[tid]/ {{ printf(\"%d %d %d\\n\", pid, tid, "
                   f"nsecs - @start[tid]); delete(@start[tid]); }}")
    entry_only = f"uprobe:{target}:{fn} {{ printf(\"%d %d %d %d\\n\", pid, tid, arg0, arg1); }}"

    def one_round():
        n = len(runs["coral"])
        runs["bare"].append(bare_ns(target, fn))
        runs["coral"].append(coral_ns(target, fn, tmp_path / f"r{n}.duckdb"))
        runs["bpftrace"].append(bpftrace_ns(target, with_return, fn))
        runs["coral_entry"].append(coral_ns(target, fn, tmp_path / f"e{n}.duckdb", "--no-ret"))
        runs["bpftrace_entry"].append(bpftrace_ns(target, entry_only, fn))
        runs["noop_on_endbr64"].append(noop_ns(target, fn, 0))
        runs["noop_on_push"].append(noop_ns(target, fn, 4))

    benchmark.pedantic(one_round, rounds=3, iterations=1)
    best = {k: min(v) for k, v in runs.items()}
    figures = dict(calls=CALLS,
                   coral_us=per_call_us(best["coral"], best["bare"]),
                   bpftrace_us=per_call_us(best["bpftrace"], best["bare"]),
                   coral_vs_bpftrace=best["coral"] / best["bpftrace"],
                   coral_entry_us=per_call_us(best["coral_entry"], best["bare"]),
                   bpftrace_entry_us=per_call_us(best["bpftrace_entry"], best["bare"]),
                   coral_vs_bpftrace_entry=best["coral_entry"] / best["bpftrace_entry"],
                   noop_on_endbr64_us=per_call_us(best["noop_on_endbr64"], best["bare"]),
                   noop_on_push_us=per_call_us(best["noop_on_push"], best["bare"]))
    report("endbr64_push_per_call", **figures)
    benchmark.extra_info.update(figures)
