//! Decoded events as columns: what Python, DuckDB and the printers receive.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use chrono::DateTime;

use crate::event::{CoralEvent, MAX_ARGS};

/// What every batch of one session shares: probe names and how to print.
pub struct SessionMeta {
    /// JSON-escaped function names, indexed by probe_id.
    pub probe_names_json: Vec<String>,
    /// Argument count to show per probe_id.
    pub nargs: Vec<usize>,
    /// Offset from CLOCK_MONOTONIC (bpf_ktime_get_ns) to epoch nanoseconds.
    pub wall_offset_ns: i64,
}

/// Interns comm strings so a batch carries small codes, not 16-byte strings.
#[derive(Default)]
pub struct CommTable {
    /// Consecutive records nearly always share a comm: skip the hash then.
    last: Option<([u8; 16], u32)>,
    codes: HashMap<[u8; 16], u32>,
    pub names: Vec<String>,
    names_json: Vec<String>,
}

impl CommTable {
    #[inline]
    fn code(&mut self, event: &CoralEvent) -> u32 {
        if let Some((comm, code)) = self.last {
            if comm == event.comm {
                return code;
            }
        }
        if let Some(&code) = self.codes.get(&event.comm) {
            self.last = Some((event.comm, code));
            return code;
        }
        let name = String::from_utf8_lossy(event.comm_bytes()).into_owned();
        let code = self.names.len() as u32;
        self.names_json.push(serde_json::to_string(&name).expect("a string serializes"));
        self.names.push(name);
        self.codes.insert(event.comm, code);
        self.last = Some((event.comm, code));
        code
    }
}

#[derive(Default)]
pub struct Columns {
    pub ts_ns: Vec<i64>,
    pub duration_ns: Vec<i64>,
    pub has_return: Vec<bool>,
    /// `ret` is a value: has_return, and the function is not known to return nothing.
    pub has_value: Vec<bool>,
    pub pid: Vec<u32>,
    pub tid: Vec<u32>,
    pub probe_id: Vec<u32>,
    pub args: [Vec<i64>; MAX_ARGS],
    pub ret: Vec<i64>,
    pub comm: Vec<u32>,
}

impl Columns {
    pub fn with_capacity(n: usize) -> Columns {
        Columns {
            ts_ns: Vec::with_capacity(n),
            duration_ns: Vec::with_capacity(n),
            has_return: Vec::with_capacity(n),
            has_value: Vec::with_capacity(n),
            pid: Vec::with_capacity(n),
            tid: Vec::with_capacity(n),
            probe_id: Vec::with_capacity(n),
            args: std::array::from_fn(|_| Vec::with_capacity(n)),
            ret: Vec::with_capacity(n),
            comm: Vec::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.ts_ns.len()
    }

    pub fn clear(&mut self) {
        self.ts_ns.clear();
        self.duration_ns.clear();
        self.has_return.clear();
        self.has_value.clear();
        self.pid.clear();
        self.tid.clear();
        self.probe_id.clear();
        self.args.iter_mut().for_each(Vec::clear);
        self.ret.clear();
        self.comm.clear();
    }

    pub fn extend_from(&mut self, other: &Columns) {
        self.ts_ns.extend_from_slice(&other.ts_ns);
        self.duration_ns.extend_from_slice(&other.duration_ns);
        self.has_return.extend_from_slice(&other.has_return);
        self.has_value.extend_from_slice(&other.has_value);
        self.pid.extend_from_slice(&other.pid);
        self.tid.extend_from_slice(&other.tid);
        self.probe_id.extend_from_slice(&other.probe_id);
        for (mine, theirs) in self.args.iter_mut().zip(&other.args) {
            mine.extend_from_slice(theirs);
        }
        self.ret.extend_from_slice(&other.ret);
        self.comm.extend_from_slice(&other.comm);
    }

    pub fn is_empty(&self) -> bool {
        self.ts_ns.is_empty()
    }

    #[inline]
    pub fn push(&mut self, e: &CoralEvent, wall_offset_ns: i64, comms: &mut CommTable) {
        self.ts_ns.push(e.ts_ns as i64 + wall_offset_ns);
        let has_return = e.has_return();
        self.duration_ns.push(if has_return { e.duration_ns as i64 } else { 0 });
        self.has_return.push(has_return);
        self.has_value.push(e.has_value());
        self.pid.push(e.tgid);
        self.tid.push(e.tid);
        self.probe_id.push(e.probe_id);
        for (column, value) in self.args.iter_mut().zip(e.args) {
            column.push(value);
        }
        self.ret.push(e.ret);
        self.comm.push(comms.code(e));
    }
}

/// A batch ready to leave the consumer thread.
pub struct Batch {
    pub columns: Columns,
    pub comm_names: Vec<String>,
    comm_names_json: Vec<String>,
    pub meta: Arc<SessionMeta>,
}

impl Batch {
    pub fn new(columns: Columns, comms: &CommTable, meta: Arc<SessionMeta>) -> Batch {
        Batch {
            columns,
            comm_names: comms.names.clone(),
            comm_names_json: comms.names_json.clone(),
            meta,
        }
    }

    /// One JSON object per event (the jsonl contract in docs/architecture.md).
    pub fn write_jsonl(&self, out: &mut Vec<u8>) {
        let c = &self.columns;
        // Events of one second share the date and time: formatted once per second.
        let mut second = (i64::MIN, String::new());
        for i in 0..c.len() {
            let ts = c.ts_ns[i];
            let (secs, nanos) = (ts.div_euclid(1_000_000_000), ts.rem_euclid(1_000_000_000));
            if secs != second.0 {
                let at = DateTime::from_timestamp(secs, 0).unwrap_or_default();
                second = (secs, at.format("%Y-%m-%dT%H:%M:%S").to_string());
            }
            let probe = c.probe_id[i] as usize;
            let function = self.meta.probe_names_json.get(probe).map_or("null", |s| s.as_str());
            let _ = write!(
                out,
                "{{\"ts\":\"{}.{nanos:09}Z\",\"ts_ns\":{ts},\"pid\":{},\"tid\":{},\"comm\":{},\"function\":{function},\"duration_ns\":",
                second.1, c.pid[i], c.tid[i], self.comm_names_json[c.comm[i] as usize],
            );
            if c.has_return[i] {
                let _ = write!(out, "{}", c.duration_ns[i]);
            } else {
                out.extend_from_slice(b"null");
            }
            out.extend_from_slice(b",\"args\":[");
            let nargs = self.meta.nargs.get(probe).copied().unwrap_or(0);
            for a in 0..nargs {
                if a > 0 {
                    out.push(b',');
                }
                let _ = write!(out, "{}", c.args[a][i]);
            }
            out.extend_from_slice(b"],\"ret\":");
            if c.has_value[i] {
                let _ = write!(out, "{}", c.ret[i]);
            } else {
                out.extend_from_slice(b"null");
            }
            out.extend_from_slice(b"}\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EV_HAS_RETURN, EV_NO_VALUE};

    fn event(comm: &[u8], flags: u32) -> CoralEvent {
        let mut c = [0u8; 16];
        c[..comm.len()].copy_from_slice(comm);
        CoralEvent {
            ts_ns: 5,
            duration_ns: 700,
            tgid: 10,
            tid: 11,
            probe_id: 0,
            flags,
            args: [1, -2, 3, 4, 5, 6],
            ret: -1,
            comm: c,
        }
    }

    #[test]
    fn jsonl_has_the_contract_fields() {
        let meta = Arc::new(SessionMeta {
            probe_names_json: vec!["\"Process\\\"Payment\"".into()],
            nargs: vec![2],
            wall_offset_ns: 1_700_000_000_000_000_000,
        });
        let mut comms = CommTable::default();
        let mut cols = Columns::with_capacity(2);
        cols.push(&event(b"pay", EV_HAS_RETURN), meta.wall_offset_ns, &mut comms);
        cols.push(&event(b"pay", 0), meta.wall_offset_ns, &mut comms);
        let mut next_second = event(b"pay", EV_HAS_RETURN);
        next_second.ts_ns += 1_999_999_999;
        cols.push(&next_second, meta.wall_offset_ns, &mut comms);
        let batch = Batch::new(cols, &comms, meta);
        let mut out = Vec::new();
        batch.write_jsonl(&mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "{\"ts\":\"2023-11-14T22:13:20.000000005Z\",\"ts_ns\":1700000000000000005,\"pid\":10,\"tid\":11,\
             \"comm\":\"pay\",\"function\":\"Process\\\"Payment\",\"duration_ns\":700,\"args\":[1,-2],\"ret\":-1}"
        );
        assert!(lines[1].contains("\"duration_ns\":null") && lines[1].ends_with("\"ret\":null}"));
        assert!(lines[2].starts_with("{\"ts\":\"2023-11-14T22:13:22.000000004Z\",\"ts_ns\":1700000002000000004,"));
        assert_eq!(batch.comm_names, vec!["pay".to_string()]);
    }

    #[test]
    fn jsonl_of_a_function_returning_nothing_keeps_its_latency_not_its_ret() {
        let meta =
            Arc::new(SessionMeta { probe_names_json: vec!["\"f\"".into()], nargs: vec![0], wall_offset_ns: 0 });
        let mut comms = CommTable::default();
        let mut cols = Columns::with_capacity(1);
        cols.push(&event(b"pay", EV_HAS_RETURN | EV_NO_VALUE), 0, &mut comms);
        let batch = Batch::new(cols, &comms, meta);
        let mut out = Vec::new();
        batch.write_jsonl(&mut out);
        let line = String::from_utf8(out).unwrap();
        assert!(line.contains("\"duration_ns\":700,") && line.ends_with("\"ret\":null}\n"), "{line}");
        assert_eq!((batch.columns.has_return[0], batch.columns.has_value[0]), (true, false));
    }
}
