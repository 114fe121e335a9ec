"""What a probed program pays: wall time of a target making N calls under
`coral probe attach` (latency on, DuckDB on) vs a no-op BPF program on the
same uprobe/uretprobe (the floor), vs bpftrace printf per event. Also the
agent's peak RSS while streaming and its attach time, and the kernel's own
statistics of coral's programs (BPF_ENABLE_STATS: run time / run count)."""

import ctypes
import os
import re
import shutil
import subprocess
import sys
import threading
import time


from coral_probe import _native
from helpers import report

CALLS = 100_000


def target_elapsed_ns(stderr: str) -> int:
    return int(re.search(r"elapsed_ns (\d+)", stderr).group(1))


def run_under_noop(counter) -> int:
    """The floor: the same uprobe + uretprobe, programs that only return."""
    from bcc import BPF

    bpf = BPF(text=b"int noop(void *ctx) { return 0; }")
    try:
        bpf.attach_uprobe(name=str(counter).encode(), sym=b"coral_work", fn_name=b"noop")
        bpf.attach_uretprobe(name=str(counter).encode(), sym=b"coral_work", fn_name=b"noop")
        run = subprocess.run([str(counter), str(CALLS)], env={**os.environ, "COUNTER_TIME": "1"},
                             capture_output=True, text=True)
        return target_elapsed_ns(run.stderr)
    finally:
        bpf.cleanup()


class _EnableStats(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("_pad", ctypes.c_uint32 * 31)]


def _prog_stats(fd: int) -> tuple[int, int]:
    """(run_time_ns, run_cnt) of the program behind `fd`, from its fdinfo."""
    with open(f"/proc/self/fdinfo/{fd}") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["run_time_ns"]), int(fields["run_cnt"])


def bpf_ns_per_run(counter) -> dict[str, float]:
    """ns per run of coral's entry and return programs for CALLS calls, and of
    no-op programs on the same probes (what the statistics and the uprobe
    dispatch cost by themselves). The statistics are on only while the fd
    BPF_ENABLE_STATS returns is open."""
    from bcc import BPF

    from coral_probe.attach import Attachment
    from coral_probe.plan import ProbeOptions, plan_functions
    from coral_probe.targets import Target

    libc = ctypes.CDLL(None, use_errno=True)
    attr = _EnableStats(type=0)  # BPF_STATS_RUN_TIME
    stats_fd = libc.syscall(321, 32, ctypes.byref(attr), ctypes.sizeof(attr))  # SYS_bpf, BPF_ENABLE_STATS
    assert stats_fd >= 0, os.strerror(ctypes.get_errno())
    figures = {}
    try:
        # A ring big enough for every event: no consumer, and no reserve failing (a cheaper path).
        opts = ProbeOptions(nargs=2, ringbuf_pages=16384)
        plan = plan_functions(Target(str(counter), None, str(counter)), ["coral_work"], opts)
        attachment = Attachment(plan.program)
        try:
            plan.attach(attachment)
            subprocess.run([str(counter), str(CALLS)], stdout=subprocess.DEVNULL, check=False)
            for name, fn in attachment.bpf.funcs.items():
                run_ns, runs = _prog_stats(fn.fd)
                figures[name.decode()] = run_ns / max(runs, 1)
        finally:
            attachment.detach()
        bpf = BPF(text=b"int noop(void *ctx) { return 0; }")
        try:
            bpf.attach_uprobe(name=str(counter).encode(), sym=b"coral_work", fn_name=b"noop")
            subprocess.run([str(counter), str(CALLS)], stdout=subprocess.DEVNULL, check=False)
            run_ns, runs = _prog_stats(bpf.funcs[b"noop"].fd)
            figures["noop"] = run_ns / max(runs, 1)
        finally:
            bpf.cleanup()
    finally:
        os.close(stats_fd)
    return figures


class MemorySampler(threading.Thread):
    """Peak RSS and its anonymous part (the agent's own heap, as opposed to
    file-backed library code such as bcc's LLVM) from smaps_rollup."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak_rss_kb, self.peak_anon_kb = pid, 0, 0
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                with open(f"/proc/{self.pid}/smaps_rollup") as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line and not line[0].isdigit())
            except OSError:
                return
            self.peak_rss_kb = max(self.peak_rss_kb, int(fields["Rss"].split()[0]))
            self.peak_anon_kb = max(self.peak_anon_kb, int(fields["Anonymous"].split()[0]))
            self.done.wait(0.05)


def run_under_coral(counter, db) -> tuple[int, "MemorySampler", float, str]:
    """Target time, agent memory while streaming, attach seconds, summary line."""
    # This process compiled BPF too (the floor, the drain bench): its LLVM pages
    # would be shared with coral's, and the kernel does not page out shared
    # pages. Release ours first, as a host without another bcc user would be.
    _native.page_out_libraries(["libLLVM", "libclang"])
    cmd = [sys.executable, "-m", "coral_probe", "probe", "attach", "coral_work", "--args", "2", "-o", "jsonl",
           "--db", str(db), "--", str(counter), str(CALLS)]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COUNTER_TIME": "1"})
    first = proc.stderr.readline()
    attach_s = time.monotonic() - started
    assert first.startswith("coral: attached"), first
    memory = MemorySampler(proc.pid)
    memory.start()
    lines = []
    for line in iter(proc.stderr.readline, ""):  # the summary ends the stream; exit is not measured
        lines.append(line)
        if " events in " in line:
            memory.done.set()
    memory.done.set()
    memory.join()
    rest = "".join(lines)
    proc.wait()
    assert proc.returncode == CALLS % 7, rest
    summary = rest.strip().splitlines()[-1]
    assert f"{CALLS:,} events" in summary and "lost 0" in summary, summary
    return target_elapsed_ns(rest), memory, attach_s, summary


def run_under_bpftrace(counter) -> int | None:
    if not shutil.which("bpftrace"):
        return None
    program = (f'uprobe:{counter}:coral_work {{ @start[tid] = nsecs; }} '
               f'uretprobe:{counter}:coral_work /@start[tid]/ {{ printf("%d %d %d\\n", pid, tid, nsecs - @start[tid]); '
               f'delete(@start[tid]); }}')
    run = subprocess.run(["bpftrace", "-e", program, "-c", f"{counter} {CALLS}"], capture_output=True, text=True,
                         env={**os.environ, "COUNTER_TIME": "1", "BPFTRACE_MAX_MAP_KEYS": "65536"})
    match = re.search(r"elapsed_ns (\d+)", run.stderr + run.stdout)
    return int(match.group(1)) if match else None


def test_probe_cost_vs_noop_and_bpftrace(benchmark, targets, tmp_path):
    counter = targets["counter"]
    coral_runs = []

    def one_round():
        coral_runs.append(run_under_coral(counter, tmp_path / f"bench{len(coral_runs)}.duckdb"))

    noop_ns = min(run_under_noop(counter) for _ in range(3))
    benchmark.pedantic(one_round, rounds=3, iterations=1)
    noop_ns = min(noop_ns, *(run_under_noop(counter) for _ in range(2)))
    coral_ns = min(r[0] for r in coral_runs)
    bpftrace_ns = run_under_bpftrace(counter)
    bare = subprocess.run([str(counter), str(CALLS)], env={**os.environ, "COUNTER_TIME": "1"},
                          capture_output=True, text=True)
    figures = dict(calls=CALLS, bare_ms=target_elapsed_ns(bare.stderr) / 1e6, noop_ms=noop_ns / 1e6,
                   coral_ms=coral_ns / 1e6, coral_vs_noop=coral_ns / noop_ns, target_ratio=1.10,
                   per_call_overhead_us=(coral_ns - noop_ns) / CALLS / 1e3)
    if bpftrace_ns:
        figures.update(bpftrace_ms=bpftrace_ns / 1e6, coral_vs_bpftrace=coral_ns / bpftrace_ns)
    report("probe_cost", **figures)
    peak_rss = max(r[1].peak_rss_kb for r in coral_runs) / 1024
    peak_anon = max(r[1].peak_anon_kb for r in coral_runs) / 1024
    attach_s = min(r[2] for r in coral_runs)
    report("agent", streaming_peak_rss_mb=peak_rss, of_which_anonymous_mb=peak_anon,
           file_backed_code_mb=peak_rss - peak_anon, target_rss_mb=200.0, attach_s=attach_s)
    benchmark.extra_info.update(figures, peak_rss_mb=peak_rss, peak_anon_mb=peak_anon, attach_s=attach_s)
    per_run = [bpf_ns_per_run(counter) for _ in range(3)]
    entry = min(r.get("coral_entry", r.get("coral_entry_0", 0)) for r in per_run)
    ret = min(r.get("coral_return", r.get("coral_return_0", 0)) for r in per_run)
    noop = min(r["noop"] for r in per_run)
    report("bpf_stats", entry_ns_per_run=entry, return_ns_per_run=ret, noop_ns_per_run=noop,
           target_entry_ns=100.0, target_return_ns=200.0)
