import pytest

from coral_probe.durations import format_ns, parse_duration_ns
from coral_probe.errors import CoralError


@pytest.mark.parametrize("text,ns", [("500ms", 500_000_000), ("1.5s", 1_500_000_000), ("250us", 250_000),
                                     ("250µs", 250_000), ("7ns", 7), ("2m", 120_000_000_000), ("1h", 3_600 * 10**9),
                                     ("0", 0), (" 30s ", 30_000_000_000)])
def test_parses_units(text, ns):
    assert parse_duration_ns(text, option="--x") == ns


@pytest.mark.parametrize("text", ["", "5", "5xs", "-1ms", "ms", "1.2.3s"])
def test_rejects_the_rest(text):
    with pytest.raises(CoralError, match=f"invalid --x '{text}'"):
        parse_duration_ns(text, option="--x")


def test_formats_for_people():
    assert [format_ns(v) for v in (None, 950, 1_500, 2_500_000, 612_000_000, 1.2e9, 250e9)] == \
        ["-", "950ns", "1.5µs", "2.5ms", "612ms", "1.2s", "250s"]
