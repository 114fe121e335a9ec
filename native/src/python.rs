//! The Python face of the native core: inputs are extracted, the GIL is
//! released for anything that waits or loops, results go out as numpy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::batch::{Batch, SessionMeta};
use crate::consumer::{self, Consumer, ConsumerConfig};
use crate::error::Error;
use crate::fanout::SubscriberCounters;
use crate::event::MAX_ARGS;
use crate::symbols;

/// Decoded events of one batch, as columns.
#[pyclass(name = "Batch", module = "coral_probe._native", frozen)]
pub struct PyBatch {
    inner: Batch,
}

#[pymethods]
impl PyBatch {
    fn __len__(&self) -> usize {
        self.inner.columns.len()
    }

    /// Column name -> numpy array; `comm` holds codes into `comm_names`.
    fn columns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = &self.inner.columns;
        let d = PyDict::new(py);
        d.set_item("ts_ns", PyArray1::from_slice(py, &c.ts_ns))?;
        d.set_item("duration_ns", PyArray1::from_slice(py, &c.duration_ns))?;
        d.set_item("has_return", PyArray1::from_slice(py, &c.has_return))?;
        d.set_item("has_value", PyArray1::from_slice(py, &c.has_value))?;
        d.set_item("pid", PyArray1::from_slice(py, &c.pid))?;
        d.set_item("tid", PyArray1::from_slice(py, &c.tid))?;
        d.set_item("probe_id", PyArray1::from_slice(py, &c.probe_id))?;
        for (i, column) in c.args.iter().enumerate() {
            d.set_item(format!("arg{i}"), PyArray1::from_slice(py, column))?;
        }
        d.set_item("ret", PyArray1::from_slice(py, &c.ret))?;
        d.set_item("comm", PyArray1::from_slice(py, &c.comm))?;
        Ok(d)
    }

    #[getter]
    fn comm_names<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, &self.inner.comm_names)
    }

    /// The events as JSON lines (one object per event, trailing newline).
    fn jsonl<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut out = Vec::with_capacity(self.inner.columns.len() * 220);
        py.allow_threads(|| self.inner.write_jsonl(&mut out));
        PyBytes::new(py, &out)
    }
}

/// Drains a BPF ring buffer on a thread of its own.
#[pyclass(name = "RingConsumer", module = "coral_probe._native", frozen)]
pub struct PyRingConsumer {
    inner: Consumer,
    subscribers: Mutex<HashMap<u64, Arc<SubscriberCounters>>>,
}

#[pymethods]
impl PyRingConsumer {
    #[new]
    #[pyo3(signature = (map_fd, probe_names, nargs, wall_offset_ns, batch_max=65536, flush_ms=50, queue_depth=64, poll_ms=1, to_python=true))]
    fn new(
        map_fd: i32,
        probe_names: Vec<String>,
        nargs: Vec<usize>,
        wall_offset_ns: i64,
        batch_max: usize,
        flush_ms: u64,
        queue_depth: usize,
        poll_ms: u64,
        to_python: bool,
    ) -> PyResult<Self> {
        if probe_names.len() != nargs.len() {
            return Err(Error::Invalid("probe_names and nargs differ in length".into()).into());
        }
        if nargs.iter().any(|&n| n > MAX_ARGS) || batch_max == 0 || queue_depth == 0 {
            return Err(Error::Invalid(format!("nargs must be <= {MAX_ARGS}; batch_max, queue_depth > 0")).into());
        }
        let meta = SessionMeta {
            probe_names_json: probe_names.iter().map(|n| serde_json::to_string(n).expect("str")).collect(),
            nargs,
            wall_offset_ns,
        };
        let config = ConsumerConfig {
            batch_max,
            flush_interval: Duration::from_millis(flush_ms),
            poll_interval: Duration::from_millis(poll_ms.max(1)),
            queue_depth,
            to_python,
        };
        Ok(PyRingConsumer { inner: Consumer::start(map_fd, meta, config)?, subscribers: Mutex::new(HashMap::new()) })
    }

    /// The next batch, or None after `timeout_ms` (or when closed).
    fn poll(&self, py: Python<'_>, timeout_ms: u64) -> Option<PyBatch> {
        let rx = &self.inner.batches;
        py.allow_threads(|| rx.recv_timeout(Duration::from_millis(timeout_ms)).ok())
            .map(|inner| PyBatch { inner })
    }

    /// Asks the thread to drain what is left and finish; keep polling until `closed`.
    fn stop(&self) {
        self.inner.request_stop();
    }

    /// True when the thread has finished and every batch was taken.
    #[getter]
    fn closed(&self) -> PyResult<bool> {
        if self.inner.thread_done() && self.inner.batches.is_empty() {
            self.inner.join()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Streams EventBatch frames to a connected socket from now on; events
    /// past `max_queued_events` waiting for it are dropped and counted.
    #[pyo3(signature = (subscription_id, fd, max_queued_events=1 << 20))]
    fn add_subscriber(&self, subscription_id: u64, fd: i32, max_queued_events: u64) -> PyResult<()> {
        let counters = self.inner.fanout.add(subscription_id, fd, max_queued_events)?;
        self.subscribers.lock().expect("subscribers").insert(subscription_id, counters);
        Ok(())
    }

    /// Ends a subscriber's stream (end frame, then the writer exits).
    fn remove_subscriber(&self, py: Python<'_>, subscription_id: u64) -> bool {
        let fanout = &self.inner.fanout;
        py.allow_threads(|| fanout.remove(subscription_id))
    }

    /// `(sent, lost)` events for a subscriber.
    fn subscriber_stats(&self, subscription_id: u64) -> Option<(u64, u64)> {
        self.subscribers.lock().expect("subscribers").get(&subscription_id).map(|c| {
            (c.sent.load(std::sync::atomic::Ordering::Acquire), c.lost.load(std::sync::atomic::Ordering::Acquire))
        })
    }

    /// Events decoded so far, and latency percentiles over all of them.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let latency = self.inner.shared.latency.lock().expect("latency lock");
        d.set_item("events", latency.events)?;
        d.set_item("with_latency", latency.count())?;
        for (key, p) in [("p50_ns", 50.0), ("p90_ns", 90.0), ("p99_ns", 99.0)] {
            d.set_item(key, latency.percentile(p))?;
        }
        d.set_item("max_ns", latency.max())?;
        d.set_item("malformed", self.inner.shared.malformed.load(std::sync::atomic::Ordering::Relaxed))?;
        Ok(d)
    }
}

/// Decodes everything already in the ring buffer; returns the event count.
#[pyfunction]
pub fn drain_ring(py: Python<'_>, map_fd: i32, wall_offset_ns: i64) -> PyResult<usize> {
    Ok(py.allow_threads(|| consumer::drain_all(map_fd, wall_offset_ns))?)
}

/// `(full, without parameters)` for each name; None where it is not C++.
#[pyfunction]
pub fn demangle(py: Python<'_>, names: Vec<String>) -> Vec<Option<(String, String)>> {
    py.allow_threads(|| names.iter().map(|n| symbols::demangle(n)).collect())
}

/// Offsets of every RET instruction in a function's machine code.
#[pyfunction]
pub fn ret_offsets(code: &[u8], address: u64) -> Vec<u64> {
    symbols::ret_offsets(code, address)
}

/// Where a function's uprobes go (symbols::attach_points).
#[pyclass(name = "AttachPoints", module = "coral_probe._native", frozen)]
pub struct PyAttachPoints {
    /// Address of the entry uprobe.
    #[pyo3(get)]
    entry: u64,
    /// Address of the uretprobe; None entry-only and for Go (RET probes).
    #[pyo3(get)]
    ret: Option<u64>,
    /// Mnemonics of the instructions the probe moved past.
    #[pyo3(get)]
    skipped: Vec<String>,
    /// "moved", or why the probe stays on the first instruction.
    #[pyo3(get)]
    reason: &'static str,
}

#[pymethods]
impl PyAttachPoints {
    fn __repr__(&self) -> String {
        let ret = self.ret.map_or("None".to_string(), |r| format!("{r:#x}"));
        let (entry, skipped, reason) = (self.entry, &self.skipped, self.reason);
        format!("AttachPoints(entry={entry:#x}, ret={ret}, skipped={skipped:?}, reason={reason:?})")
    }
}

/// Where a function's entry uprobe (and uretprobe) are cheapest: past
/// instructions the kernel would single-step, onto one it emulates.
#[pyfunction]
pub fn attach_points(code: &[u8], address: u64, go_abi: bool, with_return: bool) -> PyAttachPoints {
    let p = symbols::attach_points(code, address, go_abi, with_return);
    PyAttachPoints { entry: p.entry, ret: p.ret, skipped: p.skipped, reason: p.reason }
}

/// For each `(start, entry)`: whether a direct branch anywhere in `code` (an
/// executable section at `address`) lands in (start, entry] (symbols::entered_between).
#[pyfunction]
pub fn entered_between(py: Python<'_>, code: &[u8], address: u64, ranges: Vec<(u64, u64)>) -> Vec<bool> {
    py.allow_threads(|| symbols::entered_between(code, address, &ranges))
}

/// Reclaims resident pages of mapped libraries matching `needles`; bytes advised.
#[pyfunction]
pub fn page_out_libraries(py: Python<'_>, needles: Vec<String>) -> usize {
    py.allow_threads(|| crate::memory::page_out_libraries(&needles))
}

/// Drops this process to `uid`/`gid` with no capabilities, sets no_new_privs
/// and enforces Landlock: reads only under `read_exec` (and may execute
/// there), `read` and `read_write`, writes only under `read_write`, no TCP.
/// Returns "full", "partial" or "none".
#[pyfunction]
pub fn confine_self(uid: u32, gid: u32, read_exec: Vec<String>, read: Vec<String>, read_write: Vec<String>)
    -> PyResult<&'static str> {
    Ok(crate::confine::confine(&crate::confine::Confinement { uid, gid, read_exec, read, read_write })?)
}

/// The kernel's Landlock ABI version (0 when Landlock is off).
#[pyfunction]
pub fn landlock_abi() -> i64 {
    crate::confine::landlock_abi()
}
