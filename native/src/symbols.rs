//! Symbol helpers the control plane needs fast: C++ demangling (cpp_demangle)
//! and the RET instructions of a Go function (iced-x86).

use cpp_demangle::{DemangleOptions, Symbol};
use iced_x86::{Decoder, DecoderOptions, FlowControl, Mnemonic};

/// `(with parameters, without parameters)` for an Itanium-mangled name.
pub fn demangle(name: &str) -> Option<(String, String)> {
    if !name.starts_with("_Z") {
        return None;
    }
    let symbol = Symbol::new(name).ok()?;
    let full = symbol.demangle(&DemangleOptions::default()).ok()?;
    let short = symbol.demangle(&DemangleOptions::default().no_params().no_return_type()).ok()?;
    Some((full, short))
}

/// Offsets, from the function's first byte, of every RET in `code`.
///
/// Go cannot take uretprobes (the runtime moves goroutine stacks and the
/// hijacked return address crashes it), so each RET gets its own uprobe.
pub fn ret_offsets(code: &[u8], address: u64) -> Vec<u64> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut offsets = Vec::new();
    for instruction in &mut decoder {
        if instruction.is_invalid() {
            continue;
        }
        if instruction.flow_control() == FlowControl::Return && instruction.mnemonic() == Mnemonic::Ret {
            offsets.push(instruction.ip() - address);
        }
    }
    offsets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangles_a_method() {
        let (full, short) = demangle("_ZN7billing6Ledger4postEl").unwrap();
        assert_eq!(full, "billing::Ledger::post(long)");
        assert_eq!(short, "billing::Ledger::post");
        assert!(demangle("main").is_none());
    }

    #[test]
    fn finds_each_ret() {
        // push rbp; test edi,edi; je +1; ret; pop rbp; ret
        let code = [0x55, 0x85, 0xff, 0x74, 0x01, 0xc3, 0x5d, 0xc3];
        assert_eq!(ret_offsets(&code, 0x1000), vec![5, 7]);
    }
}
