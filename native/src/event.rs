//! Rust mirror of `struct coral_event` (bpf/coral_event.h).

pub const MAX_ARGS: usize = 6;
pub const COMM_LEN: usize = 16;
pub const EV_HAS_RETURN: u32 = 1;
pub const EV_NO_VALUE: u32 = 2;

/// Slots of the per-CPU `counters` array (CORAL_CNT_*).
pub const COUNTER_NAMES: [&str; 9] =
    ["hits", "submitted", "lost", "filtered", "unpaired", "too_deep", "opened", "closed", "before_attach"];

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CoralEvent {
    pub ts_ns: u64,
    pub duration_ns: u64,
    pub tgid: u32,
    pub tid: u32,
    pub probe_id: u32,
    pub flags: u32,
    pub args: [i64; MAX_ARGS],
    pub ret: i64,
    pub comm: [u8; COMM_LEN],
}

impl CoralEvent {
    pub const SIZE: usize = std::mem::size_of::<CoralEvent>();

    /// Reads one record; `None` when it is too short to be a coral_event.
    #[inline]
    pub fn from_record(record: &[u8]) -> Option<CoralEvent> {
        if record.len() < Self::SIZE {
            return None;
        }
        // SAFETY: length checked above; CoralEvent is plain old data.
        Some(unsafe { std::ptr::read_unaligned(record.as_ptr() as *const CoralEvent) })
    }

    #[inline]
    pub fn has_return(&self) -> bool {
        self.flags & EV_HAS_RETURN != 0
    }

    /// Whether `ret` is a value: a return seen, of a function not known to return nothing.
    #[inline]
    pub fn has_value(&self) -> bool {
        self.flags & (EV_HAS_RETURN | EV_NO_VALUE) == EV_HAS_RETURN
    }

    /// The comm bytes up to the first NUL.
    #[inline]
    pub fn comm_bytes(&self) -> &[u8] {
        let end = self.comm.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
        &self.comm[..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    extern "C" {
        static coral_event_layout: [std::ffi::c_ulong; 24];
    }

    fn slot(name: &str) -> usize {
        COUNTER_NAMES.iter().position(|n| *n == name).expect("a counter name")
    }

    #[test]
    fn layout_matches_c_header() {
        // SAFETY: a constant array defined in native/layout/coral_event_layout.c.
        let c = unsafe { coral_event_layout }.map(|v| v as usize);
        let rust = [
            size_of::<CoralEvent>(),
            offset_of!(CoralEvent, ts_ns),
            offset_of!(CoralEvent, duration_ns),
            offset_of!(CoralEvent, tgid),
            offset_of!(CoralEvent, tid),
            offset_of!(CoralEvent, probe_id),
            offset_of!(CoralEvent, flags),
            offset_of!(CoralEvent, args),
            offset_of!(CoralEvent, ret),
            offset_of!(CoralEvent, comm),
            MAX_ARGS,
            COMM_LEN,
            EV_HAS_RETURN as usize,
            EV_NO_VALUE as usize,
            // The C slots CORAL_CNT_HITS ... CORAL_CNT_BEFORE_ATTACH, in that
            // order: each name must sit at its slot's index.
            slot("hits"),
            slot("submitted"),
            slot("lost"),
            slot("filtered"),
            slot("unpaired"),
            slot("too_deep"),
            slot("opened"),
            slot("closed"),
            slot("before_attach"),
            COUNTER_NAMES.len(),
        ];
        assert_eq!(c, rust, "bpf/coral_event.h and native/src/event.rs disagree");
    }

    #[test]
    fn short_record_is_rejected() {
        assert!(CoralEvent::from_record(&[0u8; 8]).is_none());
    }
}
