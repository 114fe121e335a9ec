"""Text from scripts reaches the operator's terminal as text: `coral run`
echoes script output and `coral query sql` prints stored strings with
control characters shown escaped (`\\x1b`) and rich markup not interpreted.
Tabs are kept: they cannot take over a terminal."""

from pathlib import Path

import pytest

pytestmark = pytest.mark.bpf
SCRIPT = Path(__file__).resolve().parent / "scripts" / "terminal_hostile.ts"
MARKUP = "[link=https://evil.example]click[/link] [bold red]loud[/bold red]"
SHOWN = "\\x1b[31mred\\x1b[0m \\x1b]8;;https://evil.example\\x07link\\x1b]8;;\\x07 \\x9b2J \\u202eevil\tafter-tab"
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def test_safe_text_escapes_controls_and_keeps_tabs():
    from coral_probe.terminal import safe_text

    assert safe_text("a\tb") == "a\tb"
    assert safe_text("a\nb\rc\x00\x7f") == "a\\x0ab\\x0dc\\x00\\x7f"
    assert safe_text("\x1b[2J\x9b\u202e\u2066ok é 漢") == "\\x1b[2J\\x9b\\u202e\\u2066ok é 漢"


@pytest.fixture
def hostile(coral):
    run = coral.run("run", str(SCRIPT))
    assert run.returncode == 0, run.stderr
    return run


def test_coral_run_echoes_script_output_escaped(hostile):
    assert not any(c in hostile.stdout for c in RAW), repr(hostile.stdout)
    assert hostile.stdout == f"{MARKUP} {SHOWN}\n"


def test_coral_query_sql_prints_stored_strings_as_text(coral, hostile):
    coral.env["COLUMNS"] = "400"  # one table row per line
    for sql in ("SELECT line AS \"[bold]hdr[/bold]\" FROM script_logs",
                "SELECT data->>'text' AS \"[bold]hdr[/bold]\" FROM emitted_events WHERE name = 'hostile'"):
        out = coral.run("query", "sql", sql)
        assert out.returncode == 0, out.stderr
        assert not any(c in out.stdout for c in RAW), repr(out.stdout)
        assert "[bold]hdr[/bold]" in out.stdout
        # Whitespace aside: rich expands the tab, and may wrap a cell there.
        assert " ".join(f"{MARKUP} {SHOWN}".split()) in " ".join(out.stdout.split())


def test_an_error_quoting_stored_text_is_escaped(coral, hostile):
    out = coral.run("query", "sql", "SELECT CAST(data->>'text' AS INTEGER) FROM emitted_events WHERE name = 'hostile'")
    assert out.returncode == 2
    assert "Could not convert string" in out.stderr and out.stderr.count("\n") == 1
    assert not any(c in out.stderr for c in RAW), repr(out.stderr)
