"""ELF functions of the real test targets: demangling, wildcards, Go RETs."""

import pytest

from coral_probe.errors import CoralError, NotFound
from coral_probe.symbols import SymbolTable


def test_cpp_names_are_demangled_and_overloads_keep_signatures(targets):
    with SymbolTable(str(targets["ledger"])) as table:
        post = table.match("billing::Ledger::post")
        assert [(f.name, f.symbol) for f in post] == [("billing::Ledger::post", "_ZN7billing6Ledger4postEl")]
        assert sorted(f.name for f in table.match("billing::fee")) == ["billing::fee(int, int)", "billing::fee(long)"]
        assert table.match("_ZN7billing6Ledger4postEl")[0].name == "billing::Ledger::post"
        assert not table.is_go


def test_wildcards_are_capped_with_the_matches_listed(targets):
    with SymbolTable(str(targets["counter"])) as table:
        assert [f.name for f in table.match("coral_*")] == ["coral_recurse", "coral_work"]
        with pytest.raises(CoralError, match=r"'coral_\*' matches 2 functions, more than the cap of 1: coral_recurse"):
            table.match("coral_*", limit=1)


def test_unknown_names_suggest_close_ones(targets):
    with SymbolTable(str(targets["counter"])) as table, pytest.raises(NotFound, match="did you mean: coral_work"):
        table.match("coral_wrk")


def test_go_functions_have_their_ret_instructions_found(targets):
    with SymbolTable(str(targets["gowork"])) as table:
        assert table.is_go
        fn = table.match("main.processItem")[0]
        offsets = table.ret_offsets(fn)
        code = table.code(fn)
        assert offsets and all(code[o] == 0xC3 for o in offsets)
        assert all(0 < o < fn.size for o in offsets)
