//! Fan-out of event frames to script sockets. Each subscriber has its own
//! bounded queue and writer thread: a slow script loses (and is told how many)
//! events without slowing the ring consumer, the kernel or other scripts.

use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::batch::Columns;
use crate::error::{Error, Result};
use crate::frames;

struct Chunk {
    body: Arc<Vec<u8>>,
    events: u64,
}

#[derive(Default)]
pub struct SubscriberCounters {
    pub sent: AtomicU64,
    pub lost: AtomicU64,
    queued: AtomicU64,
    pub closed: AtomicBool,
}

struct Subscriber {
    id: u64,
    queue: Option<Sender<Chunk>>,
    counters: Arc<SubscriberCounters>,
    max_queued_events: u64,
    writer: Option<JoinHandle<()>>,
}

impl Subscriber {
    fn close(&mut self) {
        self.queue = None; // the writer sends the end frame and exits
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

#[derive(Default)]
pub struct FanOut {
    subscribers: Mutex<Vec<Subscriber>>,
    ever_subscribed: AtomicBool,
}

impl FanOut {
    /// Takes a duplicate of `fd` (a connected Unix stream socket).
    pub fn add(&self, id: u64, fd: RawFd, max_queued_events: u64) -> Result<Arc<SubscriberCounters>> {
        // SAFETY: F_DUPFD_CLOEXEC on a caller-owned fd; the copy is ours.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(Error::last_os("dup(subscriber fd)"));
        }
        let stream = unsafe { UnixStream::from_raw_fd(dup) };
        let counters = Arc::new(SubscriberCounters::default());
        // Frames, not events, are queued; the event bound is kept in `queued`.
        let (tx, rx) = crossbeam_channel::unbounded();
        let writer = {
            let counters = counters.clone();
            std::thread::Builder::new()
                .name(format!("coral-sub-{id}"))
                .spawn(move || write_frames(id, stream, rx, counters))
                .map_err(|e| Error::Os { op: "spawn subscriber writer", source: e })?
        };
        self.subscribers.lock().expect("subscribers").push(Subscriber {
            id,
            queue: Some(tx),
            counters: counters.clone(),
            max_queued_events,
            writer: Some(writer),
        });
        self.ever_subscribed.store(true, Ordering::Release);
        Ok(counters)
    }

    pub fn remove(&self, id: u64) -> bool {
        let mut subs = self.subscribers.lock().expect("subscribers");
        match subs.iter().position(|s| s.id == id) {
            Some(i) => {
                let mut s = subs.remove(i);
                drop(subs);
                s.close();
                true
            }
            None => false,
        }
    }

    /// False until the first subscriber arrives: until then the ring holds
    /// the events, so that subscriber sees every one since attach.
    pub fn ever_subscribed(&self) -> bool {
        self.ever_subscribed.load(Ordering::Acquire)
    }

    /// Encodes `columns` once and queues it for every live subscriber.
    pub fn publish(&self, columns: &Columns, nargs: usize, comm_names: &[String]) {
        let mut subs = self.subscribers.lock().expect("subscribers");
        if subs.is_empty() || columns.is_empty() {
            return;
        }
        let body = Arc::new(frames::encode_body(columns, nargs, comm_names));
        let events = columns.len() as u64;
        for s in subs.iter_mut() {
            let c = &s.counters;
            if c.closed.load(Ordering::Acquire) {
                continue;
            }
            if c.queued.load(Ordering::Acquire) + events > s.max_queued_events {
                c.lost.fetch_add(events, Ordering::AcqRel);
                continue;
            }
            c.queued.fetch_add(events, Ordering::AcqRel);
            if let Some(q) = &s.queue {
                if q.send(Chunk { body: body.clone(), events }).is_err() {
                    c.queued.fetch_sub(events, Ordering::AcqRel);
                    c.lost.fetch_add(events, Ordering::AcqRel);
                }
            }
        }
    }

    /// The stream is over: every subscriber gets its end frame.
    pub fn finish_all(&self) {
        let mut subs = std::mem::take(&mut *self.subscribers.lock().expect("subscribers"));
        for s in subs.iter_mut() {
            s.close();
        }
    }
}

fn write_frames(id: u64, mut stream: UnixStream, rx: Receiver<Chunk>, counters: Arc<SubscriberCounters>) {
    for chunk in rx.iter() {
        let frame = frames::frame(id, counters.lost.load(Ordering::Acquire), false, &chunk.body);
        let ok = stream.write_all(&frame).is_ok();
        counters.queued.fetch_sub(chunk.events, Ordering::AcqRel);
        if !ok {
            // The script went away: what is still queued for it is dropped.
            counters.closed.store(true, Ordering::Release);
            return;
        }
        counters.sent.fetch_add(chunk.events, Ordering::AcqRel);
    }
    let end = frames::frame(id, counters.lost.load(Ordering::Acquire), true, &[]);
    let _ = stream.write_all(&end);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    counters.closed.store(true, Ordering::Release);
}
