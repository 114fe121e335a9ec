"""tracefs: where uprobe_events and tracepoint formats live."""

import os
import subprocess
from dataclasses import dataclass

from .errors import EnvironmentProblem, NotFound

TRACEFS = "/sys/kernel/tracing"


def ensure_mounted() -> None:
    """bcc needs tracefs for tracepoint ids and to remove uprobe events;
    minimal VMs boot without it mounted, so the agent mounts it itself."""
    if os.path.exists(os.path.join(TRACEFS, "events")):
        return
    result = subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise EnvironmentProblem(f"tracefs is not mounted at {TRACEFS} and mounting it failed: "
                                 f"{result.stderr.strip()}")


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    size: int
    signed: bool


def tracepoint_fields(category: str, name: str) -> list[Field]:
    """The integer fields of a tracepoint's record, past the common_* header."""
    path = os.path.join(TRACEFS, "events", category, name, "format")
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        raise NotFound(f"unknown tracepoint '{category}:{name}' (no {path})") from None
    fields = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("field:"):
            continue
        parts = dict(p.strip().split(":", 1) for p in line.split(";") if ":" in p)
        decl, offset, size = parts["field"], int(parts["offset"]), int(parts["size"])
        var = decl.split()[-1]
        if var.startswith("common_") or "[" in var or size not in (1, 2, 4, 8):
            continue
        fields.append(Field(var, offset, size, parts.get("signed", "0").strip() == "1"))
    return fields
