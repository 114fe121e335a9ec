//! Symbol helpers the control plane needs fast: C++ demangling (cpp_demangle),
//! the RET instructions of a Go function and where a function's uprobe is
//! cheapest to place (iced-x86).

use cpp_demangle::{DemangleOptions, Symbol};
use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfo, InstructionInfoFactory, Mnemonic, OpAccess,
    OpKind, Register,
};

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

/// Where a function's entry uprobe (and its uretprobe) go; see [`attach_points`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachPoints {
    /// Address of the entry uprobe: the function's first byte, or a later
    /// instruction the kernel emulates.
    pub entry: u64,
    /// Address of the uretprobe: `Some(entry)` for a C/C++ function probed with
    /// its return; None entry-only, and for Go (its returns are uprobes on
    /// the RET instructions, see [`ret_offsets`]).
    pub ret: Option<u64>,
    /// Mnemonics of the instructions the probe was moved past, in order.
    pub skipped: Vec<String>,
    /// [`MOVED`], or why the probe stays on the first instruction.
    pub reason: &'static str,
}

pub const MOVED: &str = "moved";
pub const ALREADY_EMULATED: &str = "first instruction is emulated";
pub const UNDECODABLE: &str = "undecodable instruction";
pub const CHANGES_FLOW: &str = "changes control flow";
pub const WRITES_MEMORY: &str = "writes memory";
pub const WRITES_ARGUMENT: &str = "writes an argument register";
pub const WRITES_OTHER_REGISTER: &str = "writes a non-integer register";
pub const MOVES_STACK_POINTER: &str = "moves the stack pointer";
pub const UNKNOWN_STACK_CHANGE: &str = "changes the stack pointer by an unknown amount";
pub const BRANCH_INTO_PROLOGUE: &str = "a branch targets the prologue";
pub const OUT_OF_REACH: &str = "no emulated instruction within reach";
pub const KERNEL_REFUSES: &str = "the kernel refuses a uprobe on its first instruction";

/// How far past the first instruction a probe may move.
pub const MAX_SKIP_INSTRUCTIONS: usize = 8;
pub const MAX_SKIP_BYTES: u64 = 32;

/// `x86_nops[1..=8]` of a 64-bit kernel (arch/x86/include/asm/nops.h,
/// BYTES_NOP1..8): the NOPs Linux emulates byte for byte since 6.16.
const KERNEL_NOPS: [&[u8]; 8] = [
    &[0x90],
    &[0x66, 0x90],
    &[0x0f, 0x1f, 0x00],
    &[0x0f, 0x1f, 0x40, 0x00],
    &[0x0f, 0x1f, 0x44, 0x00, 0x00],
    &[0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
    &[0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
    &[0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
];

/// What an entry probe reads besides the stack pointer. SysV: the six integer
/// argument registers. Go ABIInternal: its nine integer argument registers,
/// RDX (the closure context, an input too) and R14 (g: the probe reads
/// g.stack.hi through it to pair calls).
const SYSV_READ: [Register; 6] =
    [Register::RDI, Register::RSI, Register::RDX, Register::RCX, Register::R8, Register::R9];
const GO_READ: [Register; 11] = [
    Register::RAX, Register::RBX, Register::RCX, Register::RDI, Register::RSI, Register::R8, Register::R9,
    Register::R10, Register::R11, Register::RDX, Register::R14,
];

/// Where to put a function's uprobe so that the kernel emulates the probed
/// instruction instead of single-stepping it out of line, which costs about
/// ten times more per hit (x86-64; e.g. `endbr64`, the first instruction of
/// almost every function of a CET-built distro binary). Linux
/// (arch/x86/kernel/uprobes.c, 6.16-6.18) emulates `push reg`
/// (push_setup_xol_ops), its `x86_nops` and opcode 0x90, and direct
/// jmp/call/jcc (branch_setup_xol_ops); everything else is single-stepped.
///
/// The probe moves from the first instruction to the first later one the
/// kernel emulates, only across instructions that provably change nothing an
/// entry probe reads: no control flow, no memory write, no write to an
/// argument register (`go_abi` picks the ABI) nor to a vector or other
/// non-integer register, and the stack pointer unchanged when `with_return`
/// (the entry pairs with its return by the stack pointer, and a uretprobe
/// takes the return address from [rsp] where it fires). Entry-only, an
/// `add`/`sub rsp, imm` may be crossed: nothing pairs. The probe stays put
/// when a direct branch anywhere in `code` targets an address past the first
/// instruction and up to the new point (a loop back into the prologue would
/// fire the probe again without a new call), and when no emulated instruction
/// is found within [`MAX_SKIP_INSTRUCTIONS`] / [`MAX_SKIP_BYTES`].
///
/// Go: a function's prologue compares the stack pointer with the
/// goroutine's stack guard (`cmp rsp, [r14+0x10]`, after a `lea` for big
/// frames) and branches to a tail that calls runtime.morestack and jumps back
/// to the first instruction. The probe goes past that branch (onto the
/// emulated `push rbp` that follows): it then fires once per call, not once
/// more each time the stack grew mid-prologue.
///
/// A memory read is crossed: it changes nothing, and only a call about to
/// crash the process on it would go unseen. Jumps from outside the function
/// into the crossed range (hand-written assembly does that, e.g. glibc's
/// mempcpy into memmove) are checked for the whole file by [`entered_between`].
///
/// `code` is the whole function (for the branch check), `address` its first byte.
pub fn attach_points(code: &[u8], address: u64, go_abi: bool, with_return: bool) -> AttachPoints {
    let (entry, skipped, reason) = match find_entry(code, address, go_abi, with_return) {
        Ok((point, _)) if branch_targets(code, address, address + 1..=point) => {
            (address, Vec::new(), BRANCH_INTO_PROLOGUE)
        }
        Ok((point, skipped)) => (point, skipped, MOVED),
        Err(_) if first_refused(code) => (address, Vec::new(), KERNEL_REFUSES),
        Err(reason) => (address, Vec::new(), reason),
    };
    AttachPoints { entry, ret: (with_return && !go_abi).then_some(entry), skipped, reason }
}

/// For each `(start, entry)`, whether a direct branch anywhere in `code`
/// (an executable section at `address`, decoded once) lands in (start, entry]:
/// code outside the function that enters it past its first instruction, where
/// a moved probe would count calls that are not calls of the function.
/// Decoding runs linearly through any data in the section, so a stray target
/// can only keep a probe put, never move one.
pub fn entered_between(code: &[u8], address: u64, ranges: &[(u64, u64)]) -> Vec<bool> {
    let mut sorted: Vec<(u64, u64, usize)> = ranges.iter().enumerate().map(|(i, &(s, e))| (s, e, i)).collect();
    sorted.sort_unstable();
    let mut entered = vec![false; ranges.len()];
    let mut instruction = Instruction::default();
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        let target = instruction.near_branch_target();
        if target == 0 {
            continue;
        }
        // The ranges are a few bytes each and do not overlap: the last one starting before `target`.
        let at = sorted.partition_point(|&(start, _, _)| start < target);
        if at > 0 {
            let (_, end, index) = sorted[at - 1];
            if target <= end {
                entered[index] = true;
            }
        }
    }
    entered
}

/// Whether the first instruction carries a prefix the kernel refuses a
/// uprobe on (is_prefix_bad: lock, segment overrides): attaching would fail.
fn first_refused(code: &[u8]) -> bool {
    let legacy = code
        .iter()
        .take_while(|b| matches!(b, 0xf0 | 0xf2 | 0xf3 | 0x2e | 0x36 | 0x3e | 0x26 | 0x64 | 0x65 | 0x66 | 0x67));
    legacy.clone().any(|p| matches!(p, 0x26 | 0x2e | 0x36 | 0x3e | 0xf0))
}

/// `cmp reg, [r14+0x10]`: a Go prologue's check of the goroutine's stack guard.
fn is_go_stack_check(instruction: &Instruction) -> bool {
    instruction.mnemonic() == Mnemonic::Cmp
        && instruction.op1_kind() == OpKind::Memory
        && instruction.memory_base() == Register::R14
        && instruction.memory_displacement64() == 0x10
}

/// The first emulated instruction after `address` and the mnemonics crossed to it.
fn find_entry(code: &[u8], address: u64, go_abi: bool, with_return: bool)
    -> Result<(u64, Vec<String>), &'static str> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut factory = InstructionInfoFactory::new();
    let mut skipped = Vec::new();
    let mut instruction = Instruction::default();
    let mut after_stack_check = false;
    for index in 0..=MAX_SKIP_INSTRUCTIONS {
        let offset = decoder.position();
        if !decoder.can_decode() {
            return Err(UNDECODABLE);
        }
        decoder.decode_out(&mut instruction);
        if instruction.is_invalid() {
            return Err(UNDECODABLE);
        }
        let stack_check_branch = go_abi && after_stack_check && instruction.is_jcc_short_or_near()
            && (address..address + code.len() as u64).contains(&instruction.near_branch_target());
        if stack_check_branch {
            skipped.push(format!("{:?}", instruction.mnemonic()).to_lowercase());
            after_stack_check = false;
            continue;
        }
        if kernel_emulates(&code[offset..offset + instruction.len()], &instruction) {
            return if index == 0 { Err(ALREADY_EMULATED) } else { Ok((instruction.ip(), skipped)) };
        }
        if index == MAX_SKIP_INSTRUCTIONS || instruction.next_ip() - address >= MAX_SKIP_BYTES {
            break;
        }
        if let Some(reason) = crossing_blocker(&instruction, factory.info(&instruction), go_abi, with_return) {
            return Err(reason);
        }
        after_stack_check = go_abi && is_go_stack_check(&instruction);
        skipped.push(format!("{:?}", instruction.mnemonic()).to_lowercase());
    }
    Err(OUT_OF_REACH)
}

/// Whether Linux emulates this instruction when a uprobe hits it, rather than
/// single-stepping it: arch/x86/kernel/uprobes.c, branch_setup_xol_ops and
/// push_setup_xol_ops. Conservative: anything doubtful counts as not emulated.
fn kernel_emulates(bytes: &[u8], instruction: &Instruction) -> bool {
    if KERNEL_NOPS.contains(&bytes) {
        return true;
    }
    let legacy = bytes
        .iter()
        .take_while(|b| matches!(b, 0xf0 | 0xf2 | 0xf3 | 0x2e | 0x36 | 0x3e | 0x26 | 0x64 | 0x65 | 0x66 | 0x67))
        .count();
    let (prefixes, rest) = bytes.split_at(legacy);
    // is_prefix_bad(): the kernel refuses a probe on these outright.
    if prefixes.iter().any(|p| matches!(p, 0x26 | 0x2e | 0x36 | 0x3e | 0xf0)) {
        return false;
    }
    match rest {
        // push_setup_xol_ops: push r64, REX 0x41 only for r8-r15.
        [0x50..=0x57] | [0x41, 0x50..=0x57] if prefixes.is_empty() => true,
        // "prefix* + nop"; only the operand-size prefix here: later kernels
        // (a shared insn_is_nop()) no longer take PAUSE (f3 90) for a NOP.
        [0x90] => prefixes.iter().all(|&p| p == 0x66),
        // Direct branches, none with an operand-size prefix (-ENOTSUPP).
        _ => {
            !prefixes.contains(&0x66)
                && (instruction.is_jmp_short_or_near()
                    || instruction.is_jcc_short_or_near()
                    || instruction.is_call_near())
        }
    }
}

/// Why an entry probe cannot move past `instruction`, or None when it may.
fn crossing_blocker(instruction: &Instruction, info: &InstructionInfo, go_abi: bool, with_return: bool)
    -> Option<&'static str> {
    if instruction.flow_control() != FlowControl::Next
        || matches!(instruction.mnemonic(), Mnemonic::Syscall | Mnemonic::Sysenter)
    {
        return Some(CHANGES_FLOW);
    }
    // State no used register shows: the TLS bases, memory protection keys.
    if matches!(instruction.mnemonic(), Mnemonic::Wrfsbase | Mnemonic::Wrgsbase | Mnemonic::Wrpkru) {
        return Some(WRITES_OTHER_REGISTER);
    }
    if info.used_memory().iter().any(|m| writes(m.access())) {
        return Some(WRITES_MEMORY);
    }
    let read = if go_abi { &GO_READ[..] } else { &SYSV_READ[..] };
    for used in info.used_registers().iter().filter(|u| writes(u.access())) {
        let register = used.register().full_register();
        if register == Register::RSP {
            if with_return {
                return Some(MOVES_STACK_POINTER);
            }
            if !is_stack_adjustment(instruction) {
                return Some(UNKNOWN_STACK_CHANGE);
            }
        } else if !register.is_gpr() {
            // Vector registers carry float arguments in both ABIs; segment,
            // mask and other registers are nothing a prologue should touch.
            return Some(WRITES_OTHER_REGISTER);
        } else if read.contains(&register) {
            return Some(WRITES_ARGUMENT);
        }
    }
    None
}

/// `add`/`sub rsp, imm`: the stack pointer moves by a known amount.
fn is_stack_adjustment(instruction: &Instruction) -> bool {
    matches!(instruction.mnemonic(), Mnemonic::Sub | Mnemonic::Add)
        && instruction.op_count() == 2
        && instruction.op0_kind() == OpKind::Register
        && instruction.op0_register() == Register::RSP
        && matches!(
            instruction.op1_kind(),
            OpKind::Immediate8to64 | OpKind::Immediate32to64 | OpKind::Immediate32 | OpKind::Immediate8
        )
}

fn writes(access: OpAccess) -> bool {
    matches!(access, OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite)
}

/// Whether a direct branch anywhere in `code` lands in `range`.
fn branch_targets(code: &[u8], address: u64, range: std::ops::RangeInclusive<u64>) -> bool {
    Decoder::with_ip(64, code, address, DecoderOptions::NONE)
        .into_iter()
        .any(|instruction| range.contains(&instruction.near_branch_target()))
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

    const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];
    const PUSH_RBP: u8 = 0x55;
    const BASE: u64 = 0x401000;

    fn code(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// (entry offset, uretprobe offset, skipped, reason)
    fn points(code: &[u8], go_abi: bool, with_return: bool) -> (u64, Option<u64>, Vec<String>, &'static str) {
        let p = attach_points(code, BASE, go_abi, with_return);
        (p.entry - BASE, p.ret.map(|r| r - BASE), p.skipped, p.reason)
    }

    fn moved(entry: u64, ret: Option<u64>, skipped: &[&str]) -> (u64, Option<u64>, Vec<String>, &'static str) {
        (entry, ret, skipped.iter().map(|s| s.to_string()).collect(), MOVED)
    }

    fn stays(ret: Option<u64>, reason: &'static str) -> (u64, Option<u64>, Vec<String>, &'static str) {
        (0, ret, Vec::new(), reason)
    }

    // push rbp; mov rbp,rsp; pop rbp; ret
    const BODY: [u8; 6] = [PUSH_RBP, 0x48, 0x89, 0xe5, 0x5d, 0xc3];

    #[test]
    fn cet_prologue_moves_entry_and_uretprobe_onto_the_push() {
        let c = code(&[&ENDBR64, &BODY]);
        assert_eq!(points(&c, false, true), moved(4, Some(4), &["endbr64"]));
        assert_eq!(points(&c, false, false), moved(4, None, &["endbr64"]));
        // Go: no uretprobe (RET probes), the entry still moves.
        assert_eq!(points(&c, true, true), moved(4, None, &["endbr64"]));
    }

    #[test]
    fn an_emulated_first_instruction_stays() {
        assert_eq!(points(&BODY, false, true), stays(Some(0), ALREADY_EMULATED));
        assert_eq!(points(&code(&[&[0x90], &BODY]), false, true), stays(Some(0), ALREADY_EMULATED));
        // push r15 (REX 0x41), the 5-byte NOP, jmp rel8, jcc rel8, call rel32
        for first in [&[0x41, 0x57][..], &[0x0f, 0x1f, 0x44, 0, 0], &[0xeb, 0x00], &[0x76, 0x00], &[0xe8, 0, 0, 0, 0]] {
            assert_eq!(points(&code(&[first, &BODY]), false, false), stays(None, ALREADY_EMULATED), "{first:x?}");
        }
    }

    #[test]
    fn lands_on_each_kind_of_emulated_instruction() {
        for next in [&[0x90][..], &[0x66, 0x90], &[0x0f, 0x1f, 0x00], &[0x66, 0x0f, 0x1f, 0x44, 0, 0],
                     &[0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0], &[0x41, 0x54], &[0xe9, 0, 0, 0, 0],
                     &[0x0f, 0x84, 0, 0, 0, 0]] {
            let c = code(&[&ENDBR64, next, &BODY]);
            assert_eq!(points(&c, false, true), moved(4, Some(4), &["endbr64"]), "{next:x?}");
        }
    }

    #[test]
    fn does_not_land_where_the_kernel_single_steps_or_refuses() {
        // pause (f3 90), push with REX.W, a jcc with a branch-hint prefix (the
        // kernel refuses a probe there), a 66-prefixed jmp: crossed, then the push.
        for next in [&[0xf3, 0x90][..], &[0x48, 0x55], &[0x2e, 0x74, 0x00], &[0x66, 0xeb, 0x00]] {
            let c = code(&[&ENDBR64, next, &BODY]);
            let p = attach_points(&c, BASE, false, false);
            assert_ne!(p.entry, BASE + 4, "{next:x?}: {p:?}");
        }
        let c = code(&[&ENDBR64, &[0xf3, 0x90], &BODY]);
        assert_eq!(points(&c, false, true), moved(6, Some(6), &["endbr64", "pause"]));
    }

    #[test]
    fn a_write_to_an_argument_register_keeps_it_put() {
        // lea rdi,[rdi+rdi]; mov edx,1; xor ecx,ecx; mov r8,rax; mov r9d,0
        for write in [&[0x48, 0x8d, 0x3c, 0x3f][..], &[0xba, 1, 0, 0, 0], &[0x31, 0xc9], &[0x49, 0x89, 0xc0],
                      &[0x41, 0xb9, 0, 0, 0, 0], &[0x40, 0x88, 0xfe] /* mov sil,dil */] {
            let c = code(&[&ENDBR64, write, &BODY]);
            assert_eq!(points(&c, false, true), stays(Some(0), WRITES_ARGUMENT), "{write:x?}");
            assert_eq!(points(&c, false, false), stays(None, WRITES_ARGUMENT), "{write:x?}");
        }
    }

    #[test]
    fn mov_rax_rdi_is_fine_for_c_not_for_go() {
        let c = code(&[&[0x48, 0x89, 0xf8], &BODY]); // mov rax,rdi
        assert_eq!(points(&c, false, true), moved(3, Some(3), &["mov"]));
        assert_eq!(points(&c, true, true), stays(None, WRITES_ARGUMENT));
        // Go also reads r10, r11, rbx (arguments), rdx (closure) and r14 (g).
        for write in [&[0x4d, 0x31, 0xd2][..], &[0x4d, 0x31, 0xdb], &[0x31, 0xdb], &[0x31, 0xd2], &[0x4d, 0x31, 0xf6]] {
            assert_eq!(points(&code(&[write, &BODY]), true, false), stays(None, WRITES_ARGUMENT), "{write:x?}");
        }
        // ... but not r12/r13/r15/rbp, nor r10/r11/rax/rbx in C.
        for write in [&[0x4d, 0x31, 0xe4][..], &[0x4d, 0x31, 0xed], &[0x4d, 0x31, 0xff], &[0x31, 0xed]] {
            assert_eq!(points(&code(&[write, &BODY]), true, true).3, MOVED, "{write:x?}");
        }
        for write in [&[0x4d, 0x31, 0xd2][..], &[0x4d, 0x31, 0xdb], &[0x31, 0xdb], &[0x31, 0xc0]] {
            assert_eq!(points(&code(&[write, &BODY]), false, true).3, MOVED, "{write:x?}");
        }
    }

    #[test]
    fn a_write_to_a_vector_register_keeps_it_put() {
        // movaps xmm0,xmm1: float arguments live there
        assert_eq!(points(&code(&[&[0x0f, 0x28, 0xc1], &BODY]), false, false), stays(None, WRITES_OTHER_REGISTER));
        // wrfsbase rax: the TLS base, in no used register
        let c = code(&[&[0xf3, 0x48, 0x0f, 0xae, 0xd0], &BODY]);
        assert_eq!(points(&c, false, false), stays(None, WRITES_OTHER_REGISTER));
    }

    #[test]
    fn sub_rsp_only_without_a_return_probe() {
        let sub = [0x48, 0x83, 0xec, 0x08]; // sub rsp,8
        let call = [0xe8, 0, 0, 0, 0];
        let c = code(&[&sub, &call, &[0x48, 0x83, 0xc4, 0x08, 0xc3]]);
        assert_eq!(points(&c, false, true), stays(Some(0), MOVES_STACK_POINTER));
        assert_eq!(points(&c, false, false), moved(4, None, &["sub"]));
        let c = code(&[&ENDBR64, &sub, &call, &[0x48, 0x83, 0xc4, 0x08, 0xc3]]);
        assert_eq!(points(&c, false, true), stays(Some(0), MOVES_STACK_POINTER));
        assert_eq!(points(&c, false, false), moved(8, None, &["endbr64", "sub"]));
        // Go with its return probes pairs by the stack pointer too.
        assert_eq!(points(&c, true, true), stays(None, MOVES_STACK_POINTER));
        // A stack change by an unknown amount: and rsp,-16; mov rsp,rbp.
        for change in [&[0x48, 0x83, 0xe4, 0xf0][..], &[0x48, 0x89, 0xec]] {
            assert_eq!(points(&code(&[change, &BODY]), false, false), stays(None, UNKNOWN_STACK_CHANGE), "{change:x?}");
        }
    }

    #[test]
    fn memory_writes_and_flow_changes_keep_it_put() {
        // endbr64; sub rsp,0x18; mov [rsp+8],rdi; push rbp
        let c = code(&[&ENDBR64, &[0x48, 0x83, 0xec, 0x18], &[0x48, 0x89, 0x7c, 0x24, 0x08], &BODY]);
        assert_eq!(points(&c, false, false), stays(None, WRITES_MEMORY));
        // jmp rax (not emulated: indirect), syscall
        for flow in [&[0xff, 0xe0][..], &[0x0f, 0x05]] {
            assert_eq!(points(&code(&[&ENDBR64, flow, &BODY]), false, false), stays(None, CHANGES_FLOW), "{flow:x?}");
        }
    }

    #[test]
    fn a_loop_back_into_the_prologue_keeps_it_put() {
        // endbr64; mov r11d,3; 1: push rbp; pop rbp; dec r11d; jnz 1b; push rbp; ...
        let looped = [PUSH_RBP, 0x5d, 0x41, 0xff, 0xcb, 0x75, 0xf9];
        let c = code(&[&ENDBR64, &[0x41, 0xbb, 3, 0, 0, 0], &looped, &BODY]);
        assert_eq!(points(&c, false, true), stays(Some(0), BRANCH_INTO_PROLOGUE));
        // A jump to the first instruction passes the probe wherever it is
        // (Go's morestack restart does this): fine.
        let c = code(&[&ENDBR64, &BODY, &[0xeb, 0xf4]]);
        assert_eq!(points(&c, false, true), moved(4, Some(4), &["endbr64"]));
        // ... and to the instruction after the new point too.
        let c = code(&[&ENDBR64, &BODY, &[0xeb, 0xf9]]);
        assert_eq!(points(&c, false, true), moved(4, Some(4), &["endbr64"]));
        // ... but not into the middle of the endbr64.
        let c = code(&[&ENDBR64, &BODY, &[0xeb, 0xf5]]);
        assert_eq!(points(&c, false, true), stays(Some(0), BRANCH_INTO_PROLOGUE));
        // A call targeting the new point counts as well.
        let c = code(&[&ENDBR64, &BODY, &[0xe8, 0xf5, 0xff, 0xff, 0xff]]);
        assert_eq!(points(&c, false, true), stays(Some(0), BRANCH_INTO_PROLOGUE));
    }

    #[test]
    fn go_stack_check_prologue_moves_past_the_jbe() {
        // cmp rsp,[r14+0x10]; jbe morestack; push rbp; mov rbp,rsp; pop rbp; ret;
        // morestack: call runtime.morestack_noctxt; jmp <function start>
        // Past the branch, so a call whose stack grew (the prologue run again) is one hit.
        let c = code(&[&[0x49, 0x3b, 0x66, 0x10], &[0x76, 0x06], &BODY, &[0xe8, 0, 0, 0, 0], &[0xeb, 0xed]]);
        assert_eq!(points(&c, true, true), moved(6, None, &["cmp", "jbe"]));
        assert_eq!(points(&c, true, false), moved(6, None, &["cmp", "jbe"]));
        // Larger frames: lea r12,[rsp-0x20]; cmp r12,[r14+0x10]; jbe
        let c = code(&[&[0x4c, 0x8d, 0x64, 0x24, 0xe0], &[0x4d, 0x3b, 0x66, 0x10], &[0x76, 0x06], &BODY,
                       &[0xe8, 0, 0, 0, 0], &[0xeb, 0xe8]]);
        assert_eq!(points(&c, true, true), moved(11, None, &["lea", "cmp", "jbe"]));
        // A jbe that leaves the function is no stack check's: the probe stops on it.
        let c = code(&[&[0x49, 0x3b, 0x66, 0x10], &[0x76, 0x7f], &BODY]);
        assert_eq!(points(&c, true, true), moved(4, None, &["cmp"]));
        // C: the same bytes are no Go prologue.
        let c = code(&[&[0x49, 0x3b, 0x66, 0x10], &[0x76, 0x06], &BODY, &[0xe8, 0, 0, 0, 0], &[0xeb, 0xed]]);
        assert_eq!(points(&c, false, true), moved(4, Some(4), &["cmp"]));
    }

    #[test]
    fn jumps_from_other_functions_into_a_crossed_range_are_found() {
        // f at BASE: endbr64; push rbp ... (moved to +4); g at BASE+0x20: jmp BASE+4 (into f past its endbr64).
        let mut section = code(&[&ENDBR64, &BODY]);
        section.resize(0x20, 0xcc);
        section.extend_from_slice(&[0xeb, 0xe2]); // jmp -0x1e: BASE+0x22-0x1e = BASE+4
        section.extend_from_slice(&[0xe9, 0xd9, 0xff, 0xff, 0xff]); // jmp rel32 to BASE+0x24-0x27+... = BASE
        let entered = entered_between(&section, BASE, &[(BASE, BASE + 4), (BASE + 0x22, BASE + 0x24)]);
        assert_eq!(entered, vec![true, false]);
        // A jump to a function's first byte is a call of it, not an entry past it.
        assert_eq!(entered_between(&section[0x22..], BASE + 0x22, &[(BASE, BASE + 4)]), vec![false]);
    }

    #[test]
    fn a_refused_first_instruction_is_said() {
        // cs nop word [rax+rax]; push rbp: moves onto the push.
        let c = code(&[&[0x2e, 0x66, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0], &BODY]);
        assert_eq!(points(&c, false, true).3, MOVED);
        // lock add [rdi],eax first: it writes memory, stays, and the kernel would refuse it.
        let c = code(&[&[0xf0, 0x01, 0x07], &BODY]);
        assert_eq!(points(&c, false, true), stays(Some(0), KERNEL_REFUSES));
    }

    #[test]
    fn the_scan_is_capped() {
        let nops = |n: usize| ENDBR64.repeat(n);
        assert_eq!(points(&code(&[&nops(7), &BODY]), false, true).0, 28);
        // 8 crossed but the push at byte 32: beyond MAX_SKIP_BYTES
        assert_eq!(points(&code(&[&nops(8), &BODY]), false, true), stays(Some(0), OUT_OF_REACH));
        // 8 short instructions crossed is the most: xor eax,eax x8 then x9
        let xors = |n: usize| [0x31, 0xc0].repeat(n);
        assert_eq!(points(&code(&[&xors(8), &BODY]), false, true).0, 16);
        assert_eq!(points(&code(&[&xors(9), &BODY]), false, true), stays(Some(0), OUT_OF_REACH));
    }

    #[test]
    fn truncated_or_empty_code_stays() {
        assert_eq!(points(&[], false, true), stays(Some(0), UNDECODABLE));
        assert_eq!(points(&ENDBR64[..2], false, true), stays(Some(0), UNDECODABLE));
        assert_eq!(points(&ENDBR64, false, true), stays(Some(0), UNDECODABLE));
    }

    #[test]
    fn finds_each_ret() {
        // push rbp; test edi,edi; je +1; ret; pop rbp; ret
        let code = [0x55, 0x85, 0xff, 0x74, 0x01, 0xc3, 0x5d, 0xc3];
        assert_eq!(ret_offsets(&code, 0x1000), vec![5, 7]);
    }
}
