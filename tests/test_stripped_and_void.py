"""Stripped binaries (Go through .gopclntab; C says it is stripped) and
whether a function returns a value (DWARF), on the real test targets."""

import re
import shutil
import struct

import pytest
from elftools.elf.elffile import ELFFile

from conftest import jsonl
from coral_probe.errors import CoralError, NotFound
from coral_probe.symbols import SymbolTable

# (stripped build, its unstripped twin): the second pair is linked by the C
# linker, whose start-up code comes first in .text.
GO_TWINS = [("gowork-stripped", "gowork"), ("gowork-extld-stripped", "gowork-extld")]


def main_functions(path) -> dict[str, tuple]:
    with SymbolTable(str(path)) as table:
        return {f.name: (f, table.code(f), table.ret_offsets(f)) for f in table.match("main.*")}


@pytest.mark.parametrize("stripped,unstripped", GO_TWINS)
def test_stripped_go_binary_has_the_functions_of_its_twin(targets, stripped, unstripped):
    bare, full = main_functions(targets[stripped]), main_functions(targets[unstripped])
    assert "main.processItem" in full
    assert sorted(bare) == sorted(full)
    with SymbolTable(str(targets[stripped])) as table:
        assert table.stripped and table.is_go
    for name, (fn, code, rets) in full.items():
        bare_fn, bare_code, bare_rets = bare[name]
        assert bare_fn.address == fn.address, name
        # The table's function runs to the next one: its code, then only INT3 padding.
        assert len(bare_code) >= len(code) and set(bare_code[len(code):]) <= {0xCC}, name
        assert bare_rets == rets, name


@pytest.mark.parametrize("stripped,unstripped", GO_TWINS)
def test_every_name_both_builds_know_is_the_same_function(targets, stripped, unstripped):
    """Assembly bodies and their ABI wrappers share a name in the table:
    NAME.abi0 must be the one .symtab calls so (runtime.osyield, ...)."""
    with SymbolTable(str(targets[stripped])) as bare, SymbolTable(str(targets[unstripped])) as full:
        bare_at = {f.name: f.address for f in bare.functions}
        full_at = {f.name: f.address for f in full.functions}
    common = bare_at.keys() & full_at.keys()
    assert len(common) > 1000 and "runtime.osyield.abi0" in common
    assert sorted(n for n in common if bare_at[n] != full_at[n]) == []


def crafted(tmp_path, targets, patch) -> str:
    """A copy of the stripped Go target with `patch(data, table_offset, header_offset)` applied."""
    copy = tmp_path / "crafted"
    shutil.copyfile(targets["gowork-stripped"], copy)
    with open(copy, "rb") as f:
        elf = ELFFile(f)
        table = elf.get_section_by_name(".gopclntab")
        table_offset = table["sh_offset"]
        header_offset = elf["e_shoff"] + elf.get_section_index(".gopclntab") * elf["e_shentsize"]
    data = bytearray(copy.read_bytes())
    patch(data, table_offset, header_offset)
    copy.write_bytes(bytes(data))
    return str(copy)


def huge_nfunc(data, table, _):
    struct.pack_into("<Q", data, table + 8, 1 << 40)


def name_outside(data, table, _):
    pcln = struct.unpack_from("<Q", data, table + 8 + 7 * 8)[0]
    funcoff = struct.unpack_from("<I", data, table + pcln + 4)[0]
    struct.pack_into("<i", data, table + pcln + funcoff + 4, 1 << 30)


def section_past_the_file(data, _, header):
    struct.pack_into("<Q", data, header + 32, 1 << 50)  # sh_size


@pytest.mark.parametrize("patch,why", [
    (huge_nfunc, "1099511627776 functions do not fit in the section"),
    (name_outside, "function 0 has its name outside the section"),
    (section_past_the_file, r"section .gopclntab \(1125899906842624 bytes at \d+\) is not in the file"),
])
def test_crafted_go_table_is_one_clear_error(tmp_path, targets, patch, why):
    path = crafted(tmp_path, targets, patch)
    with SymbolTable(path) as table, pytest.raises(CoralError) as error:
        table.functions
    assert re.fullmatch(rf"cannot read the Go function table \(\.gopclntab\) of {re.escape(path)}: {why}",
                        str(error.value)), error.value


def test_stripped_library_says_it_is_stripped(targets):
    path = targets["libcoraltarget-stripped.so"]
    with SymbolTable(str(path)) as table, pytest.raises(NotFound) as error:
        table.match("coral_lib_ad")
    assert str(error.value) == (
        f"unknown function 'coral_lib_ad' in {path}: it is stripped (no .symtab), only the functions "
        "it exports (.dynsym) are known; did you mean: coral_lib_add?")


@pytest.mark.parametrize("target,expected", [
    ("gowork", {"main.processItem": True, "main.grow": True, "main.main": False, "main.main.func1": False}),
    ("gowork-stripped", {"main.processItem": None, "main.main": None}),  # no DWARF
    ("counter", {"coral_work": True, "coral_recurse": True, "main": True, "_start": None}),  # crt1: no DWARF
    ("counter-O0", {"sleep_us": False, "coral_work": True}),
    ("ledger", {"billing::Ledger::post": True, "billing::fee(long)": True}),
])
def test_returns_value_from_dwarf(targets, target, expected):
    with SymbolTable(str(targets[target])) as table:
        assert {name: table.returns_value(table.match(name)[0]) for name in expected} == expected


@pytest.mark.bpf
@pytest.mark.parametrize("stripped,unstripped", GO_TWINS)
def test_stripped_go_binary_counts_every_call_like_its_twin(coral, targets, stripped, unstripped):
    runs = {}
    for name in (unstripped, stripped):
        result = coral.run("probe", "attach", "-o", "jsonl", "main.processItem", "--args", "2", "--",
                           str(targets[name]), "20", "1")
        assert result.returncode == 0, result.stderr
        runs[name] = sorted((e["args"][0], e["ret"]) for e in jsonl(result.stdout))
    assert runs[stripped] == runs[unstripped] == [(i, i * 10 if i % 2 == 0 else -i) for i in range(1, 21)]


def test_crafted_dwarf_sizes_mean_unknown_not_a_crash(tmp_path, targets):
    """.debug_info claiming 32 TiB: pyelftools would try to allocate it."""
    copy = tmp_path / "crafted-dwarf"
    shutil.copyfile(targets["counter"], copy)
    with open(copy, "rb") as f:
        elf = ELFFile(f)
        header = elf["e_shoff"] + elf.get_section_index(".debug_info") * elf["e_shentsize"]
    data = bytearray(copy.read_bytes())
    struct.pack_into("<Q", data, header + 32, 1 << 45)  # sh_size
    copy.write_bytes(bytes(data))
    with SymbolTable(str(copy)) as table:
        assert table.returns_value(table.match("coral_work")[0]) is None
