"""Making room for the SDK socket at a path the operator chose, without
replacing anything that is not a stale socket: an agent runs as root, and
`--socket /etc/passwd` must not delete the file."""

import os
import socket
import stat

from ..errors import CoralError


def claim(path: str, *, what: str = "--socket") -> None:
    """Removes a stale socket at `path`; refuses a file, a directory, or a live
    socket. `what` names the path in errors (an option, or "agent socket")."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise CoralError(f"{what} {path}: exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # nobody listens: left by an agent that died
        return
    except OSError as e:
        raise CoralError(f"{what} {path}: cannot tell whether it is in use ({e.strerror or e}); "
                         "refusing to replace it") from None
    finally:
        probe.close()
    raise CoralError(f"{what} {path}: in use by another process (an agent is serving it)")
