//! Findings: the well-known close pathologies a capture proves, each by a plain wire
//! rule, with the frames that prove it.
//!
//! The observer feeds every segment's facts to its `Clues` (a few marks per connection,
//! on the cheap path too, so `summary` and `diagnose` agree); when the connection is
//! done with, one function per kind reads the clues and the verdict. A is the side the
//! rule starts from, B its peer.
//!
//! | kind                      | rule (frames that prove it)                                    |
//! |---------------------------|----------------------------------------------------------------|
//! | `keep-alive-race`         | A's FIN after `idle` s without payload; B sends new data after |
//! |                           | it (before a FIN of its own); A answers with RST (FIN, data,   |
//! |                           | RST)                                                           |
//! | `write-after-close`       | the same, on a connection that was not idle (FIN, data, RST)   |
//! | `abort-with-unread-data`  | A's RST+ACK without a FIN from A, the last payload being B's,  |
//! |                           | not answered by A (B's data, A's ACK of it if any, RST)        |
//! | `half-open-connection`    | A's RST *without* ACK, no FIN from A, answering B's segment on |
//! |                           | a synchronized connection: the reset a host sends for a        |
//! |                           | segment it has no connection for (RFC 9293 3.5.2, 3.10.7.1;    |
//! |                           | an abort carries ACK) (B's segment, the RST)                   |
//! | `close-wait-leak`         | A's FIN ACKed, B never sends FIN, RST or payload again, for    |
//! |                           | `close_wait` s up to the end of the capture (FIN, its ACK)     |
//! | `unacked-fin`             | a FIN sent more than once, never ACKed: the sender ends in     |
//! |                           | FIN-WAIT-1, CLOSING or LAST-ACK (every copy of the FIN)        |
//! | `zero-window-stall`       | A advertises a zero window for `zero_window` s or more while   |
//! |                           | B probes (the zero window, probes, the reopening)              |
//! | `refused`                 | the verdict `refused`: SYN answered by RST (SYNs, RST)         |
//! | `unanswered-syn`          | the verdict `unanswered`: SYNs with no reply (every SYN)       |
//! | `time-wait-assassination` | an RST accepted by a side in TIME-WAIT, RFC 1337 (the segment  |
//! |                           | that put it there, the RST)                                    |
//! | `time-wait-reuse`         | a new SYN on the 4-tuple while a side is in TIME-WAIT (its     |
//! |                           | entry, the new SYN of the next connection)                     |
//!
//! `Tally` counts findings across connections (per kind, and refused and unanswered
//! attempts per server port) in memory that follows the ports, not the connections.

use rustc_hash::FxHashMap;

use crate::observer::{Role, State, ACK_OF_FIN, RETRANSMISSION, WINDOW_PROBE, ZERO_WINDOW};
use crate::segment::{Endpoint, ACK, FIN, RST, SYN};
use crate::verdict::{Close, Verdict};

/// The kinds of finding, in the order reports list them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Kind {
    KeepAliveRace,
    WriteAfterClose,
    AbortWithUnreadData,
    HalfOpenConnection,
    CloseWaitLeak,
    UnackedFin,
    ZeroWindowStall,
    Refused,
    UnansweredSyn,
    TimeWaitAssassination,
    TimeWaitReuse,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::KeepAliveRace,
        Kind::WriteAfterClose,
        Kind::AbortWithUnreadData,
        Kind::HalfOpenConnection,
        Kind::CloseWaitLeak,
        Kind::UnackedFin,
        Kind::ZeroWindowStall,
        Kind::Refused,
        Kind::UnansweredSyn,
        Kind::TimeWaitAssassination,
        Kind::TimeWaitReuse,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::KeepAliveRace => "keep-alive-race",
            Kind::WriteAfterClose => "write-after-close",
            Kind::AbortWithUnreadData => "abort-with-unread-data",
            Kind::HalfOpenConnection => "half-open-connection",
            Kind::CloseWaitLeak => "close-wait-leak",
            Kind::UnackedFin => "unacked-fin",
            Kind::ZeroWindowStall => "zero-window-stall",
            Kind::Refused => "refused",
            Kind::UnansweredSyn => "unanswered-syn",
            Kind::TimeWaitAssassination => "time-wait-assassination",
            Kind::TimeWaitReuse => "time-wait-reuse",
        }
    }
}

/// The thresholds, in seconds of capture time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rules {
    /// Quiet time before a FIN that makes a close "idle" (keep-alive race).
    pub idle: f64,
    /// CLOSE-WAIT held this long, to the end of the capture, is a leak.
    pub close_wait: f64,
    /// A zero window held this long while probed is a stall.
    pub zero_window: f64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            idle: 1.0,
            close_wait: 5.0,
            zero_window: 1.0,
        }
    }
}

/// One finding on one connection.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub kind: Kind,
    /// The side the finding is about: A in the module's table, for `close-wait-leak` the
    /// side left in CLOSE-WAIT, for `time-wait-*` the side in TIME-WAIT.
    pub side: Role,
    /// The proving frames, in capture order.
    pub frames: Vec<u64>,
    /// Capture time of the first proving frame.
    pub t: f64,
    /// How long: the idle time before the FIN, the stall, CLOSE-WAIT, the FIN's
    /// retransmissions, the TIME-WAIT cut short (0 where no time is measured).
    pub seconds: f64,
    /// How many: SYNs, probes, FIN copies (0 where nothing is counted).
    pub count: u64,
    /// SYN retry pattern: each SYN's time since the first.
    pub pattern: Vec<f64>,
    /// The connection that reused the 4-tuple (`time-wait-reuse`).
    pub other_stream: Option<u64>,
    /// Seconds without payload either way before B's data (`abort-with-unread-data`:
    /// a request after a long quiet is the keep-alive race's ECONNRESET form) or before
    /// A's FIN (`keep-alive-race`, `write-after-close`); 0 otherwise.
    pub quiet: f64,
}

impl Finding {
    fn new(kind: Kind, side: Role, marks: &[Mark]) -> Self {
        let mut frames: Vec<u64> = marks.iter().filter(|m| m.seen()).map(|m| m.frame).collect();
        frames.sort_unstable();
        frames.dedup();
        let t = (marks.iter().filter(|m| m.seen()))
            .map(|m| m.t)
            .fold(f64::INFINITY, f64::min);
        Finding {
            kind,
            side,
            frames,
            t,
            seconds: 0.0,
            count: 0,
            pattern: Vec::new(),
            other_stream: None,
            quiet: 0.0,
        }
    }
}

/// A segment's capture time and frame number; frame 0: none.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Mark {
    pub t: f64,
    pub frame: u64,
}

impl Mark {
    fn seen(self) -> bool {
        self.frame != 0
    }
}

/// SYN or FIN copies of one side: how many, the first few kept.
const COPIES: usize = 6;

/// The first copy inline, the rest boxed: most connections send one SYN and one FIN a
/// side, and thousands of connections are in flight at once.
#[derive(Clone, Debug, Default, PartialEq)]
struct Copies {
    n: u64,
    first: Mark,
    more: Option<Box<[Mark; COPIES - 1]>>,
}

impl Copies {
    fn push(&mut self, m: Mark) {
        let n = self.n as usize;
        if n == 0 {
            self.first = m;
        } else if n < COPIES {
            self.more.get_or_insert_with(Default::default)[n - 1] = m;
        }
        self.n += 1;
    }
    fn kept(&self) -> Vec<Mark> {
        let more = self.more.as_deref().map_or(&[][..], |m| &m[..]);
        std::iter::once(self.first)
            .chain(more.iter().copied())
            .take((self.n as usize).min(COPIES))
            .collect()
    }
    fn first(&self) -> Mark {
        self.first
    }
}

/// A zero window advertised by one side, while it lasts.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Stall {
    start: Mark,
    first_probe: Mark,
    last_probe: Mark,
    probes: u64,
    /// The segment that opened the window again (none: it never did).
    end: Mark,
    seconds: f64,
}

/// One segment's facts, as the observer hands them to `Clues::note`.
pub struct Seen {
    pub sender: Role,
    pub flags: u8,
    pub length: u32,
    pub win: u16,
    pub tags: u16,
    pub at: Mark,
    pub sender_before: State,
    pub receiver_before: State,
    pub sender_after: State,
    pub receiver_after: State,
}

/// An RST without a FIN from `side` after the peer's data.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Abort {
    side: usize,
    data: Mark,
    /// The side's first segment after that data, if any.
    answer: Mark,
    rst: Mark,
    /// The quiet time before that data.
    quiet: f64,
}

/// What the rules need of one connection, gathered segment by segment. Indexed by role:
/// 0 client, 1 server.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Clues {
    first: Mark,
    /// Each side's latest segment (before the one being noted).
    last_seen: [Mark; 2],
    last_data: [Mark; 2],
    /// The quiet time before each side's latest payload.
    quiet_before_data: [f64; 2],
    /// The first segment a side sent after the peer's latest payload.
    answer: [Mark; 2],
    fins: [Copies; 2],
    fin_acked: [Mark; 2],
    syns: Copies,
    first_rst: [Mark; 2],
    /// The first closer (FIN before any FIN or RST of the peer), its FIN, and the quiet
    /// time before it.
    closer: Option<(usize, Mark, f64)>,
    data_after_fin: Mark,
    rst_after_data: Mark,
    /// The rare facts are boxed, to keep the connections in flight small.
    abort: Option<Box<Abort>>,
    /// (side that reset, the peer's segment it answered, the RST) of `half-open-connection`.
    unknown: Option<Box<(usize, Mark, Mark)>>,
    stall: [Option<Box<Stall>>; 2],
    worst_stall: [Option<Box<Stall>>; 2],
    time_wait_since: [Mark; 2],
    /// (side, when it entered TIME-WAIT, the RST).
    assassinated: Option<Box<(usize, Mark, Mark)>>,
    /// The SYN that reused the 4-tuple, and the connection it started.
    reused: Option<Box<(Mark, u64)>>,
}

fn index(role: Role) -> usize {
    match role {
        Role::Client => 0,
        Role::Server => 1,
    }
}

fn role(i: usize) -> Role {
    if i == 0 {
        Role::Client
    } else {
        Role::Server
    }
}

impl Clues {
    /// One segment, after the observer has moved both states.
    pub fn note(&mut self, s: &Seen) {
        let (me, peer) = (index(s.sender), 1 - index(s.sender));
        let m = s.at;
        if !self.first.seen() {
            self.first = m;
        }
        self.note_window(s, me, peer);
        if s.flags & (SYN | ACK) == SYN && s.sender == Role::Client {
            self.syns.push(m);
        }
        if s.flags & RST != 0 {
            self.note_rst(s, me, peer);
        }
        if s.flags & FIN != 0 && s.flags & SYN == 0 {
            if self.fins[me].n == 0 && self.fins[peer].n == 0 && self.closer.is_none() {
                let none_rst = !self.first_rst[0].seen() && !self.first_rst[1].seen();
                if none_rst {
                    self.closer = Some((me, m, self.quiet_until(m.t)));
                }
            }
            self.fins[me].push(m);
        }
        if s.tags & ACK_OF_FIN != 0 && !self.fin_acked[peer].seen() {
            self.fin_acked[peer] = m;
        }
        let payload = s.length > 0 && s.flags & RST == 0 && s.tags & WINDOW_PROBE == 0;
        if payload {
            // New data only: a copy of data sent before the FIN was not written after it.
            let fresh = s.tags & RETRANSMISSION == 0;
            if let (Some((a, _, _)), true) = (self.closer, fresh) {
                if a == peer && self.fins[me].n == 0 && !self.data_after_fin.seen() {
                    self.data_after_fin = m;
                }
            }
            self.quiet_before_data[me] = self.quiet_until(m.t);
            self.last_data[me] = m;
            self.answer[peer] = Mark::default();
        } else if self.last_data[peer].seen() && !self.answer[me].seen() {
            self.answer[me] = m;
        }
        if s.sender_after == State::TimeWait && s.sender_before != State::TimeWait {
            self.time_wait_since[me] = m;
        }
        if s.receiver_after == State::TimeWait && s.receiver_before != State::TimeWait {
            self.time_wait_since[peer] = m;
        }
        self.last_seen[me] = m;
    }

    fn note_rst(&mut self, s: &Seen, me: usize, peer: usize) {
        let m = s.at;
        if !self.first_rst[me].seen() {
            self.first_rst[me] = m;
        }
        let closer = self.closer.map(|c| c.0);
        if closer == Some(me) && self.data_after_fin.seen() && !self.rst_after_data.seen() {
            self.rst_after_data = m;
        }
        let synchronized = matches!(
            s.sender_before,
            State::Established | State::CloseWait | State::SynReceived
        );
        let theirs_last = self.last_data[peer].frame > self.last_data[me].frame;
        let answers_peer = self.last_seen[peer].frame > self.last_seen[me].frame;
        if s.flags & ACK == 0 && self.fins[me].n == 0 && synchronized && answers_peer {
            // No ACK: the reset of a host with no connection for the peer's segment
            // (an abort, close() with unread data or SO_LINGER 0, carries ACK).
            if self.unknown.is_none() {
                self.unknown = Some(Box::new((me, self.last_seen[peer], m)));
            }
        } else if self.abort.is_none() && self.fins[me].n == 0 && synchronized && theirs_last {
            let answer = if self.answer[me].frame > self.last_data[peer].frame {
                self.answer[me]
            } else {
                Mark::default()
            };
            self.abort = Some(Box::new(Abort {
                side: me,
                data: self.last_data[peer],
                answer,
                rst: m,
                quiet: self.quiet_before_data[peer],
            }));
        }
        if s.receiver_before == State::TimeWait
            && s.receiver_after == State::Closed
            && self.assassinated.is_none()
        {
            self.assassinated = Some(Box::new((peer, self.time_wait_since[peer], m)));
        }
    }

    /// Zero windows from the sender; persist probes into the peer's.
    fn note_window(&mut self, s: &Seen, me: usize, peer: usize) {
        if s.tags & WINDOW_PROBE != 0 {
            if let Some(stall) = self.stall[peer].as_mut() {
                if !stall.first_probe.seen() {
                    stall.first_probe = s.at;
                }
                stall.last_probe = s.at;
                stall.probes += 1;
            }
        }
        if s.tags & ZERO_WINDOW != 0 {
            if self.stall[me].is_none() {
                self.stall[me] = Some(Box::new(Stall {
                    start: s.at,
                    ..Stall::default()
                }));
            }
        } else if s.flags & RST == 0 && s.win != 0 {
            self.end_stall(me, s.at, s.at.t);
        }
    }

    /// The side's zero window ends (`end` is the reopening, or none), at time `t`.
    fn end_stall(&mut self, side: usize, end: Mark, t: f64) {
        let Some(mut stall) = self.stall[side].take() else {
            return;
        };
        stall.end = end;
        stall.seconds = t - stall.start.t;
        let worse = (self.worst_stall[side].as_deref()).is_none_or(|w| stall.seconds > w.seconds);
        if stall.probes > 0 && worse {
            self.worst_stall[side] = Some(stall);
        }
    }

    /// Seconds without payload either way (since the first segment) up to `t`.
    fn quiet_until(&self, t: f64) -> f64 {
        let since = [self.first, self.last_data[0], self.last_data[1]]
            .iter()
            .map(|m| m.t)
            .fold(f64::MIN, f64::max);
        t - since
    }

    /// A SYN at `at` reuses this connection's 4-tuple, starting connection `stream`.
    pub fn reused(&mut self, at: Mark, stream: u64) {
        if self.reused.is_none() {
            self.reused = Some(Box::new((at, stream)));
        }
    }
}

/// Every finding of a connection done with: its clues, its verdict, its last segment's
/// time, and the end of the capture so far (`now`).
pub fn findings(mut clues: Clues, v: &Verdict, last: f64, now: f64, rules: &Rules) -> Vec<Finding> {
    for side in 0..2 {
        clues.end_stall(side, Mark::default(), last); // never reopened
    }
    let c = &clues;
    let mut out = Vec::new();
    out.extend(race(c, rules));
    out.extend(abort_with_unread_data(c));
    out.extend(half_open_connection(c));
    out.extend(close_wait_leak(c, v, now, rules));
    out.extend(unacked_fin(c, v));
    out.extend(zero_window_stalls(c, rules));
    out.extend(refused(c, v));
    out.extend(unanswered_syn(c, v));
    out.extend(time_wait_assassination(c));
    out.extend(time_wait_reuse(c));
    out
}

/// Keep-alive race (idle) or write after close (busy): FIN, the peer's data, RST.
fn race(c: &Clues, rules: &Rules) -> Option<Finding> {
    let (a, fin, quiet) = c.closer?;
    if !c.rst_after_data.seen() {
        return None;
    }
    let kind = if quiet >= rules.idle {
        Kind::KeepAliveRace
    } else {
        Kind::WriteAfterClose
    };
    let mut f = Finding::new(kind, role(a), &[fin, c.data_after_fin, c.rst_after_data]);
    f.seconds = quiet;
    f.quiet = quiet;
    Some(f)
}

fn abort_with_unread_data(c: &Clues) -> Option<Finding> {
    let a = *c.abort.as_deref()?;
    let mut f = Finding::new(
        Kind::AbortWithUnreadData,
        role(a.side),
        &[a.data, a.answer, a.rst],
    );
    f.seconds = a.rst.t - a.data.t;
    f.quiet = a.quiet;
    Some(f)
}

fn half_open_connection(c: &Clues) -> Option<Finding> {
    let (side, answered, rst) = *c.unknown.as_deref()?;
    let mut f = Finding::new(Kind::HalfOpenConnection, role(side), &[answered, rst]);
    f.seconds = rst.t - answered.t;
    Some(f)
}

fn close_wait_leak(c: &Clues, v: &Verdict, now: f64, rules: &Rules) -> Option<Finding> {
    let (a, fin, _) = c.closer?;
    let b = 1 - a;
    let b_final = if b == 0 {
        v.final_client
    } else {
        v.final_server
    };
    let acked = c.fin_acked[a];
    if b_final != State::CloseWait || !acked.seen() || c.fins[b].n > 0 {
        return None;
    }
    let since = acked.t.max(c.last_data[b].t);
    let held = now - since;
    if held < rules.close_wait {
        return None;
    }
    let mut f = Finding::new(Kind::CloseWaitLeak, role(b), &[fin, acked]);
    f.seconds = held;
    Some(f)
}

fn unacked_fin(c: &Clues, v: &Verdict) -> Vec<Finding> {
    let mut out = Vec::new();
    for (side, fins) in c.fins.iter().enumerate() {
        let end = if side == 0 {
            v.final_client
        } else {
            v.final_server
        };
        let waiting = matches!(end, State::FinWait1 | State::Closing | State::LastAck);
        if fins.n < 2 || c.fin_acked[side].seen() || !waiting {
            continue;
        }
        let kept = fins.kept();
        let mut f = Finding::new(Kind::UnackedFin, role(side), &kept);
        f.count = fins.n;
        f.seconds = kept.last().map_or(0.0, |m| m.t) - fins.first().t;
        out.push(f);
    }
    out
}

fn zero_window_stalls(c: &Clues, rules: &Rules) -> Vec<Finding> {
    let mut out = Vec::new();
    for (side, stall) in c.worst_stall.iter().enumerate() {
        let Some(s) = stall else { continue };
        if s.seconds < rules.zero_window {
            continue;
        }
        let marks = [s.start, s.first_probe, s.last_probe, s.end];
        let mut f = Finding::new(Kind::ZeroWindowStall, role(side), &marks);
        f.seconds = s.seconds;
        f.count = s.probes;
        out.push(f);
    }
    out
}

/// The client's SYNs as a finding of `kind`: every copy kept, and the retry pattern.
fn syn_attempts(c: &Clues, kind: Kind, side: Role, extra: Mark) -> Finding {
    let kept = c.syns.kept();
    let mut marks = kept.clone();
    marks.push(extra);
    let mut f = Finding::new(kind, side, &marks);
    let first = c.syns.first().t;
    f.count = c.syns.n;
    f.pattern = kept.iter().map(|m| m.t - first).collect();
    f.seconds = f.pattern.last().copied().unwrap_or(0.0);
    f
}

fn refused(c: &Clues, v: &Verdict) -> Option<Finding> {
    (v.close == Close::Refused && c.syns.n > 0)
        .then(|| syn_attempts(c, Kind::Refused, Role::Server, c.first_rst[1]))
}

fn unanswered_syn(c: &Clues, v: &Verdict) -> Option<Finding> {
    (v.close == Close::Unanswered && c.syns.n > 0)
        .then(|| syn_attempts(c, Kind::UnansweredSyn, Role::Server, Mark::default()))
}

fn time_wait_assassination(c: &Clues) -> Option<Finding> {
    let (side, since, rst) = *c.assassinated.as_deref()?;
    let mut f = Finding::new(Kind::TimeWaitAssassination, role(side), &[since, rst]);
    f.seconds = if since.seen() { rst.t - since.t } else { 0.0 };
    Some(f)
}

fn time_wait_reuse(c: &Clues) -> Option<Finding> {
    let (syn, stream) = *c.reused.as_deref()?;
    let side = (0..2).find(|&i| c.time_wait_since[i].seen() && !c.assassinated_side(i))?;
    let since = c.time_wait_since[side];
    let mut f = Finding::new(Kind::TimeWaitReuse, role(side), &[since, syn]);
    f.seconds = syn.t - since.t;
    f.other_stream = Some(stream);
    Some(f)
}

impl Clues {
    fn assassinated_side(&self, side: usize) -> bool {
        self.assassinated
            .as_deref()
            .is_some_and(|(s, _, _)| *s == side)
    }
}

/// Refused or unanswered attempts at one server endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct PortTally {
    pub kind: Kind,
    pub server: Endpoint,
    pub connections: u64,
    /// SYNs sent, retries included.
    pub syns: u64,
    pub clients: u64,
    pub first: f64,
    pub last: f64,
    /// The first few streams, to look closer.
    pub streams: Vec<u64>,
}

const EXAMPLES: usize = 3;

/// Findings counted across connections: per kind, and per server endpoint for refused
/// and unanswered attempts (clients counted by address).
#[derive(Default, Debug)]
pub struct Tally {
    pub by_kind: FxHashMap<Kind, u64>,
    ports: FxHashMap<(Kind, Endpoint), (PortTally, rustc_hash::FxHashSet<std::net::IpAddr>)>,
}

impl Tally {
    /// One connection's findings.
    pub fn add(&mut self, stream: u64, client: Endpoint, server: Endpoint, found: &[Finding]) {
        for f in found {
            *self.by_kind.entry(f.kind).or_default() += 1;
            if !matches!(f.kind, Kind::Refused | Kind::UnansweredSyn) {
                continue;
            }
            let (tally, clients) = self.ports.entry((f.kind, server)).or_insert_with(|| {
                let tally = PortTally {
                    kind: f.kind,
                    server,
                    connections: 0,
                    syns: 0,
                    clients: 0,
                    first: f.t,
                    last: f.t,
                    streams: Vec::new(),
                };
                (tally, Default::default())
            });
            tally.connections += 1;
            tally.syns += f.count;
            tally.first = tally.first.min(f.t);
            tally.last = tally.last.max(f.t);
            if tally.streams.len() < EXAMPLES {
                tally.streams.push(stream);
            }
            clients.insert(client.ip);
            tally.clients = clients.len() as u64;
        }
    }

    /// Per-port tallies, most connections first (then kind, then endpoint).
    pub fn ports(&self) -> Vec<PortTally> {
        let mut out: Vec<PortTally> = self.ports.values().map(|(t, _)| t.clone()).collect();
        out.sort_by(|a, b| {
            (b.connections.cmp(&a.connections))
                .then(a.kind.cmp(&b.kind))
                .then(a.server.cmp(&b.server))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observer::testing::{after_handshake, handshake, run, seg, Seg, C, S};
    use crate::verdict::classify;

    /// The findings of `segments` (numbered from frame 1), the capture ending at `now`.
    fn found(mut segments: Vec<Seg>, now: f64) -> Vec<Finding> {
        for (i, s) in segments.iter_mut().enumerate() {
            s.seg.frame = i as u64 + 1;
        }
        let obs = run(&segments, false);
        let last = segments.last().map_or(0.0, |s| s.seg.t);
        findings(
            obs.clues.clone(),
            &classify(&obs),
            last,
            now,
            &Rules::default(),
        )
    }

    fn kinds(found: &[Finding]) -> Vec<(Kind, Role, Vec<u64>)> {
        found
            .iter()
            .map(|f| (f.kind, f.side, f.frames.clone()))
            .collect()
    }

    /// A request (100 bytes) and its response (200), ACKed: frames 4 to 6.
    fn exchange() -> Vec<Seg> {
        after_handshake(vec![
            seg(0.010, 'c', "PA", C + 1, S + 1).len(100),
            seg(0.020, 's', "PA", S + 1, C + 101).len(200),
            seg(0.030, 'c', "A", C + 101, S + 201),
        ])
    }

    /// The server closes at `t`; the client's next request crosses the FIN; RST.
    fn race_at(t: f64) -> Vec<Seg> {
        let mut all = exchange();
        all.extend([
            seg(t, 's', "FA", S + 201, C + 101),
            seg(t + 0.0001, 'c', "PA", C + 101, S + 202).len(50),
            seg(t + 0.0002, 's', "R", S + 202, 0),
        ]);
        all
    }

    #[test]
    fn a_request_into_an_idle_close_is_a_keep_alive_race() {
        let f = found(race_at(5.0), 5.0);
        assert_eq!(
            kinds(&f),
            [(Kind::KeepAliveRace, Role::Server, vec![7, 8, 9])]
        );
        assert!(
            (f[0].seconds - 4.98).abs() < 1e-9,
            "quiet since the last payload"
        );
    }

    #[test]
    fn writing_into_a_busy_close_is_a_write_after_close() {
        let f = found(race_at(0.5), 0.5);
        assert_eq!(
            kinds(&f),
            [(Kind::WriteAfterClose, Role::Server, vec![7, 8, 9])]
        );
    }

    #[test]
    fn a_copy_of_data_sent_before_the_fin_is_no_write_after_it() {
        let mut all = exchange();
        all.extend([
            seg(0.5, 'c', "PA", C + 101, S + 201).len(50),
            seg(0.6, 's', "FA", S + 201, C + 101),
            seg(0.7, 'c', "PA", C + 101, S + 202).len(50), // the same bytes again
            seg(0.7001, 's', "R", S + 202, 0),
        ]);
        assert!(found(all, 1.0)
            .iter()
            .all(|f| f.kind != Kind::WriteAfterClose && f.kind != Kind::KeepAliveRace));
    }

    #[test]
    fn a_graceful_close_proves_nothing() {
        let mut all = exchange();
        all.extend([
            seg(1.0, 'c', "FA", C + 101, S + 201),
            seg(1.001, 's', "FA", S + 201, C + 102),
            seg(1.002, 'c', "A", C + 102, S + 202),
        ]);
        assert_eq!(found(all, 100.0), []);
        // A half-close used on purpose: data after the FIN, then the other FIN.
        let all = after_handshake(vec![
            seg(0.01, 'c', "FA", C + 1, S + 1),
            seg(0.02, 's', "PA", S + 1, C + 2).len(10),
            seg(0.03, 's', "FA", S + 11, C + 2),
            seg(0.04, 'c', "A", C + 2, S + 12),
        ]);
        assert_eq!(found(all, 100.0), []);
    }

    #[test]
    fn an_rst_right_after_unanswered_data_is_an_abort_with_unread_data() {
        let all = after_handshake(vec![
            seg(0.010, 'c', "PA", C + 1, S + 1).len(100),
            seg(0.011, 's', "A", S + 1, C + 101),
            seg(0.012, 's', "RA", S + 1, C + 101),
        ]);
        let f = found(all, 1.0);
        assert_eq!(
            kinds(&f),
            [(Kind::AbortWithUnreadData, Role::Server, vec![4, 5, 6])]
        );
        assert!(
            (f[0].quiet - 0.010).abs() < 1e-9,
            "quiet since the first segment"
        );
        // An RST after the side answered (its own data last) is no such abort.
        let all = after_handshake(vec![
            seg(0.010, 'c', "PA", C + 1, S + 1).len(100),
            seg(0.011, 's', "PA", S + 1, C + 101).len(10),
            seg(0.012, 's', "RA", S + 11, C + 101),
        ]);
        assert_eq!(found(all, 1.0), []);
    }

    #[test]
    fn an_rst_without_ack_answering_data_is_a_half_open_connection() {
        // The server lost the connection (it came back without it): the client's data
        // retransmitted, never ACKed, then answered by a bare RST (seq = the data's ACK).
        let all = after_handshake(vec![
            seg(0.010, 'c', "PA", C + 1, S + 1).len(6),
            seg(0.210, 'c', "PA", C + 1, S + 1).len(6),
            seg(0.211, 's', "R", S + 1, 0),
        ]);
        assert_eq!(
            kinds(&found(all, 1.0)),
            [(Kind::HalfOpenConnection, Role::Server, vec![5, 6])]
        );
        // The same RST carrying ACK is an abort, not a lost connection.
        let all = after_handshake(vec![
            seg(0.010, 'c', "PA", C + 1, S + 1).len(6),
            seg(0.211, 's', "RA", S + 1, C + 7),
        ]);
        assert_eq!(kinds(&found(all, 1.0))[0].0, Kind::AbortWithUnreadData);
        // After its own FIN, a side's bare RST for new data is the race, not this.
        let all = after_handshake(vec![
            seg(2.0, 's', "FA", S + 1, C + 1),
            seg(2.1, 'c', "PA", C + 1, S + 2).len(6),
            seg(2.1001, 's', "R", S + 2, 0),
        ]);
        assert_eq!(kinds(&found(all, 1.0))[0].0, Kind::KeepAliveRace);
    }

    #[test]
    fn close_wait_held_past_the_threshold_is_a_leak() {
        let all = after_handshake(vec![
            seg(0.01, 'c', "FA", C + 1, S + 1),
            seg(0.02, 's', "A", S + 1, C + 2),
        ]);
        let f = found(all, 10.0);
        assert_eq!(kinds(&f), [(Kind::CloseWaitLeak, Role::Server, vec![4, 5])]);
        assert!((f[0].seconds - 9.98).abs() < 1e-9);
        let all = after_handshake(vec![
            seg(0.01, 'c', "FA", C + 1, S + 1),
            seg(0.02, 's', "A", S + 1, C + 2),
        ]);
        assert_eq!(found(all, 4.0), [], "under 5 s");
    }

    #[test]
    fn a_fin_sent_again_and_never_acked_is_stuck() {
        let all = after_handshake(vec![
            seg(0.01, 'c', "FA", C + 1, S + 1),
            seg(0.21, 'c', "FA", C + 1, S + 1),
            seg(0.61, 'c', "FA", C + 1, S + 1),
        ]);
        let f = found(all, 1.0);
        assert_eq!(kinds(&f), [(Kind::UnackedFin, Role::Client, vec![4, 5, 6])]);
        assert_eq!(f[0].count, 3);
        // Every copy is counted; the first six are named.
        let copies = (0..8).map(|i| seg(0.01 + f64::from(i), 'c', "FA", C + 1, S + 1));
        let f = found(after_handshake(copies.collect()), 9.0);
        assert_eq!(
            (f[0].count, f[0].frames.clone()),
            (8, vec![4, 5, 6, 7, 8, 9])
        );
    }

    #[test]
    fn a_probed_zero_window_held_past_the_threshold_is_a_stall() {
        let all = after_handshake(vec![
            seg(0.01, 'c', "PA", C + 1, S + 1).len(1000),
            seg(0.02, 's', "A", S + 1, C + 1001).win(0),
            seg(0.22, 'c', "A", C + 1000, S + 1),
            seg(0.23, 's', "A", S + 1, C + 1001).win(0),
            seg(0.62, 'c', "A", C + 1000, S + 1),
            seg(0.63, 's', "A", S + 1, C + 1001).win(0),
            seg(3.02, 's', "A", S + 1, C + 1001).win(65535),
        ]);
        let f = found(all, 3.02);
        assert_eq!(
            kinds(&f),
            [(Kind::ZeroWindowStall, Role::Server, vec![5, 6, 8, 10])]
        );
        assert_eq!(f[0].count, 2);
        assert!((f[0].seconds - 3.0).abs() < 1e-9);
    }

    #[test]
    fn refused_and_unanswered_attempts_carry_their_syns() {
        let all = vec![
            seg(0.0, 'c', "S", C, 0),
            seg(0.0001, 's', "RA", 0, C + 1).win(0),
        ];
        let f = found(all, 1.0);
        assert_eq!(kinds(&f), [(Kind::Refused, Role::Server, vec![1, 2])]);
        let all = vec![
            seg(0.0, 'c', "S", C, 0),
            seg(1.0, 'c', "S", C, 0),
            seg(3.0, 'c', "S", C, 0),
        ];
        let f = found(all, 3.0);
        assert_eq!(
            kinds(&f),
            [(Kind::UnansweredSyn, Role::Server, vec![1, 2, 3])]
        );
        assert_eq!((f[0].count, f[0].pattern.clone()), (3, vec![0.0, 1.0, 3.0]));
    }

    #[test]
    fn an_rst_accepted_in_time_wait_is_an_assassination() {
        let all = after_handshake(vec![
            seg(0.010, 'c', "FA", C + 1, S + 1),
            seg(0.011, 's', "FA", S + 1, C + 2),
            seg(0.012, 'c', "A", C + 2, S + 2),
            seg(2.0, 's', "R", S + 2, 0),
        ]);
        let f = found(all, 2.0);
        assert_eq!(
            kinds(&f),
            [(Kind::TimeWaitAssassination, Role::Client, vec![5, 7])]
        );
        // Outside RCV.NXT Linux ignores it: TIME-WAIT survives.
        let all = after_handshake(vec![
            seg(0.010, 'c', "FA", C + 1, S + 1),
            seg(0.011, 's', "FA", S + 1, C + 2),
            seg(0.012, 'c', "A", C + 2, S + 2),
            seg(2.0, 's', "R", S + 900, 0),
        ]);
        assert_eq!(found(all, 2.0), []);
    }

    #[test]
    fn the_tally_counts_kinds_and_attempts_per_port() {
        let mut tally = Tally::default();
        let mut segs = handshake();
        segs.truncate(1);
        segs.push(seg(0.0001, 's', "RA", 0, C + 1).win(0));
        let f = found(segs, 1.0);
        let e = |port| Endpoint {
            ip: "10.0.0.1".parse().unwrap(),
            port,
        };
        tally.add(0, e(40000), e(80), &f);
        tally.add(1, e(40001), e(80), &f);
        tally.add(2, e(40002), e(81), &f);
        assert_eq!(tally.by_kind[&Kind::Refused], 3);
        let ports = tally.ports();
        assert_eq!(
            (ports[0].server.port, ports[0].connections, ports[0].clients),
            (80, 2, 1)
        );
        assert_eq!(ports[0].streams, vec![0, 1]);
    }
}
