"""Where coral keeps things."""

import os
from pathlib import Path


def coral_home() -> Path:
    return Path(os.environ.get("CORAL_HOME") or Path.home() / ".coral")


def agent_socket(home: Path) -> Path:
    return home / "agent.sock"


def live_agent(home: Path) -> Path | None:
    """The socket of the agent serving this home, if one is running (something
    accepts on $CORAL_HOME/agent.sock): the commands that would otherwise open
    its DuckDB file go through it instead. A stale socket file is no agent.
    Here, not in api/, so that a command without an agent never imports gRPC."""
    path = agent_socket(home)
    return path if accepts(path) else None


def colony_socket(home: Path) -> Path:
    return home / "colony.sock"


def accepts(path: Path) -> bool:
    """Something listens on the Unix socket at `path` (a stale file is nobody)."""
    import socket

    if not path.is_socket():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(os.fspath(path))
        except OSError:
            return False
    return True


def default_db_path() -> Path:
    return coral_home() / "agent.duckdb"


def bpf_dir() -> Path:
    """The BPF sources (bpf/ at the project root, beside the package)."""
    override = os.environ.get("CORAL_BPF_DIR")
    return Path(override) if override else Path(__file__).resolve().parent.parent / "bpf"
