"""Names as ld.so binds them: a symbol defined in several versions is its
default one (libc's `sched_setaffinity@@GLIBC_2.3.4`, not the compat
`@GLIBC_2.3.3` listed before it); an IFUNC is no function to probe (its
symbol is the resolver), and naming one says so in one line. Also what an
unknown name says of stripped files, and the cap's way out per caller."""

import os
import re
import shutil
import subprocess

import pytest

from coral_probe.errors import NotFound
from coral_probe.function_lookup import find_functions
from coral_probe.symbols import SymbolTable, TooManyFunctions
from coral_probe.targets import program_target, resolve_binary, resolve_pid
from conftest import jsonl
from test_cli_errors import one_line_error
from test_library_resolution import held, release

CALLS = 50

# foo@V1 (compat, first in .dynsym) and foo@@V2 (the default), as glibc does it.
VERSIONED_LIB = r"""
__attribute__((noinline)) long foo_old(long x) { __asm__ volatile("" : "+r"(x)); return x - 1; }
__attribute__((noinline)) long foo_new(long x) { __asm__ volatile("" : "+r"(x)); return x + 1; }
__asm__(".symver foo_old,foo@V1");
__asm__(".symver foo_new,foo@@V2");
"""
VERSION_SCRIPT = "V1 { global: foo; local: *; };\nV2 { global: foo; } V1;\n"

# coral_add is an IFUNC: its symbol is the resolver; coral_add_fast and
# coral_add_plain, static (in .symtab only), are the implementations it picks between.
IFUNC_LIB = r"""
#define IMPLEMENTATION __attribute__((noinline, used)) static long
IMPLEMENTATION coral_add_plain(long x) { __asm__ volatile("" : "+r"(x)); return x + 1; }
IMPLEMENTATION coral_add_fast(long x) { __asm__ volatile("" : "+r"(x)); return x + 1; }
static void *resolve_coral_add(void) { return coral_add_fast; }
long coral_add(long) __attribute__((ifunc("resolve_coral_add")));
"""
IFUNC_PROGRAM = r"""
#include <stdlib.h>
long coral_add(long);
int main(int argc, char **argv) { return coral_add(argc > 1 ? atol(argv[1]) : 1) == 0; }
"""

# sched_setaffinity: two versions in x86-64 glibc, the compat one first in .dynsym.
SETAFFINITY_PROGRAM = r"""
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv)
{
	int calls = argc > 1 ? atoi(argv[1]) : 1;
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set))
		return 1;
	for (int i = 0; i < calls; i++)
		if (sched_setaffinity(0, sizeof set, &set))
			return 2;
	return 0;
}
"""

# Waits for a line on stdin after saying `ready` (for --pid).
WAITING_PROGRAM = r"""
#include <stdio.h>
int main(void) { char line[8]; puts("ready"); fflush(stdout); return !fgets(line, sizeof line, stdin); }
"""


def _cc(out, name: str, source: str, *flags: str):
    src = out / f"{name}.c"
    src.write_text(source)
    subprocess.run(["cc", "-O2", "-g", "-o", str(out / name), str(src), *flags], check=True)
    return out / name


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("versions")
    (out / "v.map").write_text(VERSION_SCRIPT)
    _cc(out, "libversioned.so", VERSIONED_LIB, "-shared", "-fPIC", f"-Wl,--version-script={out / 'v.map'}")
    _cc(out, "libcoralifunc.so", IFUNC_LIB, "-shared", "-fPIC")
    _cc(out, "uses_ifunc", IFUNC_PROGRAM, f"-L{out}", "-lcoralifunc", f"-Wl,-rpath,{out}")
    _cc(out, "setaffinity", SETAFFINITY_PROGRAM)
    _cc(out, "waiting", WAITING_PROGRAM)
    for name in ("libversioned.so", "libcoralifunc.so", "waiting"):
        subprocess.run(["strip", "-o", str(out / f"stripped-{name}"), str(out / name)], check=True)
    return out


def _address_of(path, symbol: str) -> int:
    """What readelf says, independently of coral: `symbol`'s value in .symtab."""
    out = subprocess.run(["readelf", "-sW", str(path)], capture_output=True, text=True, check=True).stdout
    [value] = {line.split()[1] for line in out.splitlines() if line.split()[-1:] == [symbol]}
    return int(value, 16)


@pytest.mark.parametrize("name", ["libversioned.so", "stripped-libversioned.so"])
def test_a_name_in_two_versions_is_its_default_one(built, name):
    with SymbolTable(str(built / name)) as table:
        [fn] = table.match("foo")
        assert fn.address == _address_of(built / "libversioned.so", "foo_new")
        # .symtab spells the versions in the name (foo@V1, foo@@V2): one foo, not three.
        names = [f.name for f in table.functions]
        assert names.count("foo") == 1 and not [n for n in names if "@" in n]


@pytest.mark.bpf
def test_a_versioned_libc_function_by_name_fires_every_call(coral, built):
    result = coral.run("probe", "attach", "-o", "jsonl", "sched_setaffinity", "--",
                       str(built / "setaffinity"), str(CALLS))
    assert result.returncode == 0, result.stderr
    events = jsonl(result.stdout)
    assert [(e["function"], e["ret"]) for e in events] == [("sched_setaffinity", 0)] * CALLS


def test_an_ifunc_is_no_function_and_naming_it_says_why(built):
    lib = str(built / "libcoralifunc.so")
    with SymbolTable(lib) as table:
        assert "coral_add" not in {f.name for f in table.functions}
        assert [f.name for f in table.matching("coral_add*")] == ["coral_add_fast", "coral_add_plain"]
        with pytest.raises(NotFound) as caught:
            table.match("coral_add")
    assert str(caught.value) == (
        f"coral_add in {lib} is an IFUNC: its symbol is the resolver that picks an implementation at load "
        "time; probe an implementation by its own name: coral_add_fast, coral_add_plain")
    stripped = str(built / "stripped-libcoralifunc.so")
    with SymbolTable(stripped) as table, pytest.raises(NotFound) as caught:
        table.match("coral_add")
    assert str(caught.value) == (
        f"coral_add in {stripped} is an IFUNC: its symbol is the resolver that picks an implementation at load "
        "time; probe an implementation by its own name (the file is stripped, no .symtab: its "
        "implementations have no names here)")


def test_an_ifunc_in_a_library_of_the_command_is_one_line(coral, built):
    line = one_line_error(coral.run("probe", "attach", "coral_add", "--", str(built / "uses_ifunc")))
    assert line.startswith(f"coral: coral_add in {built / 'libcoralifunc.so'} is an IFUNC: ")
    assert line.endswith("probe an implementation by its own name: coral_add_fast, coral_add_plain")


def test_libc_memmove_is_an_ifunc_in_one_line(coral, built):
    proc = held([str(built / "waiting")], dict(os.environ))
    try:
        line = one_line_error(coral.run("probe", "attach", "memmove", "--pid", str(proc.pid)))
    finally:
        release(proc)
    found = re.fullmatch(r"coral: memmove in (/\S+) is an IFUNC: its symbol is the resolver that picks an "
                         r"implementation at load time; probe an implementation by its own name.*", line)
    assert found, line
    assert not found[1].startswith("/proc/")
    assert os.path.samefile(found[1], resolve_binary("libc").path)


def test_unknown_in_a_stripped_program_speaks_of_the_program_alone(built):
    # The program is stripped and exports nothing; libcoralifunc.so keeps its .symtab.
    program = built / "stripped-uses_ifunc"
    shutil.copyfile(built / "uses_ifunc", program)
    subprocess.run(["strip", str(program)], check=True)
    target = program_target(str(program), None)
    with pytest.raises(NotFound) as caught:
        find_functions(target, ["coral_ad"], limit=1)
    assert str(caught.value) == (
        f"unknown function 'coral_ad' in {program} (and the {len(target.libraries)} libraries it loads); "
        "the program is stripped (no .symtab): it exports none: only its libraries' names were searched; "
        "did you mean: coral_add_fast, coral_add_plain, resolve_coral_add?")


def test_unknown_in_a_process_says_stripped_only_of_what_is(coral, built):
    """The repro: a stripped program whose libraries have thousands of names."""
    proc = held([str(built / "stripped-waiting")], dict(os.environ))
    try:
        target = resolve_pid(proc.pid)
        line = one_line_error(coral.run("probe", "attach", "nosuchfn", "--pid", str(proc.pid)))
        tables = [SymbolTable(path) for path in target.libraries]
    finally:
        release(proc)
    assert "no names are left" not in line
    n = len(tables)
    shown = f"coral: unknown function 'nosuchfn' in {target.display} (and the {n} libraries it loads)"
    if all(t.stripped for t in tables):
        assert line == (f"{shown}: all {n + 1} are stripped (no .symtab), only the functions they export "
                        "(.dynsym) are known")
    else:
        assert line == (f"{shown}; the program is stripped (no .symtab): it exports none: only its libraries' "
                        "names were searched")
    for t in tables:
        t.close()


def test_the_cap_says_max_functions_only_where_there_is_one(coral):
    libc = resolve_binary("libc")
    # A script's functions.get: a cap of 1, no option to raise it.
    with pytest.raises(TooManyFunctions) as caught:
        find_functions(libc, ["str*"], limit=1)
    assert str(caught.value).endswith("; narrow the pattern")
    line = one_line_error(coral.run("probe", "attach", "str*", "--binary", "libc", "--max-functions", "3"))
    assert line.endswith("; narrow the pattern or raise --max-functions")
