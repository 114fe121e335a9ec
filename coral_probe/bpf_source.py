"""Builds the text and -D flags of coral's BPF programs from bpf/*.bpf.c."""

from collections.abc import Sequence
from dataclasses import dataclass

from .paths import bpf_dir
from .tracefs import Field


@dataclass(frozen=True)
class Program:
    text: str
    cflags: tuple[str, ...]

    def dump(self) -> str:
        return f"// cflags: {' '.join(self.cflags)}\n{self.text}"


_COMMON_INCLUDE = '#include "coral_common.h"'


def _program(file: str, appended: list[str], defines: dict[str, int]) -> Program:
    directory = bpf_dir()
    text = (directory / file).read_text()
    # bcc rewrites map calls (events.ringbuf_reserve(...)) only in the main
    # source, not in included headers, so the shared helpers are pasted in.
    common = (directory / "coral_common.h").read_text()
    text = text.replace(_COMMON_INCLUDE, common, 1) + "\n" + "\n".join(appended) + "\n"
    cflags = (f"-I{directory}", *(f"-D{k}={v}" for k, v in sorted(defines.items())))
    return Program(text, cflags)


def _common(filter_tgid: int | None, ringbuf_pages: int) -> dict[str, int]:
    return {"CORAL_FILTER_TGID": filter_tgid or 0, "CORAL_RINGBUF_PAGES": ringbuf_pages}


def function_probes(count: int, *, with_return: bool, min_duration_ns: int, sample: int,
                    go_abi: bool, filter_tgid: int | None, ringbuf_pages: int,
                    returns_value: Sequence[bool | None] = (), multi: bool = False) -> Program:
    """uprobe.bpf.c with, for uprobe_multi links (`multi`), one coral_entry and
    one coral_return for every function (told apart by cookies, see
    `multi_cookie`); else one coral_entry_N / coral_return_N pair per function,
    where `returns_value[N]` False (known to return nothing) marks N's returns
    as having no value, True or None (unknown) or absent leaves them as they are."""
    defines = _common(filter_tgid, ringbuf_pages) | {
        "CORAL_WITH_RETURN": int(with_return),
        "CORAL_MIN_DURATION_NS": min_duration_ns,
        "CORAL_SAMPLE": sample,
        "CORAL_GO_ABI": int(go_abi),
    }
    if multi:
        return _program("uprobe.bpf.c", ["CORAL_MULTI_PROBES"], defines)
    void = {i for i, value in enumerate(returns_value) if value is False}
    lines = [f"CORAL_PROBE_VOID({i})" if i in void else f"CORAL_PROBE({i})" for i in range(count)]
    return _program("uprobe.bpf.c", lines, defines)


_COOKIE_NO_VALUE = 1 << 32  # bpf/uprobe.bpf.c CORAL_COOKIE_NO_VALUE


def multi_cookie(probe_id: int, returns_value: bool | None) -> int:
    """A uprobe_multi cookie: the probe id, flagged when DWARF says the function returns nothing."""
    return probe_id | (_COOKIE_NO_VALUE if returns_value is False else 0)


def tracepoint_probes(fields_per_probe: list[list[Field]], *, filter_tgid: int | None,
                      ringbuf_pages: int) -> Program:
    lines = []
    for probe_id, fields in enumerate(fields_per_probe):
        lines.append(f"CORAL_TRACEPOINT_BEGIN({probe_id})")
        for i, f in enumerate(fields[:6]):
            lines.append(f"CORAL_TP_FIELD({i}, {f.offset}, {f.size}, {int(f.signed)})")
        lines.append(f"CORAL_TRACEPOINT_END({probe_id})")
    return _program("tracepoint.bpf.c", lines, _common(filter_tgid, ringbuf_pages))


# The width and sign of a USDT argument (bcc's ctype for it) -> the BPF C type read into.
USDT_ARG_TYPES = {"int8_t": "s8", "uint8_t": "u8", "int16_t": "s16", "uint16_t": "u16",
                  "int32_t": "s32", "uint32_t": "u32", "int64_t": "s64", "uint64_t": "u64"}


def usdt_probes(arg_types_per_probe: list[list[str]], *, filter_tgid: int | None,
                ringbuf_pages: int) -> Program:
    """usdt.bpf.c with one coral_usdt_N per marker, reading its first (up to)
    six arguments; `arg_types_per_probe[N]` holds bcc's ctype of each
    (`USDT_ARG_TYPES` keys): only those fixed type names reach the C text."""
    lines = []
    for probe_id, ctypes in enumerate(arg_types_per_probe):
        lines.append(f"CORAL_USDT_BEGIN({probe_id})")
        for i, ctype in enumerate(ctypes[:6]):
            # bcc rewrites bpf_usdt_readarg only outside macros: a line of its own.
            lines.append(f"\t{{ {USDT_ARG_TYPES[ctype]} v = 0; bpf_usdt_readarg({i + 1}, ctx, &v); args[{i}] = v; }}")
        lines.append(f"CORAL_USDT_END({probe_id})")
    return _program("usdt.bpf.c", lines, _common(filter_tgid, ringbuf_pages))


def fentry_probes(functions: list[str], *, filter_tgid: int | None, ringbuf_pages: int) -> Program:
    lines = [f"CORAL_FENTRY({i}, {name})" for i, name in enumerate(functions)]
    return _program("fentry.bpf.c", lines, _common(filter_tgid, ringbuf_pages))


def synthetic_producer(*, burst: int, filter_tgid: int, ringbuf_pages: int) -> Program:
    defines = _common(filter_tgid, ringbuf_pages) | {"CORAL_BURST": burst}
    return _program("synthetic.bpf.c", [], defines)
