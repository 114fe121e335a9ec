"""Functions of an ELF file: names (C++ demangled), addresses, machine code,
and matching what the user typed against them."""

import difflib
import fnmatch
import os
import struct
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from elftools.common.exceptions import DWARFError, ELFError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from . import _native, gopclntab
from .errors import CoralError, NotFound

MAX_FUNCTIONS = 64
_WILDCARD = set("*?[")
_DW_LANG_GO = 0x16
# Where C++ puts the definitions of methods and namespaced functions.
_SCOPES = {"DW_TAG_namespace", "DW_TAG_class_type", "DW_TAG_structure_type", "DW_TAG_union_type",
           "DW_TAG_module"}
_TYPES = {"DW_TAG_base_type", "DW_TAG_pointer_type", "DW_TAG_typedef", "DW_TAG_structure_type"}
# pyelftools on malformed DWARF: its own errors, or whatever a bad offset or form causes.
# pyelftools on a crafted file: any of these (it asserts on some forms), never a crash of coral.
_DWARF_ERRORS = (ELFError, DWARFError, KeyError, IndexError, ValueError, NotImplementedError, AttributeError,
                 AssertionError, MemoryError)
# pyelftools reads (and decompresses) a whole section at once: bounded before it does.
MAX_DWARF_SECTION = 1 << 30
# Symbol types (pyelftools would name STT_GNU_IFUNC by the generic STT_LOOS, 10).
_STT_FUNC, _STT_GNU_IFUNC = 2, 10
_SHN_UNDEF = 0
# Elf32_Sym / Elf64_Sym: struct layout, and where (name, info, shndx, value, size) sit in it.
_SYMBOL_LAYOUTS = {32: ("IIIBBH", (0, 3, 5, 1, 2)), 64: ("IBBHQQ", (0, 1, 3, 4, 5))}
# .gnu.version: a symbol's version index; this bit marks a non-default
# (hidden, `name@VERSION`) version, kept for old binaries only.
_VERSYM_HIDDEN = 0x8000


class TooManyFunctions(CoralError):
    """A pattern matched more functions than its cap. The message ends in
    "narrow the pattern"; the command line adds its own way out (--max-functions)."""


@dataclass(frozen=True)
class _Symbol:
    address: int
    size: int
    ifunc: bool    # STT_GNU_IFUNC: the address is the resolver's, run once by ld.so
    hidden: bool   # a non-default version (`memcpy@GLIBC_2.2.5` beside `memcpy@@GLIBC_2.14`)


@dataclass(frozen=True)
class Function:
    symbol: str   # the name in the symbol table (mangled for C++), or in .gopclntab
    name: str     # what people call it: demangled, parameters dropped
    full_name: str  # demangled with parameters (== name for C and Go)
    address: int
    size: int


class SymbolTable:
    def __init__(self, path: str):
        self.path = path
        try:
            self._file = open(path, "rb")
            self._elf = ELFFile(self._file)
        except (OSError, ELFError) as e:
            raise CoralError(f"cannot read ELF file {path}: {e}") from None
        self._subprograms: dict[int, tuple[dict, bool]] = {}  # unit offset -> (entry address -> DIE, typed)

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @cached_property
    def is_go(self) -> bool:
        return any(s in self._sections_by_name
                   for s in (".go.buildinfo", ".gopclntab", ".note.go.buildid"))

    @cached_property
    def _symtab(self) -> dict[str, _Symbol]:
        return self._symbols(".symtab")

    @property
    def stripped(self) -> bool:
        """No function in .symtab (`strip`, `go build -ldflags=-s`)."""
        return not self._symtab

    def _symbols(self, section_name: str) -> dict[str, _Symbol]:
        """Name -> the symbol of each function (or IFUNC) the table defines.
        A name defined in several versions is its default one, as ld.so binds
        a new link to it; a hidden version only where no default one exists.
        Read with struct, not pyelftools (~40 µs a symbol: 1.5 s for libLLVM)."""
        found: dict[str, _Symbol] = {}
        section = self._sections_by_name.get(section_name)
        if (section is None or section["sh_type"] not in ("SHT_SYMTAB", "SHT_DYNSYM")
                or not 0 < section["sh_link"] < len(self._sections)):
            return found
        strings = self._section_bytes(self._sections[section["sh_link"]])
        layout, fields = _SYMBOL_LAYOUTS[self._elf.elfclass]
        entry = struct.Struct(("<" if self._elf.little_endian else ">") + layout)
        data = self._section_bytes(section)
        versions = self._versym() if section_name == ".dynsym" else None
        for index, values in enumerate(entry.iter_unpack(data[:len(data) - len(data) % entry.size])):
            name_at, info, shndx, address, size = (values[i] for i in fields)
            kind = info & 0xF
            if kind not in (_STT_FUNC, _STT_GNU_IFUNC) or shndx == _SHN_UNDEF or not address:
                continue
            end = strings.find(b"\0", name_at)
            name = strings[name_at:end].decode(errors="replace") if end > name_at else ""
            if versions is not None:
                hidden = index < len(versions) and bool(versions[index] & _VERSYM_HIDDEN)
            else:
                # .symtab spells versions in the name: `name@@VERSION` (default), `name@VERSION`.
                name, at, version = name.partition("@")
                hidden = bool(at) and not version.startswith("@")
            if not name:
                continue
            previous = found.get(name)
            if previous is None or (previous.hidden and not hidden):
                found[name] = _Symbol(address, size, kind == _STT_GNU_IFUNC, hidden)
        return found

    def _section_bytes(self, section) -> bytes:
        """A section's bytes, as many as the file holds (its size is whatever the header says)."""
        if section["sh_type"] == "SHT_NOBITS":
            return b""
        size = min(section["sh_size"], max(self._file_size - section["sh_offset"], 0))
        return os.pread(self._file.fileno(), size, section["sh_offset"])

    @cached_property
    def _sections(self) -> list:
        """Every section, made once: pyelftools parses the headers again on each
        walk over them, and a .gnu.hash section's whole table (0.05 s for libLLVM)."""
        return list(self._elf.iter_sections())

    @cached_property
    def _sections_by_name(self) -> dict:
        return {section.name: section for section in self._sections}

    @cached_property
    def _file_size(self) -> int:
        return os.fstat(self._file.fileno()).st_size

    def _versym(self) -> array | None:
        """.gnu.version: one version index per .dynsym entry, or None without it."""
        for section in self._sections:
            if section["sh_type"] == "SHT_GNU_versym":
                data = self._section_bytes(section)
                versions = array("H", data[:len(data) & ~1])
                if self._elf.little_endian != (sys.byteorder == "little"):
                    versions.byteswap()
                return versions
        return None

    @cached_property
    def _table(self) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
        """(name -> (address, size) of every function, name -> address of every
        IFUNC): .symtab first, then Go's table when stripped, then .dynsym."""
        merged: dict[str, _Symbol] = {}
        tables = [self._symtab]
        if not self._symtab and self.is_go:
            # The runtime's own table survives stripping. bcc cannot look its
            # names up (it reads .symtab): these are attached by address.
            tables.append({fn.name: _Symbol(fn.address, fn.size, False, False)
                           for fn in gopclntab.read(self._elf, self.path)})
        tables.append(self._symbols(".dynsym"))
        for table in tables:
            for name, sym in table.items():
                previous = merged.get(name)
                if previous is None or (previous.hidden and not sym.hidden):
                    merged[name] = sym
        functions = {name: (sym.address, sym.size) for name, sym in merged.items() if not sym.ifunc}
        ifuncs = {name: sym.address for name, sym in merged.items() if sym.ifunc}
        return functions, ifuncs

    @property
    def ifuncs(self) -> dict[str, int]:
        """IFUNCs by name (their resolvers' addresses): never offered as functions."""
        return self._table[1]

    @cached_property
    def functions(self) -> list[Function]:
        raw = self._table[0]
        names = list(raw)
        demangled = _native.demangle(names)
        short_counts: dict[str, int] = {}
        for d in demangled:
            if d is not None:
                short_counts[d[1]] = short_counts.get(d[1], 0) + 1
        functions = []
        for symbol, dm in zip(names, demangled):
            address, size = raw[symbol]
            if dm is None:
                functions.append(Function(symbol, symbol, symbol, address, size))
            else:
                full, short = dm
                # Overloads share a short name: show the full signature then.
                name = short if short_counts[short] == 1 else full
                functions.append(Function(symbol, name, full, address, size))
        return functions

    def code(self, fn: Function) -> bytes:
        """The function's machine code, from the executable section holding it."""
        for start, size, offset in self._executable_sections:
            if start <= fn.address < start + size:
                self._file.seek(offset + fn.address - start)
                return self._file.read(min(fn.size, start + size - fn.address))
        raise CoralError(f"no code for {fn.name} in {self.path}")

    def executable_sections(self) -> list[tuple[int, bytes]]:
        """(address, bytes) of every section of code."""
        found = []
        for start, size, offset in self._executable_sections:
            self._file.seek(offset)
            found.append((start, self._file.read(size)))
        return found

    @cached_property
    def _executable_sections(self) -> list[tuple[int, int, int]]:
        """(address, size, file offset): read once, not once per function (2,000 functions:
        pyelftools parses every section header again on each walk). A size is cut at
        the file's end: a crafted header's would be allocated whole by a read."""
        return [(s["sh_addr"], min(s["sh_size"], max(self._file_size - s["sh_offset"], 0)), s["sh_offset"])
                for s in self._sections
                if s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR and s["sh_type"] == "SHT_PROGBITS"]

    def file_offset(self, address: int) -> int:
        """Where the byte at virtual `address` is in the file: uprobes are
        placed by file offset (bcc converts its `addr=`; uprobe_multi links take
        offsets as they are)."""
        for segment in self._load_segments:
            start = segment["p_vaddr"]
            if start <= address < start + segment["p_filesz"]:
                return address - start + segment["p_offset"]
        raise CoralError(f"address {address:#x} is in no loaded segment of {self.path}")

    @cached_property
    def _load_segments(self) -> list:
        return [s for s in self._elf.iter_segments() if s["p_type"] == "PT_LOAD" and s["p_flags"] & 1]  # PF_X

    def ret_offsets(self, fn: Function) -> list[int]:
        offsets = _native.ret_offsets(self.code(fn), fn.address)
        if not offsets:
            raise CoralError(f"found no RET instruction in {fn.name} ({self.path}); "
                             "use --no-ret to probe entries only")
        return offsets

    def returns_value(self, fn: Function) -> bool | None:
        """Whether `fn` returns a value (else its `ret` is whatever the register
        held), from DWARF; None when unknown: no DWARF for it, DWARF without
        types (-g1, Rust's line-tables-only), or unreadable."""
        try:
            found = self._subprogram_at(fn.address)
            return None if found is None else _has_result(*found)
        except _DWARF_ERRORS:
            return None

    @cached_property
    def _dwarf(self):
        if not self._elf.has_dwarf_info(strict=True) or not self._dwarf_sections_in_bounds():
            return None
        try:
            # follow_links: never open the files a binary's debug links name.
            return self._elf.get_dwarf_info(follow_links=False)
        except _DWARF_ERRORS:
            return None

    def _dwarf_sections_in_bounds(self) -> bool:
        """Every DWARF section within the file, and not more than MAX_DWARF_SECTION
        once decompressed: pyelftools would allocate whatever a header says."""
        file_size = self._file_size
        for section in self._sections:
            if not section.name.startswith((".debug_", ".zdebug_")) or section["sh_type"] == "SHT_NOBITS":
                continue
            if section["sh_offset"] + section["sh_size"] > file_size or section.data_size > MAX_DWARF_SECTION:
                return False
        return True

    def _subprogram_at(self, address: int):
        """(DIE, unit has types) of the function entered at `address`, parsing
        only the unit that holds it: found by .debug_aranges (GCC), else by the
        units' own address ranges (Go and clang write no aranges)."""
        dwarf = self._dwarf
        if dwarf is None:
            return None
        aranges = self._aranges
        offset = aranges.cu_offset_at_addr(address) if aranges is not None and aranges.entries else None
        if offset is not None:
            candidates = [offset]
        else:
            candidates = [off for off, ranges in self._unit_ranges if any(lo <= address < hi for lo, hi in ranges)]
        for offset in candidates:
            subprograms, typed = self._unit_subprograms(offset)
            if address in subprograms:
                return subprograms[address], typed
        return None

    @cached_property
    def _aranges(self):
        return self._dwarf.get_aranges()

    @cached_property
    def _unit_ranges(self) -> list[tuple[int, list[tuple[int, int]]]]:
        return [(cu.cu_offset, _die_ranges(self._dwarf, cu, cu.get_top_DIE(), 0)) for cu in self._dwarf.iter_CUs()]

    def _unit_subprograms(self, offset: int) -> tuple[dict, bool]:
        """Entry address -> subprogram DIE for one unit, and whether the unit
        describes types at all (without them a missing return type says
        nothing). Built once per unit."""
        if offset not in self._subprograms:
            cu = self._dwarf.get_CU_at(offset)
            top = cu.get_top_DIE()
            base = _attr(top, "DW_AT_low_pc") or 0
            found: dict = {}
            typed = False
            # Definitions sit at unit level or in C++/Rust scopes, never inside
            # another function's body: its locals and inlined calls are not read.
            pending = [top]
            while pending:
                for die in pending.pop().iter_children():
                    if die.tag == "DW_TAG_subprogram":
                        for lo, _ in _die_ranges(self._dwarf, cu, die, base):
                            found.setdefault(lo, die)
                    elif die.tag in _SCOPES:
                        pending.append(die)
                    typed = typed or die.tag in _TYPES
            self._subprograms[offset] = (found, typed)
        return self._subprograms[offset]

    def match(self, pattern: str, *, limit: int = MAX_FUNCTIONS, shown: str | None = None) -> list[Function]:
        """Functions named by `pattern`: exact name, symbol or signature, or a
        wildcard. `shown`: how errors name this file (default its path)."""
        found = self.matching(pattern)
        if not found:
            raise NotFound(self.ifunc_message(pattern, shown=shown) if pattern in self.ifuncs
                           else self.unknown_message(pattern, shown=shown))
        if len(found) > limit:
            listed = ", ".join(f.name for f in found[:min(limit, 8)])
            raise TooManyFunctions(f"'{pattern}' matches {len(found)} functions, more than the cap of "
                                   f"{limit}: {listed}, ... and {len(found) - min(limit, 8)} more; "
                                   "narrow the pattern")
        return found

    def matching(self, pattern: str) -> list[Function]:
        """`match` without its errors: [] when nothing matches, and no cap. A
        miss costs no suggestions (a library searched in passing)."""
        if _WILDCARD & set(pattern):
            found = [f for f in self.functions
                     if fnmatch.fnmatchcase(f.name, pattern) or fnmatch.fnmatchcase(f.symbol, pattern)]
        else:
            found = [f for f in self.functions if pattern in (f.name, f.symbol, f.full_name)]
            if not found and "::" in pattern:
                # `ns::Class::method` when every overload is shown by signature
                found = [f for f in self.functions if f.full_name.split("(")[0] == pattern]
        found.sort(key=lambda f: f.name)
        return found

    @property
    def names_only_exported(self) -> bool:
        """Stripped (no .symtab) and not Go: only .dynsym's names are left."""
        return self.stripped and not self.is_go

    def unknown_message(self, pattern: str, *, shown: str | None = None) -> str:
        where = f"unknown function '{pattern}' in {shown or self.path}"
        if self.names_only_exported:
            known = "only the functions it exports (.dynsym) are known" if self.functions else "no names are left"
            where = f"{where}: it is stripped (no .symtab), {known}"
        elif not self.functions:
            where = f"{where}: it has no symbol table (stripped?)"
        return with_suggestions(where, pattern, (f.name for f in self.functions))

    def ifunc_message(self, name: str, *, shown: str | None = None) -> str:
        """`name` is an IFUNC here: its symbol's code is the resolver ld.so
        runs once, at load, to pick an implementation; a probe there sees
        nothing of the calls. Names the implementations when the table has them."""
        message = (f"{name} in {shown or self.path} is an IFUNC: its symbol is the resolver that picks an "
                   "implementation at load time; probe an implementation by its own name")
        implementations = sorted(f.name for f in self.functions if f.name.startswith((f"__{name}_", f"{name}_")))
        if implementations:
            more = f" and {len(implementations) - 5} more" if len(implementations) > 5 else ""
            return f"{message}: {', '.join(implementations[:5])}{more}"
        if self.names_only_exported:
            return f"{message} (the file is stripped, no .symtab: its implementations have no names here)"
        return f"{message} (none is named __{name}_* or {name}_* in its symbol table)"


def with_suggestions(message: str, pattern: str, names: Iterable[str]) -> str:
    """`message`, then "; did you mean: ...?" with up to 5 of `names` close to `pattern`."""
    names = sorted(set(names))
    close = difflib.get_close_matches(pattern, names, n=5, cutoff=0.6)
    if not close:
        lowered = pattern.lower().strip("*?")
        close = [n for n in names if lowered and lowered in n.lower()][:5]
    return f"{message}; did you mean: {', '.join(close)}?" if close else message


def _attr(die, name: str):
    value = die.attributes.get(name)
    return None if value is None else value.value


def _die_ranges(dwarf, cu, die, base: int) -> list[tuple[int, int]]:
    """[lo, hi) address ranges of a unit or function DIE: low_pc/high_pc
    (high_pc is a length unless it is an address), or DW_AT_ranges."""
    low = _attr(die, "DW_AT_low_pc")
    high = die.attributes.get("DW_AT_high_pc")
    if low is not None and high is not None:
        return [(low, high.value if high.form.startswith("DW_FORM_addr") else low + high.value)]
    ranges = die.attributes.get("DW_AT_ranges")
    if ranges is None:
        return []
    if die.tag == "DW_TAG_compile_unit" and low is not None:
        base = low
    found = []
    for entry in dwarf.range_lists().get_range_list_at_offset(ranges.value, cu=cu):
        if hasattr(entry, "base_address"):
            base = entry.base_address
        elif entry.is_absolute:
            found.append((entry.begin_offset, entry.end_offset))
        else:
            found.append((base + entry.begin_offset, base + entry.end_offset))
    return found


def _has_result(die, typed: bool) -> bool | None:
    """Go: results are formal parameters marked DW_AT_variable_parameter (its
    types live in a unit of their own). Others (C, C++, Rust): a function has
    a DW_AT_type unless it returns nothing, if its unit has types at all.
    Either may sit on the declaration (DW_AT_specification) or the abstract
    instance (DW_AT_abstract_origin) instead of the concrete DIE."""
    go = _attr(die.cu.get_top_DIE(), "DW_AT_language") == _DW_LANG_GO
    if not go and not typed:
        return None
    for _ in range(8):  # a chain of origins, bounded against a cycle
        if go:
            if any(child.tag == "DW_TAG_formal_parameter" and _attr(child, "DW_AT_variable_parameter")
                   for child in die.iter_children()):
                return True
        elif "DW_AT_type" in die.attributes:
            return True
        for link in ("DW_AT_abstract_origin", "DW_AT_specification"):
            if link in die.attributes:
                die = die.get_DIE_from_attribute(link)
                break
        else:
            return False
    return None
