//! Giving back memory the agent no longer uses.

use std::fs;

const MADV_PAGEOUT: i32 = 21; // Linux 5.4+; libc 0.2 does not name it on every target

/// Asks the kernel to reclaim the resident pages of mapped files whose path
/// contains one of `needles` (bcc's LLVM and clang: ~130 MB of code that is
/// used while a BPF program compiles, then not again). The pages are clean
/// file pages: touching them later just reads them back. Returns bytes advised.
pub fn page_out_libraries(needles: &[String]) -> usize {
    let Ok(maps) = fs::read_to_string("/proc/self/maps") else {
        return 0;
    };
    let mut advised = 0;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else { continue };
        let Some(path) = fields.nth(3) else { continue };
        if !needles.iter().any(|n| path.contains(n.as_str())) || perms.contains('w') {
            continue; // only read-only or executable file mappings: never data we wrote
        }
        let Some((start, end)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16)) else {
            continue;
        };
        // SAFETY: an existing mapping of this process; PAGEOUT only drops clean pages.
        if unsafe { libc::madvise(start as *mut libc::c_void, end - start, MADV_PAGEOUT) } == 0 {
            advised += end - start;
        }
    }
    advised
}
