"""The agent's own CPU per event, on a real server: Redis GET throughput
(`redis-benchmark -t get -n 200000 -c 8`) with no probe, under
`coral probe attach processCommand --pid P -o jsonl > /dev/null` (latency and
DuckDB on), under coral `--no-ret`, and under bpftrace counting entries and
returns of the same function. On a 2-core machine every cycle the agent spends
(ring consumer, jsonl, DuckDB) is taken from the server or from its client.
Rounds interleave the four modes; figures are medians.

Also coral's user+sys CPU (all its threads, /proc/PID/task/*/stat) while
the load runs, per million delivered events and split per thread (main:
Python, DuckDB, jsonl; ring: the Rust consumer), and apart the fixed CPU of
its stop (detach, last rows, checkpoint).
Targets: coral (latency + DuckDB) >= 0.90x of no probe; < 1 s of CPU per
million events.

processCommand: Debian's redis-server is stripped of .symtab but exports its
functions in .dynsym (for modules), processCommand included; it runs once per
command and starts with `push %r15` (an emulated uprobe, the cheap kind).

Standalone: `python benches/test_redis_overhead.py [ROUNDS]`."""

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import report  # noqa: E402

ROUNDS = 5
REQUESTS = 200_000
CLIENTS = 8
FUNCTION = "processCommand"
SERVER_LIFETIME_S = 1200  # redis-server is killed by `timeout` past this, whatever happens here
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def redis_server():
    """A redis-server of our own on 127.0.0.1, no persistence; (pid, port)."""
    port = _free_port()
    wrapper = subprocess.Popen(
        ["timeout", "-s", "KILL", str(SERVER_LIFETIME_S), "redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pid = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                children = Path(f"/proc/{wrapper.pid}/task/{wrapper.pid}/children").read_text().split()
                if children and subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                                               text=True).stdout.strip() == "PONG":
                    pid = int(children[0])
                    break
            except OSError:
                pass
            time.sleep(0.05)
        assert pid is not None, "redis-server did not start"
        yield pid, port
    finally:
        wrapper.send_signal(signal.SIGTERM)  # timeout passes it on to redis-server
        try:
            wrapper.wait(timeout=10)
        except subprocess.TimeoutExpired:
            wrapper.kill()
            wrapper.wait()


def get_throughput(port: int) -> float:
    run = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "get", "-n", str(REQUESTS), "-c", str(CLIENTS),
                          "--csv"], capture_output=True, text=True, timeout=300, check=True)
    row = [line for line in run.stdout.splitlines() if line.startswith('"GET"')][0]
    return float(row.split(",")[1].strip('"'))


def _cpu_s(stat_path: str) -> float:
    fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def _threads(pid: int) -> dict[str, float]:
    """CPU seconds per thread kind: main (the Python thread), ring (the Rust consumer), other."""
    out = {"main": 0.0, "ring": 0.0, "other": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            cpu = _cpu_s(str(task / "stat"))
        except OSError:
            continue
        kind = "main" if task.name == str(pid) else "ring" if comm == "coral-ring" else "other"
        out[kind] += cpu
    return out


def under_coral(pid: int, port: int, db: Path, *extra: str, env: dict | None = None) -> dict:
    cmd = [sys.executable, "-m", "coral_probe", "probe", "attach", FUNCTION, "--pid", str(pid), "-o", "jsonl",
           "--db", str(db), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    first = proc.stderr.readline()
    assert first.startswith("coral: attached"), first + proc.stderr.read()
    before = _threads(proc.pid)
    rps = get_throughput(port)
    time.sleep(0.1)  # the last flush of the consumer (50 ms)
    after = _threads(proc.pid)
    cpu_at_stop = _cpu_s(f"/proc/{proc.pid}/stat")
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, rest
    events = int(re.search(r"coral: ([\d,]+) events in", rest).group(1).replace(",", ""))
    assert re.search(r"\blost 0\b", rest), rest
    window = {k: after[k] - before[k] for k in after}
    # From the Ctrl-C to the exit: detach, last rows, probe_sessions, DuckDB's checkpoint.
    stop_s = usage.ru_utime + usage.ru_stime - cpu_at_stop
    return dict(rps=rps, events=events, window=window, load_s=sum(window.values()), stop_s=stop_s)


def under_bpftrace(pid: int, port: int) -> tuple[float, int]:
    exe = os.path.realpath(f"/proc/{pid}/exe")
    program = (f"uprobe:{exe}:{FUNCTION} /pid == {pid}/ {{ @entries = count(); }} "
               f"uretprobe:{exe}:{FUNCTION} /pid == {pid}/ {{ @returns = count(); }}")
    # -B none: "Attaching..." reaches the pipe at once, not at exit
    proc = subprocess.Popen(["bpftrace", "-B", "none", "-e", program], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen = []  # warnings first, here "couldn't set RLIMIT_MEMLOCK"
    for line in iter(proc.stdout.readline, ""):
        seen.append(line)
        if line.startswith("Attaching"):
            break
    else:
        raise AssertionError("bpftrace did not attach: " + "".join(seen))
    time.sleep(1.0)  # it says "Attaching" before it attaches
    rps = get_throughput(port)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    entries = int(re.search(r"@entries: (\d+)", out).group(1))
    assert entries >= REQUESTS, out
    return rps, entries


def measure(rounds: int, workdir: Path) -> dict:
    rps: dict[str, list[float]] = {"none": [], "coral": [], "coral_noret": [], "bpftrace": []}
    coral_runs: list[dict] = []
    noret_runs: list[dict] = []
    has_bpftrace = shutil.which("bpftrace") is not None
    with redis_server() as (pid, port):
        get_throughput(port)  # warm-up: the server's allocations, the page cache
        for r in range(rounds):
            rps["none"].append(get_throughput(port))
            run = under_coral(pid, port, workdir / f"coral{r}.duckdb")
            coral_runs.append(run)
            rps["coral"].append(run["rps"])
            run = under_coral(pid, port, workdir / f"noret{r}.duckdb", "--no-ret")
            noret_runs.append(run)
            rps["coral_noret"].append(run["rps"])
            if has_bpftrace:
                rps["bpftrace"].append(under_bpftrace(pid, port)[0])
    med = {k: statistics.median(v) for k, v in rps.items() if v}

    def per_million(runs, key):
        return statistics.median(key(run) / run["events"] * 1e6 for run in runs)

    figures = dict(none_rps=med["none"], coral_ratio=med["coral"] / med["none"], target_ratio=0.90,
                   coral_noret_ratio=med["coral_noret"] / med["none"])
    if "bpftrace" in med:
        figures["bpftrace_ratio"] = med["bpftrace"] / med["none"]
    figures.update(
        coral_cpu_s_per_M_events=per_million(coral_runs, lambda run: run["load_s"]), target_cpu_s_per_M=1.0,
        noret_cpu_s_per_M_events=per_million(noret_runs, lambda run: run["load_s"]),
        main_ns_per_event=per_million(coral_runs, lambda run: run["window"]["main"]) * 1e3,
        ring_ns_per_event=per_million(coral_runs, lambda run: run["window"]["ring"]) * 1e3,
        other_ns_per_event=per_million(coral_runs, lambda run: run["window"]["other"]) * 1e3,
        coral_stop_cpu_s=statistics.median(run["stop_s"] for run in coral_runs),
        events=statistics.median(run["events"] for run in coral_runs))
    return figures


@pytest.fixture(scope="module")
def redis_tools():
    missing = [t for t in ("redis-server", "redis-benchmark", "redis-cli") if not shutil.which(t)]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (scripts/bench.sh installs redis-server and redis-tools)")


def test_redis_get_throughput_and_agent_cpu(benchmark, redis_tools, tmp_path):
    results = []
    benchmark.pedantic(lambda: results.append(measure(ROUNDS, tmp_path)), rounds=1, iterations=1)
    figures = results[0]
    report("redis_overhead", **figures)
    benchmark.extra_info.update(figures)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        report("redis_overhead", **measure(int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS, Path(d)))
