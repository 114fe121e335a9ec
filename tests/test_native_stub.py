"""coral_probe/_native.pyi matches the built Rust module (mypy stubtest)."""

import subprocess
import sys


def test_stub_matches_the_native_module():
    result = subprocess.run([sys.executable, "-m", "mypy.stubtest", "coral_probe._native"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
