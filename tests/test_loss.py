"""Every loss counted: a tiny ring buffer and a stalled consumer."""

import re
import signal
import subprocess
import time

import pytest

from conftest import jsonl
from test_probe_attach import wait_until_attached

pytestmark = pytest.mark.bpf


def test_stalled_consumer_loses_counted_events(coral, targets):
    calls = 5000
    # One page of ring buffer: ~36 events. coral is stopped (SIGSTOP) while the
    # target runs, so its consumer cannot drain: the kernel must count the rest.
    attach = coral.popen("probe", "attach", "-o", "jsonl", "coral_work", "--no-ret", "--ring-pages", "1",
                         "--binary", str(targets["counter"]), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until_attached(attach)
    attach.send_signal(signal.SIGSTOP)
    try:
        run = subprocess.run([str(targets["counter"]), str(calls)], capture_output=True)
        assert run.returncode == calls % 7
    finally:
        attach.send_signal(signal.SIGCONT)
    time.sleep(0.5)
    attach.send_signal(signal.SIGINT)
    out, err = attach.communicate(timeout=60)
    assert attach.returncode == 0, err
    delivered = len(jsonl(out))
    summary = err.strip().splitlines()[-1]
    lost = int(re.search(r"lost ([\d,]+)", summary).group(1).replace(",", ""))
    assert lost > 0, summary
    assert delivered + lost == calls, summary
    assert f"hits {calls:,}" in summary
    assert coral.query("SELECT count(*) FROM probe_events") == [(delivered,)]
    assert coral.query("SELECT hits, delivered, lost FROM probe_sessions") == [(calls, delivered, lost)]
