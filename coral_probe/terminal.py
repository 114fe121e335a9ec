"""Untrusted text (script output, stored strings, symbol names) made safe
for a terminal: control characters cannot move the cursor, change colours,
open hyperlinks (OSC 8) or rewrite what was printed before."""

import re

# C0 controls except tab (harmless, and scripts print tables with it), DEL,
# C1 controls (8-bit CSI/OSC), and the bidi overrides that reorder what is
# shown ("Trojan Source").
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe_text(s: str) -> str:
    """`s` with every unsafe character shown as a visible escape (ESC → `\\x1b`)."""
    return _UNSAFE.sub(_escape, s)
