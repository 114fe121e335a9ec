"""The files a binary loads: its interpreter and the libraries it links
(DT_NEEDED, transitively), found the way the dynamic loader finds them.
LD_LIBRARY_PATH is searched only for a given environment (a command coral
starts): without one it belongs to a process we do not have, so a library
found only through it is not counted."""

import os
import re
import subprocess
from collections.abc import Mapping
from functools import lru_cache

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile
from elftools.elf.segments import InterpSegment

MAX_LIBRARIES = 512  # far past real programs; bounds a crafted dependency graph


def linked_files(path: str, *, env: Mapping[str, str] | None = None) -> list[str]:
    """`path`'s interpreter and libraries, in load order; an unreadable or non-ELF
    file links nothing. `env`: the environment the program will run with, for
    its LD_LIBRARY_PATH."""
    st = os.stat(path)
    return list(_linked_files(os.path.realpath(path), _library_path(env), st.st_dev, st.st_ino, st.st_mtime_ns))


def _library_path(env: Mapping[str, str] | None) -> tuple[str, ...]:
    value = (env or {}).get("LD_LIBRARY_PATH", "")
    # ld.so: colons or semicolons; an empty entry is the working directory.
    return tuple(d or "." for d in re.split("[:;]", value)) if value else ()


@lru_cache(maxsize=64)
def _linked_files(path: str, library_path: tuple[str, ...], _dev: int, _ino: int,
                  _mtime_ns: int) -> tuple[str, ...]:
    main = _read(path)
    if main is None:
        return ()
    main.origin = os.path.dirname(path)
    found: dict[str, None] = {}
    if main.interp:
        found[main.interp] = None
    # Breadth first, and a name already loaded is not searched again: ld.so
    # does both, so two objects needing `libz.so.1` share the first one found.
    loaded: set[str] = set()
    queue = [(path, main)]
    while queue and len(found) < MAX_LIBRARIES:
        obj_path, obj = queue.pop(0)
        for name in obj.needed:
            if name in loaded:
                continue
            loaded.add(name)
            lib = _find(name, obj_path, obj, main, library_path)
            if lib is not None and lib not in found:
                found[lib] = None
                info = _read(lib)
                if info is not None:
                    loaded.update(info.soname)
                    queue.append((lib, info))
    return tuple(found)


class _Elf:
    def __init__(self, elf: ELFFile):
        self.kind = (elf.elfclass, elf["e_machine"])
        self.needed: list[str] = []
        self.rpath: list[str] = []
        self.runpath: list[str] = []
        self.interp: str | None = None
        self.soname: list[str] = []
        self.origin = ""
        for segment in elf.iter_segments():
            if isinstance(segment, InterpSegment):
                self.interp = os.path.realpath(segment.get_interp_name())
            elif isinstance(segment, DynamicSegment):
                for tag in segment.iter_tags():
                    if tag.entry.d_tag == "DT_NEEDED":
                        self.needed.append(tag.needed)
                    elif tag.entry.d_tag == "DT_SONAME":
                        self.soname.append(tag.soname)
                    elif tag.entry.d_tag == "DT_RPATH":
                        self.rpath += tag.rpath.split(":")
                    elif tag.entry.d_tag == "DT_RUNPATH":
                        self.runpath += tag.runpath.split(":")


def _read(path: str) -> _Elf | None:
    try:
        with open(path, "rb") as f:
            return _Elf(ELFFile(f))
    except (OSError, ELFError, ValueError):
        return None


def _expand(directory: str, origin: str, elfclass: int) -> str:
    return directory.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) \
        .replace("$LIB", "lib64" if elfclass == 64 else "lib").replace("${LIB}", "lib64" if elfclass == 64 else "lib")


def _find(name: str, obj_path: str, obj: _Elf, main: _Elf, library_path: tuple[str, ...]) -> str | None:
    if "/" in name:
        return _usable(name, main)
    origin = os.path.dirname(obj_path)
    elfclass = main.kind[0]
    # ld.so(8): DT_RPATH (of the object, then of the program) unless the object
    # has DT_RUNPATH; LD_LIBRARY_PATH; DT_RUNPATH; ld.so.cache; default dirs.
    # An object with DT_RUNPATH has its DT_RPATH ignored, the program included;
    # each $ORIGIN is the directory of the object that names it (the program's
    # for LD_LIBRARY_PATH).
    dirs = []
    if not obj.runpath:
        dirs += [_expand(d, origin, elfclass) for d in obj.rpath]
        if obj is not main and not main.runpath:
            dirs += [_expand(d, main.origin, elfclass) for d in main.rpath]
    dirs += [_expand(d, main.origin, elfclass) for d in library_path]
    dirs += [_expand(d, origin, elfclass) for d in obj.runpath]
    for directory in dirs:
        found = _usable(os.path.join(directory, name), main)
        if found:
            return found
    for candidate in _ld_cache().get(name, ()):
        found = _usable(candidate, main)
        if found:
            return found
    defaults = ("/lib64", "/usr/lib64") if elfclass == 64 else ()
    for directory in (*defaults, "/lib", "/usr/lib"):
        found = _usable(os.path.join(directory, name), main)
        if found:
            return found
    return None


def _usable(path: str, main: _Elf) -> str | None:
    """The real path of an ELF file for the program's class and machine."""
    if not os.path.isfile(path):
        return None
    info = _read(path)
    return os.path.realpath(path) if info is not None and info.kind == main.kind else None


@lru_cache(maxsize=1)
def _ld_cache() -> dict[str, tuple[str, ...]]:
    """ld.so.cache as `ldconfig -p` prints it: soname -> paths, in cache order."""
    for ldconfig in ("/sbin/ldconfig", "/usr/sbin/ldconfig"):
        if os.access(ldconfig, os.X_OK):
            break
    else:
        return {}
    try:
        out = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    cache: dict[str, list[str]] = {}
    for line in out.splitlines()[1:]:
        name, sep, path = line.strip().partition(" => ")
        if sep:
            cache.setdefault(name.split(" (")[0], []).append(path)
    return {name: tuple(paths) for name, paths in cache.items()}
