//! EventBatch frames for scripts: encoded once per chunk with prost, then
//! given a per-subscriber header (subscription id, lost count) at write time.

use prost::Message;

use crate::batch::Columns;
use crate::gen::EventBatch;

/// The shared part of a frame: every field except subscription_id and lost.
pub fn encode_body(columns: &Columns, nargs: usize, comm_names: &[String]) -> Vec<u8> {
    let n = columns.len();
    let mut args = Vec::with_capacity(n * nargs);
    for i in 0..n {
        for column in &columns.args[..nargs] {
            args.push(column[i]);
        }
    }
    // Left out (all false) unless a function returning nothing returned: the
    // usual chunk pays nothing on the wire for it.
    let no_return_value = if columns.has_value == columns.has_return {
        Vec::new()
    } else {
        columns.has_return.iter().zip(&columns.has_value).map(|(&r, &v)| r && !v).collect()
    };
    let batch = EventBatch {
        subscription_id: 0,
        timestamp_ns: columns.ts_ns.iter().map(|&t| t as u64).collect(),
        pid: columns.pid.clone(),
        tid: columns.tid.clone(),
        probe_index: columns.probe_id.clone(),
        duration_ns: columns.duration_ns.iter().map(|&d| d as u64).collect(),
        has_return: columns.has_return.clone(),
        nargs: nargs as u32,
        args,
        return_value: columns.ret.clone(),
        comm_index: columns.comm.clone(),
        comm_names: comm_names.to_vec(),
        lost: 0,
        end: false,
        no_return_value,
    };
    batch.encode_to_vec()
}

/// A complete length-delimited frame: varint length, header fields, body.
/// Concatenating encoded fields is a valid protobuf message, so the body is
/// shared between subscribers and only the header differs.
pub fn frame(subscription_id: u64, lost: u64, end: bool, body: &[u8]) -> Vec<u8> {
    let header = EventBatch { subscription_id, lost, end, ..Default::default() }.encode_to_vec();
    let len = header.len() + body.len();
    let mut out = Vec::with_capacity(len + 10);
    prost::encoding::encode_varint(len as u64, &mut out);
    out.extend_from_slice(&header);
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::CommTable;
    use crate::event::{CoralEvent, EV_HAS_RETURN, EV_NO_VALUE};

    #[test]
    fn header_plus_shared_body_decodes_as_one_batch() {
        let mut comms = CommTable::default();
        let mut cols = Columns::with_capacity(2);
        for i in 0..2u32 {
            let mut comm = [0u8; 16];
            comm[..3].copy_from_slice(b"pay");
            let e = CoralEvent {
                ts_ns: 10 + i as u64,
                duration_ns: 500,
                tgid: 7,
                tid: 8 + i,
                probe_id: 0,
                flags: 1,
                args: [i as i64, -1, 2, 3, 4, 5],
                ret: -(i as i64),
                comm,
            };
            cols.push(&e, 1_000, &mut comms);
        }
        let body = encode_body(&cols, 2, &comms.names);
        let framed = frame(42, 3, false, &body);
        let mut buf = &framed[..];
        let len = prost::encoding::decode_varint(&mut buf).unwrap() as usize;
        assert_eq!(len, buf.len());
        let batch = EventBatch::decode(buf).unwrap();
        assert_eq!(batch.subscription_id, 42);
        assert_eq!(batch.lost, 3);
        assert_eq!(batch.timestamp_ns, vec![1_010, 1_011]);
        assert_eq!(batch.tid, vec![8, 9]);
        assert_eq!(batch.args, vec![0, -1, 1, -1]);
        assert_eq!(batch.return_value, vec![0, -1]);
        assert_eq!(batch.comm_names, vec!["pay".to_string()]);
        assert!(!batch.end);
        assert!(batch.no_return_value.is_empty());
    }

    #[test]
    fn a_return_without_a_value_is_marked_per_event() {
        let mut comms = CommTable::default();
        let mut cols = Columns::with_capacity(3);
        for flags in [EV_HAS_RETURN, EV_HAS_RETURN | EV_NO_VALUE, 0] {
            let e = CoralEvent {
                ts_ns: 1,
                duration_ns: 9,
                tgid: 1,
                tid: 1,
                probe_id: 0,
                flags,
                args: [0; 6],
                ret: 0,
                comm: [0; 16],
            };
            cols.push(&e, 0, &mut comms);
        }
        let batch = EventBatch::decode(&encode_body(&cols, 0, &comms.names)[..]).unwrap();
        assert_eq!(batch.has_return, vec![true, true, false]);
        assert_eq!(batch.no_return_value, vec![false, true, false]);
        assert_eq!(batch.duration_ns, vec![9, 9, 0]);
    }
}
