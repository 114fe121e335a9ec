"""Which file holds a function the user named: the one they pinned with
--binary, or else the program and then the libraries it loads.

Lookup order, for each pattern on its own:
- the program first: anything it defines (exact name or wildcard) is the
  answer, as ld.so would bind a call to it, and a wildcard on the program
  never drags in libc;
- else the libraries: the matches must all be in one of them; matches in
  several files (one name defined twice, or a wildcard spread over files)
  is an error naming the files, resolved with --binary;
- else "unknown function", with suggestions from every file searched.
"""

import os
from contextlib import ExitStack
from dataclasses import dataclass

from .errors import CoralError, NotFound
from .symbols import Function, SymbolTable, with_suggestions
from .targets import Target, display_path, file_identity

_WILDCARD = set("*?[")


@dataclass(frozen=True)
class Located:
    path: str            # the file to attach to (as Target.path / Target.libraries name it)
    function: Function


def find_functions(target: Target, patterns: list[str], *, limit: int) -> list[Located]:
    """The functions `patterns` name in `target`, each (file, symbol) once, in
    pattern order then table order. `limit`: the cap on one pattern's matches
    in a file (SymbolTable.match)."""
    with _Files(target) as files:
        found: dict[tuple[str, str], Located] = {}
        for pattern in patterns:
            for located in _find(files, pattern, limit):
                found.setdefault((located.path, located.function.symbol), located)
        return list(found.values())


def list_functions(target: Target, pattern: str) -> list[Located]:
    """Every function `pattern` names in the program and in each library, for
    listing (no file wins over another, no cap): program first, each file's
    by name. `*` lists all (none is no error); any other pattern matching
    nothing anywhere is NotFound."""
    with _Files(target) as files:
        found = []
        for path, table in files.all():
            functions = sorted(table.functions, key=lambda f: f.name) if pattern == "*" else table.matching(pattern)
            found += [Located(path, fn) for fn in functions]
        if not found and pattern != "*":
            raise NotFound(files.unknown_message(pattern))
        return found


def _find(files: "_Files", pattern: str, limit: int) -> list[Located]:
    target = files.target
    if not target.libraries or files.program.matching(pattern):
        shown = display_path(target.path, target.pid)
        return [Located(target.path, fn) for fn in files.program.match(pattern, limit=limit, shown=shown)]
    hits = [(path, table) for path, table in files.libraries() if table.matching(pattern)]
    if not hits:
        raise NotFound(files.unknown_message(pattern))
    if len(hits) > 1:
        shown = ", ".join(display_path(path, target.pid) for path, _ in hits)
        what = f"'{pattern}' matches functions in" if _WILDCARD & set(pattern) else f"{pattern} is defined in"
        raise CoralError(f"{what} {len(hits)} objects loaded by {files.loader}: {shown}; pick one with --binary")
    path, table = hits[0]
    return [Located(path, fn) for fn in table.match(pattern, limit=limit, shown=display_path(path, target.pid))]


class _Files:
    """The program's symbol table, and its libraries' opened on first need,
    each file once (two paths of one file: the first), all closed at the end."""

    def __init__(self, target: Target):
        self.target = target
        self._stack = ExitStack()
        self._libraries: list[tuple[str, SymbolTable]] | None = None

    def __enter__(self) -> "_Files":
        # The program's own errors (unreadable, not ELF) are the user's to see.
        self.program = self._stack.enter_context(SymbolTable(self.target.path))
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    @property
    def loader(self) -> str:
        t = self.target
        return f"pid {t.pid}" if t.pid is not None and t.path == f"/proc/{t.pid}/exe" else os.path.basename(t.path)

    def libraries(self) -> list[tuple[str, SymbolTable]]:
        if self._libraries is None:
            self._libraries = []
            seen = {file_identity(self.target.path)}
            for path in self.target.libraries:
                identity = file_identity(path)
                if identity is None or identity in seen:
                    continue
                seen.add(identity)
                table = _readable(path)
                if table is not None:
                    self._stack.callback(table.close)
                    self._libraries.append((path, table))
        return self._libraries

    def all(self) -> list[tuple[str, SymbolTable]]:
        return [(self.target.path, self.program), *self.libraries()]

    def unknown_message(self, pattern: str) -> str:
        """What every file searched says of `pattern`: an IFUNC (the first file
        defining it so), else unknown, with suggestions from all of them."""
        for path, table in self.all():
            if pattern in table.ifuncs:
                return table.ifunc_message(pattern, shown=display_path(path, self.target.pid))
        libraries = self.libraries()
        if not libraries:
            return self.program.unknown_message(pattern)
        n = len(libraries)
        loaded = f"the {n} librar{'y' if n == 1 else 'ies'} it loads"
        where = f"unknown function '{pattern}' in {self.target.display} (and {loaded})"
        # Stripped libraries are the rule (.dynsym only): said when it is true of
        # every file searched, else of the program alone.
        if all(table.names_only_exported for _, table in self.all()):
            known = ("only the functions they export (.dynsym) are known"
                     if any(table.functions for _, table in self.all()) else "no names are left")
            where = f"{where}: all {n + 1} are stripped (no .symtab), {known}"
        elif self.program.names_only_exported:
            known = ("only the functions it exports (.dynsym) are known" if self.program.functions
                     else "it exports none: only its libraries' names were searched")
            where = f"{where}; the program is stripped (no .symtab): {known}"
        return with_suggestions(where, pattern, (fn.name for _, table in self.all() for fn in table.functions))


def _readable(path: str) -> SymbolTable | None:
    """A library's symbol table, or None for what has none to give (not ELF,
    gone, a crafted table): it is skipped, the program and others still count."""
    try:
        table = SymbolTable(path)
    except CoralError:
        return None
    try:
        table.functions
    except Exception:  # noqa: BLE001 - pyelftools raises many kinds on a malformed file
        table.close()
        return None
    return table
