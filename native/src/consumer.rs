//! The consumer thread: waits on the ring buffer, decodes every record into
//! columns and ships batches over a bounded channel, never calling Python.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender};

use crate::batch::{Batch, Columns, CommTable, SessionMeta};
use crate::error::Result;
use crate::event::CoralEvent;
use crate::fanout::FanOut;
use crate::latency::Latency;
use crate::ringbuf::{Epoll, RingBuffer};

pub struct ConsumerConfig {
    /// A batch is shipped when it holds this many events...
    pub batch_max: usize,
    /// ...or when its first event is this old.
    pub flush_interval: Duration,
    /// How often the ring is polled: the kernel side does not wake the
    /// consumer per event (bpf/coral_common.h), so this bounds the delay.
    pub poll_interval: Duration,
    /// Batches waiting for the receiver; past that the thread waits, the ring
    /// fills and the kernel counts the overflow as lost.
    pub queue_depth: usize,
    /// Whether Python receives batches (storage, printing) or only scripts do.
    pub to_python: bool,
}

pub struct Shared {
    pub stop: AtomicBool,
    pub latency: Mutex<Latency>,
    /// Records too short to be a coral_event: counted, never silently skipped.
    pub malformed: std::sync::atomic::AtomicU64,
}

pub struct Consumer {
    pub shared: Arc<Shared>,
    pub fanout: Arc<FanOut>,
    pub batches: Receiver<Batch>,
    thread: Mutex<Option<JoinHandle<Result<()>>>>,
}

impl Consumer {
    pub fn start(map_fd: i32, meta: SessionMeta, config: ConsumerConfig) -> Result<Consumer> {
        let ring = RingBuffer::open(map_fd)?;
        let epoll = Epoll::new(ring.fd())?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            latency: Mutex::new(Latency::default()),
            malformed: Default::default(),
        });
        let (tx, rx) = crossbeam_channel::bounded(config.queue_depth);
        let fanout = Arc::new(FanOut::default());
        let worker = Worker {
            ring,
            epoll,
            meta: Arc::new(meta),
            config,
            shared: shared.clone(),
            fanout: fanout.clone(),
            tx,
        };
        let thread = std::thread::Builder::new()
            .name("coral-ring".into())
            .spawn(move || worker.run())
            .map_err(|e| crate::error::Error::Os { op: "spawn consumer thread", source: e })?;
        Ok(Consumer { shared, fanout, batches: rx, thread: Mutex::new(Some(thread)) })
    }

    pub fn request_stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
    }

    /// True once the thread has shipped its last batch.
    pub fn thread_done(&self) -> bool {
        self.thread.lock().expect("thread").as_ref().is_none_or(|t| t.is_finished())
    }

    pub fn join(&self) -> Result<()> {
        let thread = self.thread.lock().expect("thread").take();
        match thread {
            Some(t) => t.join().unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.request_stop();
        // Dropping the receiver first unblocks a thread waiting to send.
        let (_, dead) = crossbeam_channel::bounded(0);
        drop(std::mem::replace(&mut self.batches, dead));
        let _ = self.join();
    }
}

struct Worker {
    ring: RingBuffer,
    epoll: Epoll,
    meta: Arc<SessionMeta>,
    config: ConsumerConfig,
    shared: Arc<Shared>,
    fanout: Arc<FanOut>,
    tx: Sender<Batch>,
}

/// Records decoded per wake-up before they are published to scripts.
const CHUNK_MAX: usize = 16384;

impl Worker {
    fn run(mut self) -> Result<()> {
        let mut comms = CommTable::default();
        let mut pending = Columns::with_capacity(self.config.batch_max);
        let mut chunk = Columns::with_capacity(CHUNK_MAX);
        let mut first_event_at: Option<Instant> = None;
        let frame_nargs = self.meta.nargs.iter().copied().max().unwrap_or(0);
        loop {
            let stopping = self.shared.stop.load(Ordering::Acquire);
            let mut wait = self.config.poll_interval;
            if let Some(t) = first_event_at {
                wait = wait.min(self.config.flush_interval.saturating_sub(t.elapsed()));
            }
            if !stopping {
                self.epoll.wait(wait.as_millis() as i32)?;
                if !self.config.to_python && !self.fanout.ever_subscribed() {
                    continue; // a scripts-only probe: keep events in the ring for its first subscriber
                }
            }
            // After stop, one last full drain: what the kernel committed before
            // the probes were detached is still delivered.
            loop {
                chunk.clear();
                let n = self.decode_into(&mut chunk, &mut comms, CHUNK_MAX);
                if n == 0 {
                    break;
                }
                self.fanout.publish(&chunk, frame_nargs, &comms.names);
                if self.config.to_python {
                    first_event_at.get_or_insert_with(Instant::now);
                    pending.extend_from(&chunk);
                    if pending.len() >= self.config.batch_max {
                        if !self.ship(&mut pending, &comms) {
                            return Ok(());
                        }
                        first_event_at = None;
                    }
                }
                if n < CHUNK_MAX {
                    break;
                }
            }
            let due = first_event_at.is_some_and(|t| t.elapsed() >= self.config.flush_interval);
            if !pending.is_empty() && (due || stopping) {
                if !self.ship(&mut pending, &comms) {
                    return Ok(());
                }
                first_event_at = None;
            }
            if stopping {
                self.fanout.finish_all();
                return Ok(());
            }
        }
    }

    fn decode_into(&mut self, columns: &mut Columns, comms: &mut CommTable, limit: usize) -> usize {
        let offset = self.meta.wall_offset_ns;
        let mut latency = self.shared.latency.lock().expect("latency lock");
        let malformed = &self.shared.malformed;
        self.ring.drain(limit, |record| match CoralEvent::from_record(record) {
            Some(event) => {
                columns.push(&event, offset, comms);
                latency.events += 1;
                if event.has_return() {
                    latency.record(event.duration_ns);
                }
            }
            None => {
                malformed.fetch_add(1, Ordering::Relaxed);
            }
        })
    }

    /// Sends the batch; false when nobody is listening any more.
    fn ship(&mut self, columns: &mut Columns, comms: &CommTable) -> bool {
        let full = std::mem::replace(columns, Columns::with_capacity(self.config.batch_max));
        let mut batch = Batch::new(full, comms, self.meta.clone());
        loop {
            match self.tx.send_timeout(batch, Duration::from_millis(100)) {
                Ok(()) => return true,
                Err(SendTimeoutError::Timeout(b)) => batch = b,
                Err(SendTimeoutError::Disconnected(_)) => return false,
            }
        }
    }
}

/// Decodes everything already in the ring (benchmarks: drain rate of the
/// exact decode path the consumer thread runs). Returns events decoded.
pub fn drain_all(map_fd: i32, wall_offset_ns: i64) -> Result<usize> {
    let mut ring = RingBuffer::open(map_fd)?;
    let mut comms = CommTable::default();
    let mut total = 0;
    loop {
        let mut columns = Columns::with_capacity(65536);
        let n = ring.drain(65536, |record| {
            if let Some(event) = CoralEvent::from_record(record) {
                columns.push(&event, wall_offset_ns, &mut comms);
            }
        });
        total += columns.len();
        std::hint::black_box(&columns);
        if n == 0 {
            return Ok(total);
        }
    }
}
