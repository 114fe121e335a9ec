"""Kernel names a user or a script may ask to probe: checked before they go
anywhere near bcc. A name is a C identifier that the running kernel has."""

import re

from .errors import CoralError, NotFound

KALLSYMS = "/proc/kallsyms"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_TRACE_PART = re.compile(r"[A-Za-z0-9_]{1,128}")
_TEXT_TYPES = frozenset((b"t", b"T", b"w", b"W"))


def _printable(name: str) -> str:
    return name.encode("unicode_escape").decode()[:80]


def kernel_function(name: str) -> str:
    """The kernel's own spelling of function `name` (from kallsyms), or a
    clear error. bcc's fentry programs need the name inside the C text, so
    only a string read from the kernel's symbol table may get there."""
    if not _IDENTIFIER.fullmatch(name):
        raise CoralError(f"invalid kernel function name '{_printable(name)}': expected a C identifier")
    wanted = name.encode()
    try:
        with open(KALLSYMS, "rb") as f:
            for line in f:
                parts = line.split()
                # "address type name [module]"; text symbols only
                if len(parts) >= 3 and parts[2] == wanted and parts[1] in _TEXT_TYPES:
                    return parts[2].decode()
    except OSError as e:
        raise CoralError(f"cannot read {KALLSYMS}: {e.strerror}") from None
    raise NotFound(f"unknown kernel function '{name}' (not in {KALLSYMS})")


def tracepoint_name(spec: str) -> tuple[str, str]:
    """CATEGORY:NAME split and checked: both are tracefs directory names, so
    nothing but [A-Za-z0-9_] may reach a path join."""
    category, sep, name = spec.partition(":")
    if not sep or not _TRACE_PART.fullmatch(category) or not _TRACE_PART.fullmatch(name):
        raise CoralError(f"invalid tracepoint '{_printable(spec)}': expected CATEGORY:NAME, "
                         "e.g. syscalls:sys_enter_openat")
    return category, name
