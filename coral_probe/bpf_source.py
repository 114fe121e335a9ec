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
                    returns_value: Sequence[bool | None] = ()) -> Program:
    """uprobe.bpf.c with one coral_entry_N / coral_return_N pair per function;
    `returns_value[N]` False (known to return nothing) marks N's returns as
    having no value, True or None (unknown) or absent leaves them as they are."""
    defines = _common(filter_tgid, ringbuf_pages) | {
        "CORAL_WITH_RETURN": int(with_return),
        "CORAL_MIN_DURATION_NS": min_duration_ns,
        "CORAL_SAMPLE": sample,
        "CORAL_GO_ABI": int(go_abi),
    }
    void = {i for i, value in enumerate(returns_value) if value is False}
    lines = [f"CORAL_PROBE_VOID({i})" if i in void else f"CORAL_PROBE({i})" for i in range(count)]
    return _program("uprobe.bpf.c", lines, defines)


def tracepoint_probes(fields_per_probe: list[list[Field]], *, filter_tgid: int | None,
                      ringbuf_pages: int) -> Program:
    lines = []
    for probe_id, fields in enumerate(fields_per_probe):
        lines.append(f"CORAL_TRACEPOINT_BEGIN({probe_id})")
        for i, f in enumerate(fields[:6]):
            lines.append(f"CORAL_TP_FIELD({i}, {f.offset}, {f.size}, {int(f.signed)})")
        lines.append(f"CORAL_TRACEPOINT_END({probe_id})")
    return _program("tracepoint.bpf.c", lines, _common(filter_tgid, ringbuf_pages))


def fentry_probes(functions: list[str], *, filter_tgid: int | None, ringbuf_pages: int) -> Program:
    lines = [f"CORAL_FENTRY({i}, {name})" for i, name in enumerate(functions)]
    return _program("fentry.bpf.c", lines, _common(filter_tgid, ringbuf_pages))


def synthetic_producer(*, burst: int, filter_tgid: int, ringbuf_pages: int) -> Program:
    defines = _common(filter_tgid, ringbuf_pages) | {"CORAL_BURST": burst}
    return _program("synthetic.bpf.c", [], defines)
