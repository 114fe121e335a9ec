"""Where coral keeps things."""

import os
from pathlib import Path


def coral_home() -> Path:
    return Path(os.environ.get("CORAL_HOME") or Path.home() / ".coral")


def default_db_path() -> Path:
    return coral_home() / "agent.duckdb"


def bpf_dir() -> Path:
    """The BPF sources (bpf/ at the project root, beside the package)."""
    override = os.environ.get("CORAL_BPF_DIR")
    return Path(override) if override else Path(__file__).resolve().parent.parent / "bpf"
