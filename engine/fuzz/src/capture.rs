//! The `capture` target: arbitrary bytes as a capture file, read from memory, through a
//! whole `Scan` pass (reader → decode → Scanner → observer → verdict), every connection
//! pulled and written as its `tcptrace/1` summary line, as `tcptrace summary` does.
//!
//! Besides "no panic", it checks what the pass promises its caller: every connection is
//! handed over exactly once, every segment is counted in exactly one connection, a kept
//! connection has one step per segment (and one per segment inferred from the other
//! side's ACKs, frame 0), and the reader never claims more bytes than the input holds.
//!
//! Uses nothing but `tcptrace_engine` and std: engine/tests/fuzz_regressions.rs includes
//! this file.

use std::collections::HashSet;
use std::io::Cursor;

use tcptrace_engine::grouping::Keep;
use tcptrace_engine::jsonline::summary_line;
use tcptrace_engine::reader::CaptureReader;
use tcptrace_engine::scan::Scan;

/// What one pass saw (for the regression tests' assertions).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// False when `CaptureReader::new` refused the input (not a capture).
    pub opened: bool,
    pub records: u64,
    pub connections: u64,
    pub segments: u64,
    pub warnings: usize,
}

/// One `Scan` pass over `data` taken as a capture file (linger 60 s, every connection's
/// segments kept), with the pass's invariants asserted.
pub fn run(data: &[u8]) -> Outcome {
    let reader = match CaptureReader::new(Cursor::new(data), "fuzz") {
        Ok(reader) => reader,
        Err(message) => {
            assert!(!message.is_empty() && !message.contains('\n'));
            return Outcome::default();
        }
    };
    let mut scan = Scan::new(reader, 60.0, Keep::All);
    let mut streams = HashSet::new();
    let mut packets = 0u64;
    while let Some(done) = scan.next_finished() {
        let line = summary_line(&done);
        assert!(line.starts_with('{') && line.ends_with('}') && !line.contains('\n'));
        let _ = done.verdict.close_text();
        assert!(streams.insert(done.stream), "stream {} twice", done.stream);
        let detail = done
            .detail
            .as_ref()
            .expect("Keep::All keeps every connection");
        assert_eq!(detail.segments.len(), detail.steps.len());
        // Inferred segments (frame 0: in no record) have steps too, and are no packets.
        let inferred = done.client_sent.inferred + done.server_sent.inferred;
        let unseen = detail.segments.iter().filter(|s| s.frame == 0).count() as u64;
        assert_eq!(unseen, inferred);
        assert_eq!(detail.segments.len() as u64, done.packets + inferred);
        assert_eq!(
            done.client_sent.packets + done.server_sent.packets,
            done.packets
        );
        packets += done.packets;
    }
    assert!(scan.ended());
    assert!(scan.next_finished().is_none());
    assert_eq!(streams.len() as u64, scan.connections());
    assert!(streams.iter().all(|&s| s < scan.connections()));
    assert_eq!(packets, scan.segments());
    assert!(scan.segments() <= scan.records);
    assert!(scan.bytes_read() <= data.len() as u64);
    Outcome {
        opened: true,
        records: scan.records,
        connections: scan.connections(),
        segments: scan.segments(),
        warnings: scan.warnings().len(),
    }
}
