"""The SDK's own `deno test` suite, run against a real agent whose target is
a real process calling coral_work about every millisecond."""

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from coral_probe.agent.sandbox import deno_binary

pytestmark = pytest.mark.bpf
SDK = Path(__file__).resolve().parent.parent / "sdk" / "typescript"


def deno_flags(sock: str) -> list[str]:
    return ["--no-config", "--import-map=import_map.json", "--no-remote", "--no-npm", "--cached-only",
            "--allow-env=CORAL_SOCKET,CORAL_TOKEN", f"--allow-read={sock}", f"--allow-write={sock}",
            f"--allow-net=unix:{sock}"]


def test_sdk_type_checks():
    result = subprocess.run([deno_binary(), "check", "--no-config", "--import-map=import_map.json",
                             *sorted(p.name for p in SDK.glob("*.ts"))], cwd=SDK, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_sdk_suite_against_a_real_agent(coral, targets, tmp_path):
    target = subprocess.Popen([str(targets["counter"]), "100000000", "1000"], stdout=subprocess.DEVNULL)
    sock = str(tmp_path / "sdk.sock")
    token_file = tmp_path / "token"
    token_file.write_text("sdk-test")
    token_file.chmod(0o600)
    # The suite probes a tracepoint, a kernel function and its own process
    # besides the target: what an operator would allow.
    agent = coral.popen("agent", "--socket", sock, "--token-file", str(token_file), "--pid", str(target.pid),
                        "--binary", str(targets["counter"]), "--max-queued-events", "200",
                        "--allow-probe", "tracepoint:sched:sched_switch", "--allow-probe", "kernel:do_nanosleep",
                        "--allow-probe", "pid:*", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert agent.stdout.readline().startswith("coral agent: serving"), agent.stderr.read()
        started = time.monotonic()
        result = subprocess.run([deno_binary(), "test", *deno_flags(sock)], cwd=SDK, capture_output=True,
                                text=True, timeout=600,
                                env={**os.environ, "CORAL_SOCKET": sock, "CORAL_TOKEN": "sdk-test", "NO_COLOR": "1"})
        print(result.stdout[-3000:])
        assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
        summary = re.search(r"ok \| (\d+) passed \| (\d+) failed(?: \| (\d+) ignored)?", result.stdout)
        assert summary, result.stdout[-2000:]
        passed, failed, ignored = (int(x or 0) for x in summary.groups())
        assert failed == 0 and ignored == 0 and passed >= 20, summary.group(0)
        assert time.monotonic() - started < 600
        assert agent.poll() is None, "the agent must survive the whole suite"
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        target.kill()
        target.wait()
