//! Capture duplicates: one segment recorded twice (or three times) by the capture.
//!
//! A SPAN port, or `tcpdump -i any` over a bridge (the frame is seen on the port it
//! came in on, on the bridge and on the port it leaves by), records one segment several
//! times, microseconds apart. The copies hold the same bytes: the same numbers, flags
//! and window, the same IPv4 ID (a stack gives each segment it sends, retransmissions
//! included, a new one) and the same TCP checksum. Without an IPv4 ID (IPv6, or a
//! stack that writes 0) identical bytes are not enough: two RSTs answering two
//! segments, or two duplicate ACKs without timestamps, are byte for byte the same; a
//! copy then also needs the other side to have sent nothing in between (the copies of
//! one frame are recorded before it is delivered and can be answered). Such a copy is
//! tagged
//! `capture-duplicate`, counted apart, and moves nothing: no state, no byte count, no
//! retransmission or duplicate-ACK tag, nothing for Zeek's history; it counts only as
//! a frame (the packet counts, like tshark's and Zeek's, include it).

use std::hash::{Hash, Hasher};

use rustc_hash::FxHasher;

use super::{Machine, Side, Step, CAPTURE_DUPLICATE, DUPLICATE_WINDOW};
use crate::segment::{Segment, ACK, SYN};

/// What makes two frames the same segment; None when the frame carries neither an
/// IPv4 ID nor a checksum (segments built by hand, not captured): those are never
/// called copies.
pub(super) fn fingerprint(seg: &Segment) -> Option<u64> {
    if seg.ip_id.is_none() && seg.checksum.is_none() {
        return None;
    }
    let mut h = FxHasher::default();
    (seg.seq, seg.ack, seg.flags, seg.length, seg.win).hash(&mut h);
    (seg.ip_id, seg.checksum).hash(&mut h);
    Some(h.finish())
}

impl Machine {
    /// When `seg` is a copy of one of `s`'s two latest segments: counted, and (when
    /// annotating) a Step with both states as they stand, tagged CAPTURE_DUPLICATE.
    pub(super) fn capture_copy(
        &mut self,
        s: &mut Side,
        r: &Side,
        seg: &Segment,
        fingerprint: Option<u64>,
        annotate: bool,
    ) -> bool {
        let Some(fp) = fingerprint else {
            return false;
        };
        let identified = seg.ip_id.is_some_and(|id| id != 0);
        let copy = (self.recent[s.role as usize].iter()).any(|&(f, t, peer)| {
            f == fp && (seg.t - t).abs() <= DUPLICATE_WINDOW && (identified || peer == r.packets)
        });
        if !copy {
            return false;
        }
        // A frame of the capture all the same: in the packet counts (as tshark and
        // Zeek count it), and apart.
        self.packets += 1;
        s.packets += 1;
        self.copies[s.role as usize] += 1;
        if annotate {
            let (client_state, server_state) = match s.role {
                super::Role::Client => (s.state, r.state),
                super::Role::Server => (r.state, s.state),
            };
            let syn = seg.flags & SYN != 0;
            let raw_win = i64::from(seg.win);
            let ack = if seg.flags & ACK != 0 && r.base >= 0 {
                r.relative(seg.ack).max(0)
            } else {
                0
            };
            self.steps.push(Step {
                t: seg.t,
                sender: s.role,
                flags: seg.flags,
                seq: s.relative(seg.seq),
                ack,
                length: seg.length,
                win: if syn { raw_win } else { raw_win << s.shift },
                client_state,
                server_state,
                tags: CAPTURE_DUPLICATE,
                acked: 0,
                delay: 0.0,
            });
        }
        true
    }
}
