"""A function that returns nothing (by its DWARF) has no `ret`: null in
jsonl, NULL in the store, null in a script's events; its latency stays.
Without that its ret is whatever the return register happened to hold."""

import pytest

from conftest import jsonl
from test_scripts import SCRIPTS, emitted

pytestmark = pytest.mark.bpf
CALLS = 21  # counter exits with CALLS % 7: 0

# target, the value-returning function and its ret for item i (1..CALLS), the void one.
C = ("counter-O0", "coral_work", lambda i: 3 * i, "sleep_us")
GO = ("gowork", "main.processItem", lambda i: i * 10 if i % 2 == 0 else -i, "main.tally")
SCRIPT_PATTERNS = {"counter-O0": "[cs][ol][re]*", "gowork": "main.[pt]*"}


@pytest.mark.parametrize("target,valued,ret_of,void", [C, GO], ids=["c", "go"])
def test_void_function_has_latency_and_no_ret(coral, targets, target, valued, ret_of, void):
    result = coral.run("probe", "attach", "-o", "jsonl", valued, void, "--args", "1", "--",
                       str(targets[target]), str(CALLS), "0")
    assert result.returncode == 0, result.stderr
    events = jsonl(result.stdout)
    by_function = {name: [e for e in events if e["function"] == name] for name in (valued, void)}
    assert {name: len(calls) for name, calls in by_function.items()} == {valued: CALLS, void: CALLS}
    assert all(e["duration_ns"] is not None for e in events)
    assert sorted(e["ret"] for e in by_function[valued]) == sorted(ret_of(i) for i in range(1, CALLS + 1))
    assert [e["ret"] for e in by_function[void]] == [None] * CALLS

    rows = coral.query("SELECT function_name, count(*), count(duration_ns), count(return_value),"
                       " sum(return_value) FROM probe_events GROUP BY function_name ORDER BY function_name")
    expected = {valued: (CALLS, CALLS, CALLS, sum(ret_of(i) for i in range(1, CALLS + 1))),
                void: (CALLS, CALLS, 0, None)}
    assert rows == sorted((name, *counts) for name, counts in expected.items())


@pytest.mark.parametrize("target,valued,ret_of,void", [C, GO], ids=["c", "go"])
def test_script_sees_no_return_value_for_a_void_function(coral, targets, target, valued, ret_of, void):
    result = coral.run("run", str(SCRIPTS / "returns_by_function.ts"), "--param",
                       f"pattern={SCRIPT_PATTERNS[target]}", "--", str(targets[target]), str(CALLS), "0")
    assert result.returncode == 0, result.stderr
    [seen] = emitted(coral, "returns")
    assert sorted(seen) == sorted([valued, void])
    values = sorted(ret_of(i) for i in range(1, CALLS + 1))
    assert seen[valued] | {"returns": sorted(seen[valued]["returns"]), "json": sorted(seen[valued]["json"])} == \
        {"calls": CALLS, "timed": CALLS, "returns": values, "json": values}
    assert seen[void] == {"calls": CALLS, "timed": CALLS, "returns": [None] * CALLS, "json": [None] * CALLS}
