"""A function named without --binary is looked up in the program, then in the
libraries it loads (what a process maps, what a command's loader will load):
by `probe attach`, by scripts' trace.uprobe() and functions.*. A name in two
libraries is one clear error until --binary picks one."""

import os

import pytest

from coral_probe.errors import CoralError, NotFound
from coral_probe.function_lookup import find_functions
from coral_probe.symbols import MAX_FUNCTIONS
from coral_probe.targets import program_target, resolve_binary, resolve_pid
from conftest import jsonl
from test_cli_errors import one_line_error
from test_library_resolution import assert_crc32_calls_counted, held, release
from test_scripts import SCRIPTS, emitted

CALLS = 1000


def found(target, *patterns: str) -> list[tuple[str, str]]:
    return [(loc.path, loc.function.name) for loc in find_functions(target, list(patterns), limit=MAX_FUNCTIONS)]


@pytest.fixture
def twolibs_held(targets):
    """twolibs (3 calls of libcoralpay's coral_charge, 5 of libcoralbill's), waiting to start."""
    proc = held([str(targets["twolibs"]), "3", "5"], {**os.environ, "TWOLIBS_WAIT": "1"})
    yield proc
    proc.kill()
    proc.wait()


def test_program_first_then_the_one_library_defining_it(targets):
    lib = str(targets["libcoraltarget.so"])
    uselib = program_target(str(targets["uselib"]), None)
    assert lib in uselib.libraries
    assert found(uselib, "coral_lib_add") == [(lib, "coral_lib_add")]
    # Each pattern on its own, each function once.
    assert found(uselib, "main", "coral_lib_*", "coral_lib_add") == [
        (str(targets["uselib"]), "main"), (lib, "coral_lib_add")]
    # A wildcard the program matches stays in the program, whatever libraries match too.
    twolibs = program_target(str(targets["twolibs"]), None)
    assert found(twolibs, "coral_charge*") == [(str(targets["twolibs"]), "coral_charge_total")]
    # Pinned: that file only, as before.
    bill = resolve_binary(str(targets["libcoralbill.so"]))
    assert bill.libraries == () and found(bill, "coral_charge") == [(bill.path, "coral_charge")]


def test_a_name_in_two_libraries_is_an_error_naming_both(targets):
    twolibs = program_target(str(targets["twolibs"]), None)
    pay, bill = targets["libcoralpay.so"], targets["libcoralbill.so"]
    with pytest.raises(CoralError) as caught:
        found(twolibs, "coral_charge")
    assert str(caught.value) == (f"coral_charge is defined in 2 objects loaded by twolibs: {pay}, {bill}; "
                                 "pick one with --binary")
    with pytest.raises(CoralError) as caught:
        found(twolibs, "coral*_run")
    assert str(caught.value) == (f"'coral*_run' matches functions in 2 objects loaded by twolibs: {pay}, {bill}; "
                                 "pick one with --binary")


def test_pid_searches_what_the_process_maps_and_shows_it_as_the_process_names_it(targets, twolibs_held):
    pid = twolibs_held.pid
    target = resolve_pid(pid)
    assert all(p.startswith(f"/proc/{pid}/root/") for p in target.libraries)
    [(path, name)] = found(target, "coralpay_run")
    assert name == "coralpay_run" and path.startswith(f"/proc/{pid}/root/")
    assert os.path.samefile(path, targets["libcoralpay.so"])
    with pytest.raises(CoralError) as caught:
        found(target, "coral_charge")
    message = str(caught.value)
    assert message.startswith(f"coral_charge is defined in 2 objects loaded by pid {pid}: ")
    assert f"/proc/{pid}" not in message
    assert str(targets["libcoralpay.so"]) in message and str(targets["libcoralbill.so"]) in message
    with pytest.raises(NotFound) as caught:
        found(target, "coral_chrage")
    assert str(caught.value) == (f"unknown function 'coral_chrage' in {targets['twolibs']} "
                                 f"(and the {len(target.libraries)} libraries it loads); did you mean: coral_charge, coral_charge_total?")


# Through the CLI and scripts (real probes).

@pytest.mark.bpf
def test_pid_attaches_a_library_function_by_name(coral, targets):
    # crc32 is in zcalls's private libz only, which it loads through RUNPATH: no --binary.
    assert_crc32_calls_counted(coral, targets["zcalls"])


@pytest.mark.bpf
def test_command_attaches_a_library_function_by_name(coral, targets):
    result = coral.run("probe", "attach", "-o", "jsonl", "coral_lib_add", "--", str(targets["uselib"]), "25")
    assert result.returncode == 0, result.stderr
    events = jsonl(result.stdout)
    assert [e["ret"] for e in events] == [i + 1 for i in range(25)]


@pytest.mark.bpf
def test_a_wildcard_the_program_matches_probes_the_program_only(coral, targets):
    result = coral.run("probe", "attach", "-o", "jsonl", "coral_charge*", "--", str(targets["twolibs"]), "3", "5")
    assert result.returncode == 0, result.stderr
    # coral_charge_total(1 + 2 + 3, 1 + 2 + 3 + 4 + 5): once, and no probe on the libraries' coral_charge.
    assert [(e["function"], e["ret"]) for e in jsonl(result.stdout)] == [("coral_charge_total", 21)]


@pytest.mark.bpf
def test_script_uprobe_finds_a_library_function_of_its_command(coral, targets):
    result = coral.run("run", str(SCRIPTS / "count_calls.ts"), "--param", "function=coral_lib_add",
                       "--", str(targets["uselib"]), str(CALLS))
    assert result.returncode == 0, result.stderr
    assert emitted(coral, "calls") == [{"function": "coral_lib_add", "events": CALLS}]


def test_functions_list_and_get_include_the_libraries(coral, targets):
    result = coral.run("run", str(SCRIPTS / "list_functions.ts"), "--param", "pattern=coral_*",
                       "--param", "name=coral_lib_add", "--", str(targets["uselib"]), "1")
    assert result.returncode == 0, result.stderr
    lib = str(targets["libcoraltarget.so"])
    assert emitted(coral, "functions") == [{"listed": [{"name": "coral_lib_add", "binary": lib}],
                                            "got": {"name": "coral_lib_add", "binary": lib}}]


def test_functions_get_in_a_process_names_the_library_it_maps(coral, targets):
    proc = held([str(targets["zcalls"]), "1"], {**os.environ, "ZCALLS_WAIT": "1"})
    try:
        result = coral.run("run", str(SCRIPTS / "list_functions.ts"), "--param", "pattern=crc32_c*",
                           "--param", "name=crc32", "--pid", str(proc.pid))
    finally:
        release(proc)
    assert result.returncode == 0, result.stderr
    [reply] = emitted(coral, "functions")
    # The path coral read, through the process's root: one a script can hand back as { binary }.
    libz = f"/proc/{proc.pid}/root{os.path.realpath(targets['lib'] / 'libz.so.1')}"
    assert "crc32_combine" in {f["name"] for f in reply["listed"]}
    assert {f["binary"] for f in reply["listed"]} == {libz}
    assert reply["got"] == {"name": "crc32", "binary": libz}


@pytest.mark.bpf
def test_a_name_in_two_libraries_is_one_line_and_binary_picks_one(coral, targets):
    twolibs = [str(targets["twolibs"]), "3", "5"]
    line = one_line_error(coral.run("probe", "attach", "-o", "jsonl", "coral_charge", "--", *twolibs))
    assert line == (f"coral: coral_charge is defined in 2 objects loaded by twolibs: {targets['libcoralpay.so']}, "
                    f"{targets['libcoralbill.so']}; pick one with --binary")
    for lib, calls in (("libcoralpay.so", 3), ("libcoralbill.so", 5)):
        result = coral.run("probe", "attach", "-o", "jsonl", "coral_charge", "--binary", str(targets[lib]),
                           "--", *twolibs)
        assert result.returncode == 0, result.stderr
        assert [e["ret"] for e in jsonl(result.stdout)] == [i + 1 for i in range(calls)]


@pytest.mark.bpf
def test_unknown_everywhere_says_it_searched_the_libraries(coral, targets):
    uselib = str(targets["uselib"])
    libraries = len(program_target(uselib, None).libraries)
    line = one_line_error(coral.run("probe", "attach", "coral_lib_ad", "--", uselib))
    assert line == (f"coral: unknown function 'coral_lib_ad' in {uselib} (and the {libraries} libraries it loads); "
                    "did you mean: coral_lib_add?")
