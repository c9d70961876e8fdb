//! One pass over a capture: records from the reader, segments from the decoder,
//! connections from the scanner, handed over as each is done with.
//!
//! The pass is pulled, not pushed: `next_finished` reads only as far as it must to hand
//! over the next connection, so a caller streams a capture of any size (or a pipe) in
//! flat memory and can show progress as it goes.

use std::collections::BTreeMap;
use std::io::Read;

use crate::decode::{decode_frame, Decoded, Frame, Ports, DEFAULT_PORTS};
use crate::diagnose::{Rules, Tally};
use crate::encap::Skip;
use crate::grouping::{Finished, Keep, Scanner};
use crate::reader::CaptureReader;

pub struct Scan<R: Read> {
    reader: CaptureReader<R>,
    scanner: Scanner,
    ended: bool,
    /// Records read so far, TCP or not.
    pub records: u64,
    /// Frames that may hold a TCP segment the decoder could not reach, by reason.
    skipped: BTreeMap<Skip, u64>,
    /// UDP ports read as VXLAN: IANA's and Linux's, and those the user names.
    vxlan_ports: Vec<u16>,
    /// The findings of every connection handed over so far.
    pub tally: Tally,
}

impl<R: Read> Scan<R> {
    pub fn new(reader: CaptureReader<R>, linger: f64, keep: Keep) -> Self {
        Self {
            reader,
            scanner: Scanner::new(linger, keep),
            ended: false,
            records: 0,
            skipped: BTreeMap::new(),
            vxlan_ports: DEFAULT_PORTS.vxlan.to_vec(),
            tally: Tally::default(),
        }
    }

    /// Also read UDP datagrams to these ports as VXLAN.
    pub fn add_vxlan_ports(&mut self, ports: &[u16]) {
        self.vxlan_ports.extend_from_slice(ports);
    }

    /// Frames skipped because a layer was not understood: (why, how many), most first.
    pub fn skipped(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = (self.skipped.iter())
            .map(|(why, n)| (why.to_string(), *n))
            .collect();
        out.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        out
    }

    /// The next connection done with, reading on as needed; None once the input is
    /// exhausted and every connection handed over.
    pub fn next_finished(&mut self) -> Option<Finished> {
        let mut unlimited = u64::MAX;
        self.next_finished_within(&mut unlimited)
    }

    /// As `next_finished`, but reading at most `*budget` records (counted down) before
    /// giving up for now: a caller that shows progress gets control back regularly even
    /// while one long connection holds everything.
    pub fn next_finished_within(&mut self, budget: &mut u64) -> Option<Finished> {
        loop {
            if let Some(done) = self.scanner.pop() {
                if !done.findings.is_empty() {
                    self.tally
                        .add(done.stream, done.client, done.server, &done.findings);
                }
                return Some(done);
            }
            if self.ended || *budget == 0 {
                return None;
            }
            *budget -= 1;
            self.step();
        }
    }

    /// The input is read to its end and every connection handed over.
    pub fn exhausted(&mut self) -> bool {
        self.ended && self.scanner.is_empty()
    }

    /// Read one record (or notice the end of the input).
    fn step(&mut self) {
        let Some(rec) = self.reader.next_record() else {
            self.ended = true;
            self.scanner.finish();
            return;
        };
        self.records += 1;
        self.scanner.record(rec.ts);
        let frame = Frame {
            linktype: rec.linktype,
            data: rec.data,
            orig_len: rec.orig_len,
            ts: rec.ts,
            index: rec.index,
        };
        let ports = Ports {
            vxlan: &self.vxlan_ports,
            geneve: DEFAULT_PORTS.geneve,
        };
        // Matched by reference: binding the segment by value copied it (160 bytes).
        match &decode_frame(&frame, rec.comments, ports) {
            Decoded::Segment(seg) => self.scanner.add(seg),
            Decoded::Other => {}
            Decoded::Skipped(why) => *self.skipped.entry(*why).or_default() += 1,
        }
    }

    /// `diagnose`'s thresholds, before the first connection is handed over.
    pub fn set_rules(&mut self, rules: Rules) {
        self.scanner.set_rules(rules);
    }

    pub fn warnings(&self) -> &[String] {
        self.reader.warnings()
    }

    pub fn bytes_read(&self) -> u64 {
        self.reader.bytes_read()
    }

    pub fn connections(&self) -> u64 {
        self.scanner.connections
    }

    pub fn segments(&self) -> u64 {
        self.scanner.segments
    }

    pub fn peak_open(&self) -> u64 {
        self.scanner.peak_open
    }

    pub fn ended(&self) -> bool {
        self.ended
    }
}
