"""The Deno sandbox: the only place a script's command line is built.

Grants: the agent's socket (read, write, connect) and the CORAL_* variables
the SDK reads. Nothing else: no files, no network, no subprocesses, no FFI,
no remote or npm modules. Imports are checked before the script runs."""

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import CoralError, EnvironmentProblem

SDK_DIR = Path(__file__).resolve().parent.parent.parent / "sdk" / "typescript"
SDK_ENV = ("CORAL_SOCKET", "CORAL_TOKEN")
DEFAULT_HEAP_MB = 256


def deno_binary() -> str:
    try:
        from deno import find_deno_bin
        return find_deno_bin()
    except (ImportError, FileNotFoundError):
        raise EnvironmentProblem("Deno is not installed (PyPI package `deno`)") from None


def sdk_dir() -> Path:
    override = os.environ.get("CORAL_SDK_DIR")
    return Path(override) if override else SDK_DIR


@dataclass(frozen=True)
class Sandbox:
    socket_path: str
    deno_dir: Path
    heap_mb: int = DEFAULT_HEAP_MB

    @property
    def import_map(self) -> Path:
        return sdk_dir() / "import_map.json"

    def common_flags(self) -> list[str]:
        return ["--no-remote", "--no-npm", "--no-config", "--no-lock", f"--import-map={self.import_map}"]

    def command(self, script: Path) -> list[str]:
        sock = self.socket_path
        return [deno_binary(), "run", "--no-prompt", "--cached-only", *self.common_flags(),
                f"--allow-read={sock}", f"--allow-write={sock}", f"--allow-net=unix:{sock}",
                f"--allow-env={','.join(SDK_ENV)}",
                f"--v8-flags=--max-old-space-size={self.heap_mb}",
                str(script)]

    def environment(self, token: str) -> dict[str, str]:
        # Only CORAL_* reach the script. DENO_DIR is Deno's own cache location;
        # the script cannot read it (no --allow-env for it).
        return {"CORAL_SOCKET": self.socket_path, "CORAL_TOKEN": token, "DENO_DIR": str(self.deno_dir),
                "NO_COLOR": "1"}

    def check_imports(self, script: Path) -> None:
        """Refuses, before it runs, a script importing anything but @coral/sdk
        and files of its own directory (Deno reads static imports without
        asking for --allow-read, so the permission flags alone do not stop them)."""
        result = subprocess.run([deno_binary(), "info", "--json", *self.common_flags(), str(script)],
                                capture_output=True, text=True, env=self.environment(""), timeout=60)
        if result.returncode != 0:
            raise _refusal(_first_error(result.stderr))
        graph = json.loads(result.stdout)
        own_dir = script.resolve().parent
        sdk = sdk_dir().resolve()
        for module in graph.get("modules", []):
            specifier = module.get("specifier", "")
            if module.get("error"):
                raise _refusal(module["error"])
            if not specifier.startswith("file://"):
                raise CoralError(f"script refused: it imports {specifier}; scripts may import only "
                                 "@coral/sdk and files of their own directory")
            path = Path(specifier[len("file://"):]).resolve()
            if not (path.is_relative_to(own_dir) or path.is_relative_to(sdk)):
                raise CoralError(f"script refused: it imports {path}, outside {own_dir}; scripts may import "
                                 "only @coral/sdk and files of their own directory")


def _refusal(detail: str) -> CoralError:
    if "import access" in detail or "--allow-import" in detail or "npm" in detail or "jsr:" in detail:
        detail = f"it imports a remote or npm module ({detail.split(',')[0]})"
    return CoralError(f"script refused: {detail}; scripts may import only @coral/sdk and files of their "
                      "own directory")


def _first_error(stderr: str) -> str:
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", stderr)
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("error:"):
            return line[len("error:"):].strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0].strip() if lines else "deno could not load it"
