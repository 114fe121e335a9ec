"""Functions of an ELF file: names (C++ demangled), addresses, machine code,
and matching what the user typed against them."""

import difflib
import fnmatch
from dataclasses import dataclass
from functools import cached_property

from elftools.common.exceptions import ELFError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from . import _native
from .errors import CoralError, NotFound

MAX_FUNCTIONS = 64
_WILDCARD = set("*?[")


@dataclass(frozen=True)
class Function:
    symbol: str   # the name in the symbol table (mangled for C++)
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

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @cached_property
    def is_go(self) -> bool:
        return any(self._elf.get_section_by_name(s) is not None
                   for s in (".go.buildinfo", ".gopclntab", ".note.go.buildid"))

    @cached_property
    def functions(self) -> list[Function]:
        raw: dict[str, tuple[int, int]] = {}
        for section_name in (".symtab", ".dynsym"):
            section = self._elf.get_section_by_name(section_name)
            if section is None:
                continue
            for sym in section.iter_symbols():
                if (sym["st_info"]["type"] in ("STT_FUNC", "STT_GNU_IFUNC")
                        and sym["st_shndx"] != "SHN_UNDEF" and sym["st_value"] and sym.name):
                    raw.setdefault(sym.name, (sym["st_value"], sym["st_size"]))
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
        for section in self._elf.iter_sections():
            start = section["sh_addr"]
            if (section["sh_flags"] & SH_FLAGS.SHF_EXECINSTR and section["sh_type"] == "SHT_PROGBITS"
                    and start <= fn.address < start + section["sh_size"]):
                self._file.seek(section["sh_offset"] + fn.address - start)
                return self._file.read(fn.size)
        raise CoralError(f"no code for {fn.name} in {self.path}")

    def ret_offsets(self, fn: Function) -> list[int]:
        offsets = _native.ret_offsets(self.code(fn), fn.address)
        if not offsets:
            raise CoralError(f"found no RET instruction in {fn.name} ({self.path}); "
                             "use --no-ret to probe entries only")
        return offsets

    def match(self, pattern: str, *, limit: int = MAX_FUNCTIONS) -> list[Function]:
        """Functions named by `pattern`: exact name, symbol or signature, or a wildcard."""
        if _WILDCARD & set(pattern):
            found = [f for f in self.functions
                     if fnmatch.fnmatchcase(f.name, pattern) or fnmatch.fnmatchcase(f.symbol, pattern)]
        else:
            found = [f for f in self.functions if pattern in (f.name, f.symbol, f.full_name)]
            if not found and "::" in pattern:
                # `ns::Class::method` when every overload is shown by signature
                found = [f for f in self.functions if f.full_name.split("(")[0] == pattern]
        if not found:
            raise NotFound(self._unknown_message(pattern))
        found.sort(key=lambda f: f.name)
        if len(found) > limit:
            listed = ", ".join(f.name for f in found[:limit])
            raise CoralError(f"'{pattern}' matches {len(found)} functions, more than the cap of "
                             f"{limit}: {listed}, ... and {len(found) - limit} more; narrow the pattern")
        return found

    def _unknown_message(self, pattern: str) -> str:
        names = sorted({f.name for f in self.functions})
        close = difflib.get_close_matches(pattern, names, n=5, cutoff=0.6)
        if not close:
            lowered = pattern.lower().strip("*?")
            close = [n for n in names if lowered and lowered in n.lower()][:5]
        where = f"unknown function '{pattern}' in {self.path}"
        if not self.functions:
            return f"{where}: it has no symbol table (stripped?)"
        return f"{where}; did you mean: {', '.join(close)}?" if close else where
