"""Escapes out of the script sandbox, tried as an attacker would: each test
is the attack that worked before its defence existed."""

from pathlib import Path

import pytest

from test_cli_errors import one_line_error

pytestmark = pytest.mark.bpf
ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "scripts" / "hostile"

INJECTION = 'vfs_read)\n#if __has_include("{path}")\n#error coral-file-exists\n#endif\n//'


@pytest.mark.parametrize("exists", [True, False])
def test_kernel_probe_name_never_becomes_bpf_c(coral, tmp_path, exists):
    # Before: the name was pasted into CORAL_FENTRY(0, NAME) and compiled as
    # root; the compiler's verdict told the script whether any file existed.
    secret = tmp_path / "secret"
    if exists:
        secret.write_text("x")
    result = coral.run("run", str(HOSTILE / "kernel_name_injection.ts"), "--param", f"path={secret}",
                       "--allow-probe", "kernel:*")
    assert result.returncode == 0, result.stderr
    assert "coral-file-exists" not in result.stdout
    assert "refused: invalid kernel function name 'vfs_read)\\n#if __has_include" in result.stdout


def test_cli_kernel_name_is_checked_before_bcc(coral, tmp_path):
    line = one_line_error(coral.run("probe", "attach", "--kernel", INJECTION.format(path=tmp_path)))
    assert line.startswith("coral: invalid kernel function name 'vfs_read)\\n#if")
    line = one_line_error(coral.run("probe", "attach", "--kernel", "coral_no_such_kernel_function"))
    assert line == "coral: unknown kernel function 'coral_no_such_kernel_function' (not in /proc/kallsyms)"


@pytest.mark.parametrize("spec", ["../../../../etc:passwd", "syscalls:sys_enter_openat/../../x", "a b:c"])
def test_tracepoint_names_cannot_walk_tracefs(coral, spec):
    line = one_line_error(coral.run("probe", "attach", "--tracepoint", spec))
    assert line.startswith("coral: invalid tracepoint '")
