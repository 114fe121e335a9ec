"""Which targets a client of the agent's API may name (RunScript,
ListFunctions). A script probes its own target without any rule (the probe
policy), so naming a target grants what a rule grants. Over the Unix socket
(mode 0600, the agent's own user) a client already has the agent's
privileges and names any target; over TCP a token or a client certificate
proves less, so there a target needs one of the operator's --allow-probe
rules, the same rules a deployed script is held to."""

from __future__ import annotations

import os

import grpc

from ..agent.policy import ProbePolicy
from ..errors import CoralError, PermissionDenied
from ..targets import resolve_binary
from ..terminal import safe_text
from .transport import is_unix_peer


def check_client_target(policy: ProbePolicy, context: grpc.ServicerContext, *, binary: str,
                        pid: int | None) -> None:
    """Refuses (PermissionDenied, naming the rule to add) a target a TCP
    client may not name; checked before the target is looked up, so a
    refusal tells nothing of what exists."""
    if is_unix_peer(context.peer()):
        return
    if pid is not None and not policy.allows("pid", str(pid)):
        raise _refused("pid", str(pid))
    if binary:
        try:
            real = os.path.realpath(resolve_binary(binary, pid).path)
        except (CoralError, OSError):
            real = binary  # a missing file is refused like one that exists
        if not policy.allows("binary", real):
            raise _refused("binary", real)


def _refused(kind: str, name: str) -> PermissionDenied:
    shown = safe_text(name)
    return PermissionDenied(f"{kind} {shown} is not a target a client over TCP may name: no --allow-probe rule "
                            f"of the agent allows it (the operator may add --allow-probe {kind}:{shown})")
