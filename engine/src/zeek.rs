//! Zeek's `conn_state` and `history` for one connection, computed the way Zeek does.
//!
//! Transcribed from zeek/zeek: `conn_state()` in scripts/base/protocols/conn/main.zeek,
//! and `update_history()`, `update_window()`, `update_last_seq()` and
//! `UpdateStateMachine()` in src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc.
//! Zeek keeps a coarse state per endpoint (not RFC 9293's): INACTIVE, SYN_SENT,
//! SYN_ACK_SENT, PARTIAL (traffic without a SYN), ESTABLISHED, CLOSED (it sent a FIN) and
//! RESET (it sent a RST); `conn_state` is a function of the two. Zeek's originator is our
//! client.
//!
//! The history letters: s h a d f r = SYN, SYN+ACK, pure ACK (no data, no SYN/FIN/RST),
//! payload (no SYN/FIN/RST), FIN, RST; upper case from the originator. `a` and `d` are
//! written once per direction; `f r s h` again only at a different sequence number. `t`
//! (payload that does not go past what was already sent) and `w` (zero window, not on a
//! RST, not after the peer's FIN) are logarithmic: the 1st, 10th, 100th ... time. `q`
//! marks two or more of SYN, FIN and RST on one segment, `i` FIN and RST together.
//!
//! Left out: the letters c (bad checksum), g (content gap) and x (analysis limits), which
//! need data this model does not carry. `^` is written when the first segment came from
//! our server without a SYN. That approximates Zeek, which flips a connection only when
//! the sender's port is in its likely_server_ports table; our guessed server is the side
//! with the lower port, so the two can disagree on unusual ports.

use crate::segment::{ACK, FIN, RST, SYN};

/// Zeek's per-endpoint state (TCP_ENDPOINT_*), coarser than RFC 9293's.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum ZeekState {
    Inactive,
    SynSent,
    SynAckSent,
    /// Traffic without a SYN: the capture (or Zeek) joined mid-connection.
    Partial,
    Established,
    /// It sent a FIN.
    Closed,
    /// It sent a RST.
    Reset,
}

// Zeek's per-direction "seen once" history bits (TCP_Endpoint::HistoryMasks); the
// responder's are shifted left by 16.
const H_SYN: u32 = 0x1;
const H_FIN: u32 = 0x2;
const H_RST: u32 = 0x4;
const H_FIN_RST: u32 = 0x8;
const H_DATA: u32 = 0x10;
const H_ACK: u32 = 0x20;
const H_MULTI: u32 = 0x40;

const CONTROL: u8 = SYN | FIN | RST;

// Indices into `counts`/`thresholds`: T (repeated payload) then W (zero window), each
// originator then responder.
const COUNT_T: usize = 0;
const COUNT_W: usize = 2;

/// Feed it every segment (`packet`) in capture order; read `history` and `conn_state()`
/// at any time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZeekTracker {
    /// [originator, responder].
    pub state: [ZeekState; 2],
    /// Each side's state before its last change (Zeek's `prev_state`).
    pub prev: [ZeekState; 2],
    letters: String,
    seen: u32,
    /// The last SYN, FIN, RST sequence key: originator's three, then the responder's.
    last: [i64; 6],
    counts: [u64; 4],
    thresholds: [u64; 4],
}

impl Default for ZeekTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl ZeekTracker {
    pub fn new() -> Self {
        ZeekTracker {
            state: [ZeekState::Inactive; 2],
            prev: [ZeekState::Inactive; 2],
            letters: String::new(),
            seen: 0,
            last: [0; 6],
            counts: [0; 4],
            thresholds: [1; 4],
        }
    }

    /// The first segment came from the responder without a SYN.
    pub fn flipped(&mut self) {
        self.letters.push('^');
    }

    pub fn history(&self) -> &str {
        &self.letters
    }

    /// One segment. `rel_seq` is its sequence number relative to any fixed base of the
    /// sender's space; `delta_last` is its end (seq + SYN + payload + FIN, RST payload
    /// excluded) minus the highest end the sender had reached before it.
    pub fn packet(
        &mut self,
        orig: bool,
        flags: u8,
        rel_seq: i64,
        length: u32,
        window: u16,
        delta_last: i64,
    ) {
        let i = if orig { 0 } else { 1 };
        let control = flags & CONTROL;
        if control != 0 {
            self.control_letter(i, flags, control, rel_seq, length);
        } else {
            // A plain segment: d for payload, a for a pure ACK, each once per side.
            let bit = if length > 0 {
                H_DATA
            } else if flags & ACK != 0 {
                H_ACK
            } else {
                0
            };
            if bit != 0 {
                self.once(i, bit, if length > 0 { 'D' } else { 'A' });
            }
        }
        let st = self.state[i];
        // update_window(): a zero window counts unless it rides on a RST, its sender was
        // reset, or its receiver has already sent a FIN (no window matters then).
        if window == 0
            && flags & RST == 0
            && self.state[1 - i] != ZeekState::Closed
            && st != ZeekState::Reset
        {
            self.scaled(COUNT_W + i, 'W', i);
        }
        // update_last_seq(): payload that does not reach past what was already sent.
        if delta_last <= 0 && length > 0 && st != ZeekState::Reset {
            self.scaled(COUNT_T + i, 'T', i);
        }
        // Past INACTIVE, only a SYN, FIN or RST moves a state.
        if st == ZeekState::Inactive || control != 0 {
            self.transition(i, flags, length);
        }
    }

    /// The letter of a segment with SYN, FIN or RST. With one of them, s/h, f or r is
    /// written the first time and again whenever the sequence key differs from the last
    /// one of that kind (a retransmission repeats the key: no new letter).
    fn control_letter(&mut self, i: usize, flags: u8, control: u8, rel_seq: i64, length: u32) {
        if control & (control - 1) != 0 {
            self.multi_flag(i, flags);
            return;
        }
        let (bit, code, k, key) = if control == SYN {
            let code = if flags & ACK != 0 { 'H' } else { 'S' };
            (H_SYN, code, 0, rel_seq)
        } else if control == FIN {
            // A FIN's sequence key is where it sits: after the segment's payload.
            (H_FIN, 'F', 1, rel_seq.wrapping_add(i64::from(length)))
        } else {
            (H_RST, 'R', 2, rel_seq)
        };
        let mask = bit << (16 * i);
        let k = k + 3 * i;
        if self.seen & mask == 0 {
            self.seen |= mask;
            self.add(i, code);
        } else if key != self.last[k] {
            self.add(i, code);
        }
        self.last[k] = key;
    }

    fn add(&mut self, i: usize, code: char) {
        self.letters.push(if i == 0 {
            code
        } else {
            code.to_ascii_lowercase()
        });
    }

    /// Zeek's CheckHistory: record `code` the first time only.
    fn once(&mut self, i: usize, bit: u32, code: char) {
        let mask = bit << (16 * i);
        if self.seen & mask == 0 {
            self.seen |= mask;
            self.add(i, code);
        }
    }

    /// t and w are logarithmic: the 1st, 10th, 100th ... occurrence adds a letter.
    fn scaled(&mut self, k: usize, code: char, i: usize) {
        self.counts[k] += 1;
        if self.counts[k] == self.thresholds[k] {
            self.add(i, code);
            // Saturates at u64::MAX, a count never reached: no letter after 10^19.
            self.thresholds[k] = self.thresholds[k].saturating_mul(10);
        }
    }

    /// Two or more of SYN, FIN and RST on one segment: I for FIN+RST, else Q.
    fn multi_flag(&mut self, i: usize, flags: u8) {
        if flags & FIN != 0 && flags & RST != 0 {
            self.once(i, H_FIN_RST, 'I');
        } else {
            self.once(i, H_MULTI, 'Q');
        }
    }

    fn set(&mut self, i: usize, new: ZeekState) {
        if new != self.state[i] {
            self.prev[i] = self.state[i];
            self.state[i] = new;
        }
    }

    /// UpdateStateMachine(): side `i` sent a segment with these flags.
    fn transition(&mut self, i: usize, flags: u8, length: u32) {
        use ZeekState::*;
        let (st, peer) = (self.state[i], self.state[1 - i]);
        let (syn, fin, rst) = (flags & SYN != 0, flags & FIN != 0, flags & RST != 0);
        match st {
            Inactive => self.inactive_sends(i, flags, length),
            SynSent | SynAckSent => {
                if fin {
                    self.set(i, Closed);
                }
                if rst {
                    self.set(i, Reset);
                }
            }
            Established | Partial => {
                if syn && st == Partial && peer == Inactive && flags & ACK == 0 {
                    self.set(i, SynSent);
                }
                if fin && !rst {
                    self.set(i, Closed);
                    // A FIN after the peer's FIN-then-RST: Zeek counts it a normal close.
                    if peer == Reset && self.prev[1 - i] == Closed {
                        self.set(1 - i, Closed);
                    }
                }
                if rst {
                    self.set(i, Reset);
                }
            }
            Closed if rst && peer != Closed => self.set(i, Reset),
            _ => {}
        }
    }

    /// UpdateInactiveState(): the first segment from side `i`.
    fn inactive_sends(&mut self, i: usize, flags: u8, length: u32) {
        use ZeekState::*;
        let peer = self.state[1 - i];
        let ack = flags & ACK != 0;
        if flags & SYN != 0 {
            if i == 0 {
                self.set(0, if ack { SynAckSent } else { SynSent });
            } else {
                if peer == SynSent {
                    self.set(0, Established);
                }
                self.set(1, Established);
            }
        }
        if flags & FIN != 0 {
            self.set(i, Closed);
        }
        if flags & RST != 0 {
            self.set(i, Reset);
        }
        if self.state[i] == Inactive {
            if i == 1 && length == 0 && peer == SynSent {
                // An ACK of a SYN before any SYN+ACK: not a partial connection.
            } else if ack && peer == Established {
                self.set(i, Established);
            } else {
                self.set(i, Partial);
            }
        }
    }

    /// main.zeek's conn_state(); the byte counts only matter for REJ vs RSTR.
    pub fn conn_state(&self, orig_bytes: u64, resp_bytes: u64) -> &'static str {
        use ZeekState::*;
        let [os, rs] = self.state;
        let o_inactive = matches!(os, Inactive | Partial);
        let r_inactive = matches!(rs, Inactive | Partial);
        if rs == Reset {
            if matches!(os, SynSent | SynAckSent)
                || (os == Reset && orig_bytes == 0 && resp_bytes == 0)
            {
                return "REJ";
            }
            return if o_inactive { "RSTRH" } else { "RSTR" };
        }
        if os == Reset {
            if r_inactive {
                return if rstos0_history(&self.letters) {
                    "RSTOS0"
                } else {
                    "OTH"
                };
            }
            return "RSTO";
        }
        match (os, rs) {
            (Closed, Closed) => "SF",
            (Closed, _) if r_inactive => "SH",
            (Closed, _) => "S2",
            (_, Closed) if o_inactive => "SHR",
            (_, Closed) => "S3",
            (SynSent, Inactive) => "S0",
            (Established, Established) => "S1",
            _ => "OTH",
        }
    }
}

/// Whether the whole history matches main.zeek's `/\^?S[^HAFGIQ]*R.*/`: the originator's
/// SYN, then its RST before any handshake, data, FIN, gap or odd-flags letter of its own.
/// The first R after the S decides: if a forbidden letter comes before it, no later R
/// can have a clean run behind it either.
fn rstos0_history(history: &str) -> bool {
    let rest = history.strip_prefix('^').unwrap_or(history);
    let Some(rest) = rest.strip_prefix('S') else {
        return false;
    };
    for c in rest.chars() {
        match c {
            'R' => return true,
            'H' | 'A' | 'F' | 'G' | 'I' | 'Q' => return false,
            _ => {}
        }
    }
    false
}

/// Derived by hand from Zeek's definitions (tests/test_zeek.py's expectations).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::observer::testing::{after_handshake, handshake, run, seg, Seg, C, S};

    /// History and conn_state after the observer's cheap path.
    fn zeek(segments: &[Seg]) -> (String, String) {
        let obs = run(segments, false);
        let state = obs.zeek.conn_state(obs.client.bytes, obs.server.bytes);
        is(obs.zeek.history(), state)
    }

    fn with_data(rest: Vec<Seg>) -> Vec<Seg> {
        let mut all = after_handshake(vec![
            seg(0.010, 'c', "PA", C + 1, S + 1).len(5),
            seg(0.011, 's', "A", S + 1, C + 6),
            seg(0.012, 's', "PA", S + 1, C + 6).len(7),
            seg(0.013, 'c', "A", C + 6, S + 8),
        ]);
        all.extend(rest);
        all
    }

    fn is(history: &str, state: &str) -> (String, String) {
        (history.to_string(), state.to_string())
    }

    #[test]
    fn client_first_four_way_close_with_data() {
        // S h A(handshake ACK) D a d (c's ACK: 'A' already) F (s's ACK: 'a' already) f
        let segments = with_data(vec![
            seg(0.02, 'c', "FA", C + 6, S + 8),
            seg(0.021, 's', "A", S + 8, C + 7),
            seg(0.03, 's', "FA", S + 8, C + 7),
            seg(0.031, 'c', "A", C + 7, S + 9),
        ]);
        assert_eq!(zeek(&segments), is("ShADadFf", "SF"));
    }

    #[test]
    fn server_first_three_way_close() {
        let segments = with_data(vec![
            seg(0.02, 's', "FA", S + 8, C + 6),
            seg(0.021, 'c', "FA", C + 6, S + 9),
            seg(0.022, 's', "A", S + 9, C + 7),
        ]);
        assert_eq!(zeek(&segments), is("ShADadfF", "SF"));
    }

    #[test]
    fn fin_on_data_gives_only_f() {
        // A segment with one of SYN/FIN/RST is lettered by that flag alone.
        let segments = after_handshake(vec![
            seg(0.01, 'c', "FPA", C + 1, S + 1).len(5),
            seg(0.02, 's', "FA", S + 1, C + 7),
            seg(0.03, 'c', "A", C + 7, S + 2),
        ]);
        assert_eq!(zeek(&segments), is("ShAFf", "SF"));
    }

    #[test]
    fn refused() {
        let segments = [
            seg(0.0, 'c', "S", C, 0),
            seg(0.001, 's', "RA", 0, C + 1).win(0),
        ];
        assert_eq!(zeek(&segments), is("Sr", "REJ"));
    }

    #[test]
    fn unanswered_syn() {
        // Retransmitted SYNs share the sequence number: one s.
        for copies in [1, 3] {
            let segments: Vec<Seg> = (0..copies)
                .map(|i| seg(f64::from(i), 'c', "S", C, 0))
                .collect();
            assert_eq!(zeek(&segments), is("S", "S0"));
        }
    }

    #[test]
    fn originator_syn_then_rst_or_fin() {
        let rst = [seg(0.0, 'c', "S", C, 0), seg(0.5, 'c', "R", C + 1, 0)];
        assert_eq!(zeek(&rst), is("SR", "RSTOS0"));
        let fin = [seg(0.0, 'c', "S", C, 0), seg(0.5, 'c', "F", C + 1, 0)];
        assert_eq!(zeek(&fin), is("SF", "SH"));
    }

    #[test]
    fn aborts_after_the_handshake() {
        let by_client = after_handshake(vec![seg(0.01, 'c', "RA", C + 1, S + 1)]);
        assert_eq!(zeek(&by_client), is("ShAR", "RSTO"));
        let by_server = after_handshake(vec![seg(0.01, 's', "RA", S + 1, C + 1)]);
        assert_eq!(zeek(&by_server), is("ShAr", "RSTR"));
    }

    #[test]
    fn half_closes_and_open() {
        let client_fin = after_handshake(vec![
            seg(0.01, 'c', "FA", C + 1, S + 1),
            seg(0.02, 's', "A", S + 1, C + 2),
        ]);
        assert_eq!(zeek(&client_fin), is("ShAFa", "S2"));
        let server_fin = after_handshake(vec![seg(0.01, 's', "FA", S + 1, C + 1)]);
        assert_eq!(zeek(&server_fin), is("ShAf", "S3"));
        assert_eq!(zeek(&handshake()), is("ShA", "S1"));
    }

    #[test]
    fn fin_then_rst_then_peer_fin_counts_as_normal_close() {
        // Zeek turns the originator's RESET back into CLOSED when the responder's FIN
        // follows its FIN-then-RST (UpdateEstablishedState).
        let segments = after_handshake(vec![
            seg(0.01, 'c', "FA", C + 1, S + 1),
            seg(0.011, 's', "A", S + 1, C + 2),
            seg(0.012, 's', "PA", S + 1, C + 2).len(9),
            seg(0.013, 'c', "R", C + 2, 0),
            seg(0.014, 's', "FA", S + 10, C + 2),
        ]);
        assert_eq!(zeek(&segments), is("ShAFadRf", "SF"));
    }

    #[test]
    fn mid_stream_traffic_is_oth_and_flipped_when_the_server_speaks_first() {
        let client_first = [
            seg(0.0, 'c', "PA", 3000, 7000).len(5),
            seg(0.001, 's', "A", 7000, 3005),
        ];
        assert_eq!(zeek(&client_first), is("Da", "OTH"));
        let server_first = [
            seg(0.0, 's', "PA", 7000, 3000).len(5),
            seg(0.001, 'c', "A", 3000, 7005),
        ];
        assert_eq!(zeek(&server_first), is("^dA", "OTH"));
    }

    #[test]
    fn responder_syn_ack_then_rst_without_a_syn() {
        let segments = [
            seg(0.0, 's', "SA", S, C + 1),
            seg(0.001, 's', "R", S + 1, 0),
        ];
        assert_eq!(zeek(&segments), is("^hr", "RSTRH"));
    }

    #[test]
    fn zero_windows_are_logarithmic() {
        let acks = |n: u32| -> Vec<Seg> {
            (0..n)
                .map(|i| seg(0.01 + f64::from(i) / 1000.0, 's', "A", S + 1, C + 1).win(0))
                .collect()
        };
        assert_eq!(zeek(&after_handshake(acks(9))).0, "ShAaw");
        assert_eq!(zeek(&after_handshake(acks(10))).0, "ShAaww");
    }

    #[test]
    fn retransmitted_payload() {
        let segments = after_handshake(vec![
            seg(0.01, 'c', "PA", C + 1, S + 1).len(5),
            seg(0.3, 'c', "PA", C + 1, S + 1).len(5),
        ]);
        assert_eq!(zeek(&segments).0, "ShADT");
    }

    #[test]
    fn repeated_fin_letter_rules() {
        let mut z = ZeekTracker::new();
        z.packet(true, SYN, 0, 0, 1000, 1);
        z.packet(true, FIN | ACK, 1, 0, 1000, 1);
        z.packet(true, FIN | ACK, 1, 0, 1000, 0); // same FIN again: no letter
        z.packet(true, FIN | ACK, 1, 4, 1000, 4); // FIN at another place: F again
        assert_eq!(z.history(), "SFF");
    }

    #[test]
    fn inconsistent_and_multi_flag_packets() {
        let mut z = ZeekTracker::new();
        z.packet(true, SYN | FIN, 0, 0, 1000, 2);
        z.packet(false, FIN | RST | ACK, 0, 0, 0, 0);
        assert_eq!(z.history(), "Qi");
    }

    #[test]
    fn rej_when_both_reset_without_data() {
        let mut z = ZeekTracker::new();
        z.packet(true, RST, 0, 0, 0, 0);
        z.packet(false, RST, 0, 0, 0, 0);
        assert_eq!(z.conn_state(0, 0), "REJ");
        assert_eq!(z.conn_state(10, 0), "RSTR");
    }

    #[test]
    fn rstos0_matches_the_regex() {
        // Cases of main.zeek's /\^?S[^HAFGIQ]*R.*/, whole-string.
        for (history, matches) in [
            ("SR", true),
            ("^SR", true),
            ("SrR", true),
            ("StwR", true),
            ("SRA", true),
            ("S", false),
            ("R", false),
            ("^R", false),
            ("SAR", false),
            ("ShR", true),
            ("SHR", false),
            ("SDR", true),
            ("SQR", false),
            ("^^SR", false),
            ("sR", false),
            ("", false),
        ] {
            assert_eq!(rstos0_history(history), matches, "{history}");
        }
    }
}
