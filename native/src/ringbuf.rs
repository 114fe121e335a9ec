//! Consumer side of a BPF ring buffer map (BPF_MAP_TYPE_RINGBUF), mapped by fd.
//!
//! Written against the kernel ABI rather than through libbpf-rs: that crate
//! would link a second libbpf beside bcc's and hands records to a per-record
//! closure behind its own epoll; we need the raw records in a loop we own, to
//! decode them straight into columns. The protocol is libbpf's ringbuf.c:
//! a consumer page (rw), then a producer page and the data area mapped twice
//! back to back (ro), so a record that wraps is still contiguous.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::error::{Error, Result};

const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_MAP_TYPE_RINGBUF: u32 = 27;
const BUSY_BIT: u32 = 1 << 31;
const DISCARD_BIT: u32 = 1 << 30;
const HEADER_LEN: u64 = 8;

/// Prefix of the kernel's `struct bpf_map_info`.
#[repr(C)]
#[derive(Default)]
struct BpfMapInfo {
    map_type: u32,
    id: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    name: [u8; 16],
}

#[repr(C)]
struct BpfInfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

fn map_info(fd: RawFd) -> Result<BpfMapInfo> {
    let mut info = BpfMapInfo::default();
    let attr = BpfInfoAttr {
        bpf_fd: fd as u32,
        info_len: std::mem::size_of::<BpfMapInfo>() as u32,
        info: &mut info as *mut BpfMapInfo as u64,
    };
    // SAFETY: attr and info outlive the call; sizes are given to the kernel.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &attr as *const BpfInfoAttr,
            std::mem::size_of::<BpfInfoAttr>(),
        )
    };
    if rc < 0 {
        return Err(Error::last_os("bpf(OBJ_GET_INFO_BY_FD)"));
    }
    Ok(info)
}

struct Mapping {
    addr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn new(fd: RawFd, len: usize, prot: i32, offset: usize) -> Result<Mapping> {
        // SAFETY: a fresh shared mapping of a BPF map fd; checked below.
        let addr = unsafe {
            libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd, offset as libc::off_t)
        };
        if addr == libc::MAP_FAILED {
            return Err(Error::last_os("mmap(ringbuf)"));
        }
        Ok(Mapping { addr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: addr/len come from a successful mmap.
        unsafe { libc::munmap(self.addr, self.len) };
    }
}

pub struct RingBuffer {
    fd: OwnedFd,
    consumer: Mapping,
    producer: Mapping,
    mask: u64,
}

// SAFETY: the mappings are owned by this value and only used through &mut self.
unsafe impl Send for RingBuffer {}

impl RingBuffer {
    /// Maps the ring buffer behind `map_fd`. The fd is duplicated, so the
    /// caller (bcc) keeps ownership of its own.
    pub fn open(map_fd: RawFd) -> Result<RingBuffer> {
        let info = map_info(map_fd)?;
        if info.map_type != BPF_MAP_TYPE_RINGBUF {
            return Err(Error::NotRingBuffer { fd: map_fd, map_type: info.map_type });
        }
        // SAFETY: dup of a valid fd; the result is owned by OwnedFd.
        let dup = unsafe { libc::fcntl(map_fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(Error::last_os("dup(ringbuf fd)"));
        }
        let fd = unsafe { OwnedFd::from_raw_fd(dup) };
        let page = page_size();
        let size = info.max_entries as usize;
        let consumer = Mapping::new(dup, page, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        let producer = Mapping::new(dup, page + 2 * size, libc::PROT_READ, page)?;
        Ok(RingBuffer { fd, consumer, producer, mask: size as u64 - 1 })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn consumer_pos(&self) -> &AtomicU64 {
        // SAFETY: the consumer page starts with the 8-byte-aligned consumer_pos.
        unsafe { &*(self.consumer.addr as *const AtomicU64) }
    }

    fn producer_pos(&self) -> &AtomicU64 {
        // SAFETY: the producer page starts with producer_pos.
        unsafe { &*(self.producer.addr as *const AtomicU64) }
    }

    fn data(&self) -> *const u8 {
        // SAFETY: the data area follows the producer page inside the mapping.
        unsafe { (self.producer.addr as *const u8).add(page_size()) }
    }

    /// Hands every committed record to `on_record`, at most `limit` of them,
    /// freeing each one's space as soon as it is read. Returns records seen.
    pub fn drain(&mut self, limit: usize, mut on_record: impl FnMut(&[u8])) -> usize {
        let mut seen = 0;
        let mut cons = self.consumer_pos().load(Ordering::Acquire);
        loop {
            let prod = self.producer_pos().load(Ordering::Acquire);
            if cons >= prod {
                return seen;
            }
            while cons < prod {
                // SAFETY: cons & mask is inside the data area; the header is 8-aligned.
                let header = unsafe { self.data().add((cons & self.mask) as usize) };
                let len = unsafe { &*(header as *const AtomicU32) }.load(Ordering::Acquire);
                if len & BUSY_BIT != 0 {
                    return seen; // the producer has not committed it yet
                }
                let size = (len & !(BUSY_BIT | DISCARD_BIT)) as u64;
                if len & DISCARD_BIT == 0 {
                    // SAFETY: the record body follows its header, contiguous thanks
                    // to the double mapping of the data area.
                    let body = unsafe {
                        std::slice::from_raw_parts(header.add(HEADER_LEN as usize), size as usize)
                    };
                    on_record(body);
                    seen += 1;
                }
                cons += (size + HEADER_LEN + 7) & !7;
                self.consumer_pos().store(cons, Ordering::Release);
                if seen >= limit {
                    return seen;
                }
            }
        }
    }

}

/// Waits for the ring buffer's fd to become readable.
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub fn new(watch: RawFd) -> Result<Epoll> {
        // SAFETY: plain syscalls; the fd is owned right after creation.
        let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if raw < 0 {
            return Err(Error::last_os("epoll_create1"));
        }
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: 0 };
        if unsafe { libc::epoll_ctl(raw, libc::EPOLL_CTL_ADD, watch, &mut ev) } < 0 {
            return Err(Error::last_os("epoll_ctl"));
        }
        Ok(Epoll { fd })
    }

    /// True when readable; false on timeout or signal.
    pub fn wait(&self, timeout_ms: i32) -> Result<bool> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: one event slot, owned fd.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), &mut ev, 1, timeout_ms) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(Error::Os { op: "epoll_wait", source: err });
        }
        Ok(n > 0)
    }
}

pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}
