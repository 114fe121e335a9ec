"""Run exactly what was checked: a script and the local modules it imports
are copied, byte for byte, into a directory the agent owns; the import check
and Deno both read that copy, by a path the agent chose. Only what the
import graph names is copied, one round of `deno info` at a time, so a
script in a crowded directory (or /tmp) costs no more than its own files."""

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import CoralError

MAX_FILES = 256
MAX_BYTES = 8 << 20
MAX_ROUNDS = 64
SCRIPT_SUFFIXES = (".ts", ".mts", ".tsx", ".js", ".mjs", ".jsx")


@dataclass(frozen=True)
class ScriptCopy:
    source_dir: Path      # the script's own directory, as the user named it
    directory: Path       # the agent's private copy
    entry: Path           # the copied script inside it, under its own name

    @property
    def entry_url(self) -> str:
        """What Deno is given, for the check and for the run alike: a URL
        with every special character escaped, so both read the same file."""
        return self.entry.as_uri()


def start_copy(script: Path, directory: Path, mode: int, gid: int) -> tuple[ScriptCopy, bytes]:
    """Copies the script itself; its code is returned for the record."""
    if script.suffix not in SCRIPT_SUFFIXES:
        raise CoralError(f"script refused: {script.name} is not a TypeScript or JavaScript file "
                         f"({', '.join(SCRIPT_SUFFIXES)})")
    source = script.resolve()
    directory.mkdir(mode=0o750)
    os.chown(directory, 0, gid)
    copy = ScriptCopy(source.parent, directory, directory / source.name)
    code = _read_regular(source)
    _write(copy.entry, code, mode, gid)
    return copy, code


def copy_missing(copy: ScriptCopy, missing_urls: list[str], copied: dict[str, int], mode: int, gid: int) -> None:
    """Copies the local modules the graph named but the copy lacks. Refuses
    anything outside the script's directory, symbolic links and specials."""
    for url in missing_urls:
        parsed = urlparse(url)
        target = Path(unquote(parsed.path))
        try:
            relative = target.relative_to(copy.directory)
            if ".." in relative.parts:  # Deno normalises URLs; the copy must not depend on it
                raise ValueError
        except ValueError:
            raise CoralError(f"script refused: it imports {target}, outside its own directory; "
                             "scripts may import only @coral/sdk and files of their own directory") from None
        source = copy.source_dir / relative
        data = _read_regular(source, below=copy.source_dir)
        copied[str(relative)] = len(data)
        if len(copied) > MAX_FILES or sum(copied.values()) > MAX_BYTES:
            raise CoralError(f"script refused: it imports more than {MAX_FILES} files or "
                             f"{MAX_BYTES >> 20} MiB from its directory")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        for parent in target.parents:
            if parent == copy.directory:
                break
            os.chown(parent, 0, gid)
        _write(target, data, mode, gid)


def _read_regular(path: Path, below: Path | None = None) -> bytes:
    """The bytes of a regular file, no symbolic link anywhere below `below`."""
    if below is not None:
        walked = below
        for part in path.relative_to(below).parts:
            walked = walked / part
            try:
                st = walked.lstat()
            except FileNotFoundError:
                raise CoralError(f"script refused: it imports {walked}, which does not exist") from None
            if stat.S_ISLNK(st.st_mode):
                raise CoralError(f"script refused: it imports {walked}, a symbolic link; scripts may "
                                 "import only files of their own directory")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise CoralError(f"script refused: cannot read {path}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CoralError(f"script refused: {path} is not a regular file")
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise CoralError(f"script refused: {path} is larger than {MAX_BYTES >> 20} MiB")
    return data


def _write(path: Path, data: bytes, mode: int, gid: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chown(path, 0, gid)
