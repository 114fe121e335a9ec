"""Go functions from `.gopclntab`, the table the Go runtime itself reads for
stack traces, so `go build -ldflags='-s -w'` keeps it when it drops .symtab
and DWARF.

Hand-written because no maintained Python library parses it (pyelftools
reads ELF and DWARF only; the parsers that exist are Go's own debug/gosym
and tools in Go, Rust or C). It follows debug/gosym (go/src/debug/gosym/
pclntab.go) for the formats of Go 1.16 (magic 0xfffffffa), 1.18 (0xfffffff0)
and 1.20+ (0xfffffff1):

    header: magic u32, 0, 0, minLC u8, ptrSize u8, then ptrSize words:
            nfunc, nfiles, [textStart, 1.18+], funcnameOffset, cuOffset,
            filetabOffset, pctabOffset, pclnOffset
    at pclnOffset, functab: nfunc (entry, funcoff) pairs then the end PC;
            u32 fields holding offsets from the start of text since 1.18,
            ptrSize words holding addresses in 1.16
    at pclnOffset + funcoff, _func: entry (u32 since 1.18, else a word),
            nameOff i32 into funcnametab (NUL-terminated names)

Names are those debug/gosym and Go's stack traces show. The table gives an
ABI wrapper the name of the function it wraps; .symtab calls the ABI0 one of
the two NAME.abi0 (cmd/link/internal/ld/symtab.go), and so does this, so
that a name is one function: of a pair, the assembly body (flag FuncFlagAsm)
when there is one, else the second (the wrapper of a Go function). An
assembly function without a wrapper keeps its plain name, which .symtab may
spell NAME.abi0: the table does not say which ABI it was declared with.
A function ends where the next one starts (alignment padding included).
The table comes from the binary, so every size and offset is checked
against the data before use: a crafted file gets one error line, never a
huge allocation or an index error.
"""

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from .errors import CoralError

_MAGICS = {0xFFFFFFFA: "1.16", 0xFFFFFFF0: "1.18", 0xFFFFFFF1: "1.20"}
_OLD_MAGIC = 0xFFFFFFFB  # Go 1.2 to 1.15
_FLAG_ASM = 1 << 2  # abi.FuncFlagAsm: written in assembly
MAX_NAME = 64 * 1024  # generic instantiations make long names, not this long
MAX_SECTION = 1 << 30  # the largest Go binaries hold a few hundred MB of table
# Where the linker puts runtime.firstmoduledata: its own section since Go 1.26,
# else with the other pointer-free data (PIE: read-only after relocation).
_MODULEDATA_SECTIONS = (".go.module", ".noptrdata", ".data.rel.ro", ".data")


@dataclass(frozen=True)
class GoFunction:
    name: str
    address: int
    size: int
    asm: bool = False  # written in assembly


def _fail(path: str, why: str) -> CoralError:
    return CoralError(f"cannot read the Go function table (.gopclntab) of {path}: {why}")


class _Header(NamedTuple):
    endian: str
    ptr_size: int
    nfunc: int
    pcln_off: int
    first_entry: int  # functab[0]


def read(elf: ELFFile, path: str) -> list[GoFunction]:
    """The functions of a Go ELF file, or [] when it has no .gopclntab."""
    table = elf.get_section_by_name(".gopclntab") or elf.get_section_by_name(".data.rel.ro.gopclntab")
    if table is None:
        return []
    file_size = os.fstat(elf.stream.fileno()).st_size
    text = elf.get_section_by_name(".text")
    if text is None or not text["sh_flags"] & SH_FLAGS.SHF_EXECINSTR:
        raise _fail(path, "no .text section")
    lo, hi = text["sh_addr"], text["sh_addr"] + text["sh_size"]

    def text_start(header: _Header) -> int:
        return _runtime_text(elf, table["sh_addr"], header, (lo, hi), file_size, path)

    functions = parse(_section_bytes(table, file_size, path), text_start, path)
    # A wrong base would put probes mid-instruction: refuse rather than guess.
    if functions and not lo <= functions[0].address <= functions[-1].address + functions[-1].size <= hi:
        raise _fail(path, "its functions lie outside .text")
    return functions


def _section_bytes(section, file_size: int, path: str) -> bytes:
    # Checked before reading: pyelftools would allocate whatever sh_size says.
    start, length = section["sh_offset"], section["sh_size"]
    if section["sh_type"] == "SHT_NOBITS" or length > MAX_SECTION or start + length > file_size:
        raise _fail(path, f"section {section.name} ({length} bytes at {start}) is not in the file")
    return section.data()


def _runtime_text(elf: ELFFile, table_addr: int, h: _Header, text: tuple[int, int],
                  file_size: int, path: str) -> int:
    """The address of runtime.text, which Go 1.18+ entries are offsets from.
    debug/gosym takes the start of .text, which is wrong when a C linker put
    its own code first (-linkmode=external, so every cgo binary): the runtime
    reads it from its moduledata, and so does this. Found by its ftab slice
    {&table[pclnOffset], nfunc+1, nfunc+1}, followed by findfunctab, minpc,
    maxpc, text (runtime/symtab.go, in this order since Go 1.16)."""
    word = h.endian + ("I" if h.ptr_size == 4 else "Q")
    if table_addr + h.pcln_off >= 1 << (8 * h.ptr_size) or h.nfunc + 1 >= 1 << (8 * h.ptr_size):
        return text[0]  # no moduledata can hold it: what debug/gosym does
    ftab = struct.pack(h.endian + word[1] * 3, table_addr + h.pcln_off, h.nfunc + 1, h.nfunc + 1)
    lo, hi = text
    for name in _MODULEDATA_SECTIONS:
        section = elf.get_section_by_name(name)
        if section is None or section["sh_type"] == "SHT_NOBITS":
            continue
        blob = _section_bytes(section, file_size, path)
        at = blob.find(ftab)
        while 0 <= at and at + 7 * h.ptr_size <= len(blob):
            minpc, _, start = struct.unpack_from(h.endian + word[1] * 3, blob, at + 4 * h.ptr_size)
            if lo <= start < hi and minpc == start + h.first_entry:
                return start
            at = blob.find(ftab, at + 1)
    # A moduledata this does not know: what debug/gosym does.
    return lo


def parse(data: bytes, text_start: Callable[[_Header], int], path: str) -> list[GoFunction]:
    """The functions in `data`, the table's bytes; `text_start` gives the
    address Go 1.18+ entries are offsets from (1.16 holds addresses)."""
    if len(data) < 8:
        raise _fail(path, "too short for a header")
    for endian in "<>":
        magic = struct.unpack_from(endian + "I", data)[0]
        if magic in _MAGICS or magic == _OLD_MAGIC:
            break
    else:
        raise _fail(path, f"unknown magic {data[:4].hex()}")
    if magic == _OLD_MAGIC:
        raise _fail(path, "built by Go older than 1.16, whose format is not supported")
    version = _MAGICS[magic]
    min_lc, ptr_size = data[6], data[7]
    if data[4] or data[5] or min_lc not in (1, 2, 4) or ptr_size not in (4, 8):
        raise _fail(path, "bad header")
    word = endian + ("I" if ptr_size == 4 else "Q")
    nwords = 7 if version == "1.16" else 8
    if len(data) < 8 + nwords * ptr_size:
        raise _fail(path, "too short for a header")
    words = struct.unpack_from(endian + word[1] * nwords, data, 8)
    nfunc = words[0]
    funcname_off, pcln_off = (words[2], words[6]) if version == "1.16" else (words[3], words[7])
    if not 0 < funcname_off <= len(data) or not 0 < pcln_off <= len(data):
        raise _fail(path, "table offsets outside the section")

    field = word if version == "1.16" else endian + "I"
    field_size = struct.calcsize(field)
    # Checked before the table is unpacked: nfunc comes from the file.
    if nfunc * 2 + 1 > (len(data) - pcln_off) // field_size:
        raise _fail(path, f"{nfunc} functions do not fit in the section")
    functab = struct.unpack_from(endian + field[1] * (2 * nfunc + 1), data, pcln_off)
    base = 0 if version == "1.16" else text_start(_Header(endian, ptr_size, nfunc, pcln_off, functab[0]))
    entry_size = ptr_size if version == "1.16" else 4
    name_at = struct.Struct(endian + "i")

    # _func.flag (runtime/runtime2.go), after 7 u32 fields (1.18) or 8 (1.20+: startLine) and funcID.
    flag_at = {"1.18": 4 + 4 + 7 * 4 + 1, "1.20": 4 + 4 + 8 * 4 + 1}.get(version)
    functions: list[GoFunction] = []
    first_of: dict[str, int] = {}  # name -> index in functions
    for i in range(nfunc):
        entry, next_entry = functab[2 * i] + base, functab[2 * i + 2] + base
        if next_entry < entry:
            raise _fail(path, f"function {i} starts after the next one")
        func = pcln_off + functab[2 * i + 1]
        if func + entry_size + 4 > len(data):
            raise _fail(path, f"function {i} has its record outside the section")
        name_off = name_at.unpack_from(data, func + entry_size)[0]
        start = funcname_off + name_off
        if name_off < 0 or start >= len(data):
            raise _fail(path, f"function {i} has its name outside the section")
        stop = data.find(b"\0", start, start + MAX_NAME)
        if stop < 0:
            raise _fail(path, f"function {i} has an unterminated name")
        name = data[start:stop].decode(errors="replace")
        asm = flag_at is not None and func + flag_at < len(data) and data[func + flag_at] & _FLAG_ASM
        twin = first_of.get(name)
        if twin is None:
            first_of[name] = len(functions)
        elif functions[twin].asm and not asm:
            # The assembly body came first: it is NAME.abi0, this wrapper NAME.
            functions[twin] = replace(functions[twin], name=name + ".abi0")
        else:
            name += ".abi0"
        functions.append(GoFunction(name, entry, next_entry - entry, bool(asm)))
    return functions
