//! Which connection a segment belongs to, who the client is, and when a connection is
//! done with: the one grouping that `replay`, `summary` and every other command share.
//!
//! **Keys.** A connection is keyed on its VLAN stack, its encapsulation path (tunnels
//! and MPLS labels, `encap.rs`) and its two (address, port) endpoints, not on hosts,
//! so 127.0.0.1:a ↔ 127.0.0.1:b is one connection and its halves stay together. Each
//! connection is found under the key of each direction it has been seen in: (VLAN
//! stack and path, sender, receiver).
//!
//! **VLAN rule.** Copies of one conversation on different VLAN stacks (or paths:
//! plain and inside VXLAN) are different connections (a mirror port seeing the same
//! traffic untagged, tagged and double tagged), except that a segment on a new VLAN
//! stack or path joins an existing connection when it is that connection's reverse
//! direction and the connection has no reverse traffic
//! yet: routers often carry the two directions of a session on different VLANs (or
//! MPLS labels). A connection's `vlan` and `encap` are those of its first segment.
//!
//! **Port reuse.** A SYN (no ACK) on a known 4-tuple starts a new connection when the
//! old one ended (both FINs, or an RST) or the SYN's sender had already sent its FIN (a
//! socket that closed cannot open again), and its initial sequence number is fresh
//! (Linux retransmits a SYN with the same one).
//!
//! **Roles.** The client is the sender of the first SYN; failing that, the receiver of
//! the first SYN+ACK; failing both, a guess from the ports (servers listen on the lower,
//! well-known or registered port). Until a SYN settles the roles, a connection runs two
//! observers, one per possible client, and the roles pick one at the end: one pass even
//! when the SYN turns up late.
//!
//! **Done with.** A connection is handed over (`pop`) when both sides are CLOSED or
//! TIME-WAIT and none of its segments has been seen for `linger` seconds of capture
//! time (Linux keeps TIME-WAIT 60 s); when a SYN reuses its 4-tuple; or at the end of
//! the input. A segment after that starts a new connection. Memory follows the
//! connections open at once, never the size of the capture.

use std::collections::VecDeque;
use std::net::IpAddr;

use rustc_hash::FxHashMap;

use crate::diagnose::{findings, Finding, Mark, Rules};
use crate::encap::{path_word, Layer};
use crate::observer::{Observer, State, Step};
use crate::segment::{Endpoint, Segment, ACK, FIN, RST, SYN};
use crate::verdict::{classify, Verdict};

/// Records between two scans for connections that have lingered long enough.
pub const HOUSEKEEPING: u64 = 1024;

/// What the scanner keeps of each connection's segments.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Keep {
    /// Nothing: verdicts and counts only (memory follows the open connections).
    Nothing,
    /// The segments of one connection (by stream number), for its ladder.
    Stream(u64),
    /// Every connection's segments, handed over with the connection.
    All,
}

/// What one side sent, as the observer counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    pub packets: u64,
    /// Payload bytes, each byte once.
    pub bytes: u64,
    pub retransmissions: u64,
    pub zero_windows: u64,
    /// Persist probes sent into the peer's zero window.
    pub window_probes: u64,
    /// Frames that were the capture's copies of its segments (also in `packets`).
    pub capture_duplicates: u64,
    /// Segments the capture missed, inferred from the peer's ACKs (not in `packets`).
    pub inferred: u64,
}

/// One connection's segments, as the ladder needs them, with the observer's steps.
#[derive(Clone, Debug)]
pub struct Detail {
    pub segments: Vec<Segment>,
    /// One step per segment, in the same order.
    pub steps: Vec<Step>,
    /// Both states before the first segment (client, server).
    pub initial: (State, State),
}

/// A connection the scanner is done with.
#[derive(Clone, Debug)]
pub struct Finished {
    /// Order of first appearance, from 0 (tshark's tcp.stream, `--stream N`).
    pub stream: u64,
    pub client: Endpoint,
    pub server: Endpoint,
    pub vlan: Vec<u16>,
    /// Its first segment's tunnels and labels, outermost first.
    pub encap: Vec<Layer>,
    /// Why the roles are a guess, when no SYN or SYN+ACK settled them.
    pub roles_guessed: Option<String>,
    /// Capture times of its first and last segment.
    pub first: f64,
    pub last: f64,
    pub packets: u64,
    pub verdict: Verdict,
    pub client_sent: Sent,
    pub server_sent: Sent,
    /// Segments and steps, when the scanner was asked to keep them.
    pub detail: Option<Detail>,
    /// What `diagnose` found (see `diagnose.rs`).
    pub findings: Vec<Finding>,
}

/// An endpoint as plain integers: compared and hashed without a byte-wise compare
/// (IpAddr compares its octets with memcmp), and small, so that the key table's
/// buckets stay few cache lines: it is probed for every segment.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
struct Packed {
    ip: [u64; 2],
    port: u16,
    /// IPv4 addresses are kept apart from IPv4-mapped IPv6 ones.
    v6: bool,
}

impl From<Endpoint> for Packed {
    fn from(e: Endpoint) -> Self {
        let (bits, v6) = match e.ip {
            IpAddr::V4(ip) => (u128::from(u32::from(ip)), false),
            IpAddr::V6(ip) => (u128::from(ip), true),
        };
        Packed {
            ip: [(bits >> 64) as u64, bits as u64],
            port: e.port,
            v6,
        }
    }
}

/// A VLAN stack in one word: its depth in the top 4 bits and up to five 12-bit IDs.
/// Stacks deeper than five tags (not seen in practice: QinQ is two) fold the rest into
/// the last ID's bits, so two such stacks that differ only below the fifth tag share a
/// key.
fn vlan_word(tags: &[u16]) -> u64 {
    let mut word = (tags.len().min(15) as u64) << 60;
    for (i, &id) in tags.iter().enumerate() {
        let shift = 12 * i.min(4) as u32;
        word ^= u64::from(id & 0x0FFF).rotate_left(i as u32 / 5) << shift & 0x0FFF_FFFF_FFFF_FFFF;
    }
    word
}

/// The key of one direction of a connection: VLAN stack and encapsulation path (in one
/// word), sender, receiver.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Key {
    src: Packed,
    dst: Packed,
    vlan: u64,
}

/// Both endpoints, lower first, with no VLAN stack: where the VLAN rule looks.
type Pair = (Packed, Packed);

fn pair(x: Packed, y: Packed) -> Pair {
    if x <= y {
        (x, y)
    } else {
        (y, x)
    }
}

/// FIN seen from a, from b; an RST seen (`Conn::ends`).
const FIN_A: u8 = 1;
const FIN_B: u8 = 2;
const RST_SEEN: u8 = 4;

/// A connection in flight. `a` sent its first segment, to `b`.
struct Conn {
    stream: u64,
    keys: Vec<Key>,
    vlan: Vec<u16>,
    encap: Vec<Layer>,
    a: Endpoint,
    b: Endpoint,
    pa: Packed,
    pb: Packed,
    /// One observer per possible client (a, b) until a SYN says which.
    obs_a: Option<Observer>,
    /// Boxed: most connections start with a SYN and never need it, and a small `Conn`
    /// keeps the connections in flight in fewer cache lines.
    obs_b: Option<Box<Observer>>,
    first: f64,
    last: f64,
    /// The first SYN without ACK: its sequence number, and whether a sent it.
    syn: Option<(u32, bool)>,
    /// Whether the first SYN+ACK went to a.
    synack_to_a: Option<bool>,
    ends: u8,
    b_sent: bool,
    /// Capture time it joined the closing queue; negative while not queued.
    since: f64,
    /// Kept segments, each with whether a sent it.
    kept: Option<Vec<(Segment, bool)>>,
}

impl Conn {
    fn finished(&self) -> bool {
        self.ends & RST_SEEN != 0 || self.ends == FIN_A | FIN_B
    }

    /// Both sides CLOSED or TIME-WAIT, for every role assignment still open.
    fn at_rest(&self) -> bool {
        let done = |s: State| matches!(s, State::Closed | State::TimeWait);
        [self.obs_a.as_ref(), self.obs_b.as_deref()]
            .into_iter()
            .flatten()
            .all(|o| done(o.client.state) && done(o.server.state))
    }

    /// (client, server, why they are a guess).
    fn roles(&self) -> (Endpoint, Endpoint, Option<String>) {
        let syn_from = self
            .syn
            .map(|(_, from_a)| if from_a { self.a } else { self.b });
        let synack_to = self
            .synack_to_a
            .map(|to_a| if to_a { self.a } else { self.b });
        decide_roles(self.a, self.b, syn_from, synack_to)
    }
}

/// Whether a SYN (no ACK) starts a new connection on a known 4-tuple (see the module doc).
pub fn reuses_tuple(finished: bool, sender_sent_fin: bool, seq: u32, syn_seq: Option<u32>) -> bool {
    (finished || sender_sent_fin) && syn_seq != Some(seq)
}

/// (client, server, why they are a guess) of the connection between `a` (which sent the
/// first segment) and `b`.
pub fn decide_roles(
    a: Endpoint,
    b: Endpoint,
    syn_from: Option<Endpoint>,
    synack_to: Option<Endpoint>,
) -> (Endpoint, Endpoint, Option<String>) {
    let (client, why) = match (syn_from, synack_to) {
        (Some(c), _) | (None, Some(c)) => (c, None),
        (None, None) => {
            // Servers listen on well-known or registered ports, clients get high
            // ephemeral ones, so the lower port is most likely the server's.
            let (server, how) = if a.port == b.port {
                (
                    b,
                    "the receiver of the first segment (both ports are equal)",
                )
            } else if a.port < b.port {
                (a, "the lower port")
            } else {
                (b, "the lower port")
            };
            let why = format!("no SYN seen: guessed server = {server}, {how}");
            (if server == a { b } else { a }, Some(why))
        }
    };
    (client, if client == a { b } else { a }, why)
}

/// Groups segments into connections and hands each over once it is done with.
pub struct Scanner {
    linger: f64,
    keep: Keep,
    slots: Vec<Option<Conn>>,
    free: Vec<usize>,
    by_key: FxHashMap<Key, (usize, bool)>,
    /// Live connections by endpoint pair, any VLAN stack: kept only once a tagged
    /// segment has been seen (before that no segment can join another stack's
    /// connection, and most captures carry no tag at all).
    by_pair: Option<FxHashMap<Pair, Vec<usize>>>,
    /// (since, slot, stream): connections at rest, oldest first. An entry whose
    /// connection is gone or whose `since` changed is stale.
    closing: VecDeque<(f64, usize, u64)>,
    out: VecDeque<Finished>,
    records: u64,
    /// Connections started so far (the next stream number).
    pub connections: u64,
    pub segments: u64,
    open: u64,
    pub peak_open: u64,
    /// `diagnose`'s thresholds.
    rules: Rules,
    /// The latest capture time seen: the end of the capture, when it is over.
    now: f64,
}

impl Scanner {
    pub fn new(linger: f64, keep: Keep) -> Self {
        Self {
            linger,
            keep,
            slots: Vec::new(),
            free: Vec::new(),
            by_key: FxHashMap::default(),
            by_pair: None,
            closing: VecDeque::new(),
            out: VecDeque::new(),
            records: 0,
            connections: 0,
            segments: 0,
            open: 0,
            peak_open: 0,
            rules: Rules::default(),
            now: f64::MIN,
        }
    }

    /// `diagnose`'s thresholds for the connections handed over from now on.
    pub fn set_rules(&mut self, rules: Rules) {
        self.rules = rules;
    }

    /// A connection done with, in the order they were done with.
    pub fn pop(&mut self) -> Option<Finished> {
        self.out.pop_front()
    }

    /// Nothing is waiting to be popped.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Call once per capture record (TCP or not), before its segment if it has one:
    /// every HOUSEKEEPING records, connections that lingered long enough are handed over.
    #[inline]
    pub fn record(&mut self, ts: f64) {
        self.records += 1;
        self.now = self.now.max(ts);
        if self.records % HOUSEKEEPING == 0 {
            self.housekeeping(ts);
        }
    }

    /// One segment, in capture order. Borrowed: a segment is cloned only when kept, so
    /// the common path moves none of its bytes (a move is a memcpy per segment).
    pub fn add(&mut self, seg: &Segment) {
        self.segments += 1;
        let ts = seg.t;
        self.now = self.now.max(ts);
        let key = Key {
            src: seg.src.into(),
            dst: seg.dst.into(),
            vlan: vlan_word(&seg.vlan) ^ path_word(&seg.encap),
        };
        let tagged = !seg.vlan.is_empty() || !seg.encap.is_empty();
        if tagged && self.by_pair.is_none() {
            self.index_pairs();
        }
        let mut entry = self.by_key.get(&key).copied();
        if let Some((slot, _)) = entry {
            let conn = self.conn(slot);
            if conn.since >= 0.0 && conn.last <= ts - self.linger && self.expire(slot) {
                entry = None; // done with before this segment came
            }
        }
        let flags = seg.flags;
        let (slot, from_a) = match entry {
            Some(e) if flags & (SYN | FIN | RST) == 0 => e,
            _ => self.special(key, entry, seg),
        };
        let keep = self.keep;
        let conn = self.conn_mut(slot);
        conn.last = ts;
        if !from_a {
            conn.b_sent = true;
        }
        if let Some(o) = conn.obs_a.as_mut() {
            o.feed(from_a, seg, false);
        }
        if let Some(o) = conn.obs_b.as_mut() {
            o.feed(!from_a, seg, false);
        }
        if let Some(kept) = conn.kept.as_mut() {
            kept.push((seg.clone(), from_a));
        } else if keep == Keep::All {
            conn.kept = Some(vec![(seg.clone(), from_a)]);
        }
        if conn.ends != 0 && conn.since < 0.0 && conn.at_rest() {
            conn.since = ts;
            let stream = conn.stream;
            self.closing.push_back((ts, slot, stream));
        }
    }

    /// End of the input: every connection still held, in order of first appearance.
    pub fn finish(&mut self) {
        let mut left: Vec<(u64, usize)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (c.stream, i)))
            .collect();
        left.sort_unstable();
        for (_, slot) in left {
            self.retire(slot);
        }
    }

    fn conn(&self, slot: usize) -> &Conn {
        self.slots[slot]
            .as_ref()
            .expect("a key names a live connection")
    }

    fn conn_mut(&mut self, slot: usize) -> &mut Conn {
        self.slots[slot]
            .as_mut()
            .expect("a key names a live connection")
    }

    /// The grouping and role facts of a segment that is new or carries SYN, FIN or RST.
    fn special(
        &mut self,
        key: Key,
        mut entry: Option<(usize, bool)>,
        seg: &Segment,
    ) -> (usize, bool) {
        let flags = seg.flags;
        if let Some((slot, from_a)) = entry {
            if flags & (SYN | ACK) == SYN {
                let conn = self.conn(slot);
                let sent_fin = conn.ends & if from_a { FIN_A } else { FIN_B } != 0;
                if reuses_tuple(conn.finished(), sent_fin, seg.seq, conn.syn.map(|s| s.0)) {
                    let (at, next) = (
                        Mark {
                            t: seg.t,
                            frame: seg.frame,
                        },
                        self.connections,
                    );
                    let conn = self.conn_mut(slot);
                    for o in [conn.obs_a.as_mut(), conn.obs_b.as_deref_mut()]
                        .into_iter()
                        .flatten()
                    {
                        o.clues.reused(at, next);
                    }
                    self.retire(slot);
                    entry = None;
                }
            }
        }
        let (slot, from_a) = match entry {
            Some(e) => e,
            None => match self.join(&key) {
                Some(e) => e,
                None => self.open(key, seg),
            },
        };
        let conn = self.conn_mut(slot);
        if flags & FIN != 0 {
            conn.ends |= if from_a { FIN_A } else { FIN_B };
        }
        if flags & RST != 0 {
            conn.ends |= RST_SEEN;
        }
        if flags & SYN != 0 {
            if flags & ACK == 0 {
                if conn.syn.is_none() {
                    // The first SYN: roles settled, the other observer is not needed.
                    conn.syn = Some((seg.seq, from_a));
                    if from_a {
                        conn.obs_b = None;
                    } else if conn.obs_b.is_some() {
                        conn.obs_a = None;
                    }
                }
            } else if conn.synack_to_a.is_none() {
                conn.synack_to_a = Some(!from_a);
            }
        }
        (slot, from_a)
    }

    fn open(&mut self, key: Key, seg: &Segment) -> (usize, bool) {
        let (a, b) = (seg.src, seg.dst);
        let (pa, pb) = (key.src, key.dst);
        let client_known = seg.flags & (SYN | ACK) == SYN || pa == pb;
        let kept = match self.keep {
            Keep::Stream(n) if n == self.connections => Some(Vec::new()),
            _ => None,
        };
        let conn = Conn {
            stream: self.connections,
            keys: vec![key],
            vlan: seg.vlan.clone(),
            encap: seg.encap.clone(),
            a,
            b,
            pa,
            pb,
            obs_a: Some(Observer::new()),
            obs_b: if client_known {
                None
            } else {
                Some(Box::default())
            },
            first: seg.t,
            last: seg.t,
            syn: None,
            synack_to_a: None,
            ends: 0,
            b_sent: false,
            since: -1.0,
            kept,
        };
        self.connections += 1;
        self.open += 1;
        self.peak_open = self.peak_open.max(self.open);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(conn);
                slot
            }
            None => {
                self.slots.push(Some(conn));
                self.slots.len() - 1
            }
        };
        if pa != pb {
            // Both ends one endpoint: every segment is a's, one key is enough.
            let back = Key {
                src: pb,
                dst: pa,
                vlan: key.vlan,
            };
            self.conn_mut(slot).keys.push(back);
            self.by_key.insert(back, (slot, false));
        }
        self.by_key.insert(key, (slot, true));
        if let Some(by_pair) = self.by_pair.as_mut() {
            by_pair.entry(pair(pa, pb)).or_default().push(slot);
        }
        (slot, true)
    }

    /// The first tagged segment: from now on the VLAN rule needs every live connection
    /// by endpoint pair.
    fn index_pairs(&mut self) {
        let mut live: Vec<(u64, usize)> = (self.slots.iter().enumerate())
            .filter_map(|(slot, c)| c.as_ref().map(|c| (c.stream, slot)))
            .collect();
        live.sort_unstable(); // oldest first, as if they had been indexed all along
        let mut by_pair: FxHashMap<Pair, Vec<usize>> = FxHashMap::default();
        for (_, slot) in live {
            let c = self.conn(slot);
            by_pair.entry(pair(c.pa, c.pb)).or_default().push(slot);
        }
        self.by_pair = Some(by_pair);
    }

    /// VLAN rule: a segment on a new VLAN stack joins the connection whose reverse
    /// direction it is, when that direction has sent nothing yet.
    fn join(&mut self, key: &Key) -> Option<(usize, bool)> {
        let candidates = self.by_pair.as_ref()?.get(&pair(key.src, key.dst))?;
        let slot = candidates.iter().copied().find(|&slot| {
            let c = self.conn(slot);
            key.src == c.pb && key.dst == c.pa && c.pa != c.pb && !c.b_sent
        })?;
        let back = Key {
            src: key.dst,
            dst: key.src,
            vlan: key.vlan,
        };
        let conn = self.conn_mut(slot);
        conn.keys.push(*key);
        conn.keys.push(back);
        self.by_key.insert(back, (slot, true));
        self.by_key.insert(*key, (slot, false));
        Some((slot, false))
    }

    /// Summarise the connections that have been at rest for `linger` seconds.
    fn housekeeping(&mut self, now: f64) {
        let cutoff = now - self.linger;
        while let Some(&(since, slot, stream)) = self.closing.front() {
            let current = self.slots[slot]
                .as_ref()
                .filter(|c| c.stream == stream && c.since == since);
            let Some(conn) = current else {
                self.closing.pop_front(); // stale
                continue;
            };
            if since > cutoff {
                return;
            }
            self.closing.pop_front();
            if conn.last > cutoff {
                // Still getting segments: look again later.
                let last = conn.last;
                self.conn_mut(slot).since = last;
                self.closing.push_back((last, slot, stream));
            } else {
                self.expire(slot);
            }
        }
    }

    /// A connection of the closing set, silent for `linger` seconds: handed over unless it
    /// came back to life (a SYN again after a refusal). True when it was handed over.
    fn expire(&mut self, slot: usize) -> bool {
        if self.conn(slot).at_rest() {
            self.retire(slot);
            return true;
        }
        self.conn_mut(slot).since = -1.0; // out of the queue until it is at rest again
        false
    }

    fn retire(&mut self, slot: usize) {
        // Read where it lies, then dropped there: moving a connection (its observers
        // are over a kilobyte each) out of its slot was a copy per connection.
        let conn = self.slots[slot]
            .as_mut()
            .expect("retiring a live connection");
        self.free.push(slot);
        for key in &conn.keys {
            self.by_key.remove(key);
        }
        let p = pair(conn.pa, conn.pb);
        if let Some(by_pair) = self.by_pair.as_mut() {
            if let Some(list) = by_pair.get_mut(&p) {
                list.retain(|&s| s != slot);
                if list.is_empty() {
                    by_pair.remove(&p);
                }
            }
        }
        self.open -= 1;
        self.out.push_back(finish(conn, &self.rules, self.now));
        self.slots[slot] = None;
    }
}

/// The roles as decided now, the verdict of that role's observer, and the ladder's steps
/// when the segments were kept.
fn finish(conn: &mut Conn, rules: &Rules, now: f64) -> Finished {
    let (client, server, roles_guessed) = conn.roles();
    let client_is_a = client == conn.a;
    let mut none = None;
    let obs = match (client_is_a, conn.obs_a.as_mut(), conn.obs_b.as_deref_mut()) {
        (false, _, Some(o)) | (_, None, Some(o)) => o,
        (_, Some(o), _) => o,
        (_, None, None) => none.insert(Observer::new()),
    };
    let clues = std::mem::take(&mut obs.clues);
    let sent = |s: &crate::observer::Side| Sent {
        capture_duplicates: obs.capture_duplicates(s.role),
        inferred: obs.inferred(s.role),
        packets: s.packets,
        bytes: s.bytes,
        retransmissions: s.retransmissions,
        zero_windows: s.zero_windows,
        window_probes: s.window_probes,
    };
    let detail = conn.kept.take().map(|kept| {
        let mut observer = Observer::new();
        let mut segments = Vec::with_capacity(kept.len());
        for (seg, from_a) in kept {
            observer.feed(from_a == client_is_a, &seg, true);
            segments.push(seg);
        }
        let initial = observer.initial;
        let (segments, steps) = observer.into_detail(segments);
        Detail {
            segments,
            steps,
            initial,
        }
    });
    let verdict = classify(obs);
    let found = findings(clues, &verdict, conn.last, now.max(conn.last), rules);
    Finished {
        stream: conn.stream,
        client,
        server,
        vlan: std::mem::take(&mut conn.vlan),
        encap: std::mem::take(&mut conn.encap),
        roles_guessed,
        first: conn.first,
        last: conn.last,
        packets: obs.packets,
        verdict,
        client_sent: sent(&obs.client),
        server_sent: sent(&obs.server),
        detail,
        findings: found,
    }
}

/// One connection whose roles the caller knows (a live run): its steps and verdict.
pub fn analyse(segments: Vec<Segment>, client: Endpoint) -> (Detail, Verdict) {
    let (detail, verdict, _) = analyse_with_findings(segments, client, &Rules::default());
    (detail, verdict)
}

/// `analyse`, with what `diagnose` finds in it (the capture ends at its last segment).
pub fn analyse_with_findings(
    segments: Vec<Segment>,
    client: Endpoint,
    rules: &Rules,
) -> (Detail, Verdict, Vec<Finding>) {
    let mut observer = Observer::new();
    for seg in &segments {
        observer.feed(seg.src == client, seg, true);
    }
    let verdict = classify(&observer);
    let last = segments.last().map_or(0.0, |s| s.t);
    let found = findings(observer.clues.clone(), &verdict, last, last, rules);
    let initial = observer.initial;
    let (segments, steps) = observer.into_detail(segments);
    (
        Detail {
            segments,
            steps,
            initial,
        },
        verdict,
        found,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observer::testing::{seg, C, S};
    use crate::verdict::Close;

    /// Every connection handed over, in order, for segments fed as a capture's.
    fn scan(segments: Vec<Segment>, linger: f64, keep: Keep) -> Vec<Finished> {
        let mut scanner = Scanner::new(linger, keep);
        let mut out = Vec::new();
        for s in segments {
            scanner.record(s.t);
            scanner.add(&s);
            while let Some(done) = scanner.pop() {
                out.push(done);
            }
        }
        scanner.finish();
        while let Some(done) = scanner.pop() {
            out.push(done);
        }
        out
    }

    /// A whole connection: handshake, FIN from the client, FIN from the server, ACK.
    fn closed(t: f64, c_isn: i64) -> Vec<Segment> {
        [
            seg(t, 'c', "S", c_isn, 0),
            seg(t + 0.001, 's', "SA", S, c_isn + 1),
            seg(t + 0.002, 'c', "A", c_isn + 1, S + 1),
            seg(t + 0.003, 'c', "FA", c_isn + 1, S + 1),
            seg(t + 0.004, 's', "FA", S + 1, c_isn + 2),
            seg(t + 0.005, 'c', "A", c_isn + 2, S + 2),
        ]
        .into_iter()
        .map(|s| s.seg)
        .collect()
    }

    #[test]
    fn a_syn_with_a_new_isn_after_a_close_is_a_new_connection() {
        let mut segments = closed(0.0, C);
        segments.extend(closed(1.0, C + 100_000));
        let done = scan(segments, 60.0, Keep::Nothing);
        assert_eq!(done.len(), 2);
        assert_eq!((done[0].stream, done[1].stream), (0, 1));
        assert!(done
            .iter()
            .all(|d| d.verdict.close == Close::Fin && d.packets == 6));
    }

    #[test]
    fn a_retransmitted_syn_stays_in_its_connection() {
        let mut segments = closed(0.0, C);
        // The same ISN again after the close: Linux retransmits a SYN with its ISN.
        segments.push(seg(1.0, 'c', "S", C, 0).seg);
        let done = scan(segments, 60.0, Keep::Nothing);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].packets, 7);
    }

    #[test]
    fn a_connection_at_rest_for_linger_seconds_is_done_with() {
        let mut segments = closed(0.0, C);
        // A stray ACK 61 s later: past Linux's TIME-WAIT, a new connection (roles
        // guessed: no SYN), as summary and replay both say.
        segments.push(seg(61.0, 'c', "A", C + 2, S + 2).seg);
        let done = scan(segments.clone(), 60.0, Keep::Nothing);
        assert_eq!(done.len(), 2);
        assert!(done[1].roles_guessed.is_some());
        // Within the linger time it is the same connection.
        let done = scan(segments, 120.0, Keep::Nothing);
        assert_eq!(done.len(), 1);
    }

    #[test]
    fn the_reverse_direction_on_another_vlan_joins_the_connection() {
        let mut segments = closed(0.0, C);
        for (i, s) in segments.iter_mut().enumerate() {
            // Client to server on VLAN 10, server to client on VLAN 20.
            let from_client = s.src.port == 40000;
            s.vlan = vec![if from_client { 10 } else { 20 }];
            s.frame = i as u64 + 1;
        }
        let done = scan(segments.clone(), 60.0, Keep::Nothing);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].vlan, vec![10]);
        // The same conversation copied onto VLAN 30 is another connection.
        let copies: Vec<Segment> = segments
            .iter()
            .cloned()
            .map(|mut s| {
                s.vlan = vec![30];
                s
            })
            .collect();
        segments.extend(copies);
        assert_eq!(scan(segments, 60.0, Keep::Nothing).len(), 2);
    }

    #[test]
    fn roles_come_from_the_syn_even_when_it_comes_late() {
        // The server's ACK is captured first; the client's SYN follows.
        let segments = vec![
            seg(0.0, 's', "A", S + 1, C + 1).seg,
            seg(0.1, 'c', "S", C, 0).seg,
            seg(0.2, 's', "SA", S, C + 1).seg,
        ];
        let done = scan(segments, 60.0, Keep::Nothing);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].client.port, 40000);
        assert_eq!(done[0].roles_guessed, None);
    }

    #[test]
    fn without_a_syn_the_lower_port_is_the_server() {
        let segments = vec![seg(0.0, 's', "A", S + 1, C + 1).seg];
        let done = scan(segments, 60.0, Keep::Nothing);
        assert_eq!(done[0].server.port, 80);
        assert_eq!(
            done[0].roles_guessed.as_deref(),
            Some("no SYN seen: guessed server = 10.0.0.2:80, the lower port")
        );
    }

    #[test]
    fn only_the_asked_for_connection_keeps_its_segments() {
        let mut segments = closed(0.0, C);
        segments.extend(closed(1.0, C + 100_000));
        let done = scan(segments, 60.0, Keep::Stream(1));
        assert!(done[0].detail.is_none());
        let detail = done[1].detail.as_ref().expect("stream 1 kept");
        assert_eq!(detail.segments.len(), 6);
        assert_eq!(detail.steps.len(), 6);
        assert_eq!(detail.segments[0].t, 1.0);
    }

    #[test]
    fn tunnelled_copies_stay_apart_and_both_tunnel_directions_join() {
        use crate::encap::{Kind, Layer};
        let vxlan = |s: &mut Segment, from_client: bool| {
            let (a, b) = (s.src.ip, s.dst.ip); // stand-ins for the tunnel's endpoints
            let outer = if from_client { (a, b) } else { (b, a) };
            s.encap = vec![Layer {
                outer: Some(outer),
                ..Layer::new(Kind::Vxlan, 42)
            }];
        };
        let plain = closed(0.0, C);
        let mut tunnelled = closed(0.0005, C);
        for s in &mut tunnelled {
            let from_client = s.src.port == 40000;
            vxlan(s, from_client);
        }
        let mut both: Vec<Segment> = plain.into_iter().chain(tunnelled).collect();
        both.sort_by(|x, y| x.t.total_cmp(&y.t));
        let done = scan(both, 60.0, Keep::Nothing);
        assert_eq!(done.len(), 2);
        assert!(done
            .iter()
            .all(|d| d.packets == 6 && d.verdict.close == Close::Fin));
        assert_eq!(
            done.iter().map(|d| d.encap.len()).collect::<Vec<_>>(),
            [0, 1]
        );
        // MPLS labels differ per direction: the way back joins the connection.
        let mut labelled = closed(0.0, C);
        for s in &mut labelled {
            let label = if s.src.port == 40000 { 100 } else { 300 };
            s.encap = vec![Layer::new(Kind::Mpls, label)];
        }
        assert_eq!(scan(labelled, 60.0, Keep::Nothing).len(), 1);
    }

    #[test]
    fn vlan_stacks_are_told_apart_by_their_word() {
        assert_ne!(vlan_word(&[]), vlan_word(&[0]));
        assert_ne!(vlan_word(&[10, 20]), vlan_word(&[20, 10]));
        assert_ne!(vlan_word(&[1, 2, 3, 4, 5]), vlan_word(&[1, 2, 3, 4, 6]));
        assert_eq!(vlan_word(&[0x1001]), vlan_word(&[0x0001])); // only 12 bits are an ID
    }
}
