"""After coral stops, nothing of it is left in the kernel."""

import json
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.bpf


def coral_programs() -> list[str]:
    if not shutil.which("bpftool"):
        pytest.fail("bpftool is needed (Debian package bpftool; scripts/setup.sh installs it)")
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True).stdout
    return [p.get("name", "") for p in json.loads(out) if p.get("name", "").startswith("coral_")]


def uprobe_events() -> str:
    with open("/sys/kernel/tracing/uprobe_events") as f:
        return f.read()


@pytest.mark.parametrize("mode", ["command", "interrupted", "go"])
def test_nothing_left_attached(coral, targets, mode):
    assert coral_programs() == []
    if mode == "command":
        result = coral.run("probe", "attach", "-o", "jsonl", "coral_*", "--", str(targets["counter"]), "5")
        assert result.returncode == 5, result.stderr
    elif mode == "go":
        result = coral.run("probe", "attach", "-o", "jsonl", "main.processItem", "--", str(targets["gowork"]), "4", "1")
        assert result.returncode == 0, result.stderr
    else:
        proc = coral.popen("probe", "attach", "-o", "jsonl", "coral_work", "--binary", str(targets["counter"]),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stderr.readline().startswith("coral: attached")
        assert len(coral_programs()) >= 2  # entry and return programs are loaded now
        proc.send_signal(subprocess.signal.SIGINT)
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    assert coral_programs() == []
    assert str(targets["counter"]) not in uprobe_events()
