//! One connection's verdict (the tcptrace/1 `verdict` object), from the observer's facts.
//!
//! How the connection ended, `close`: the first rule that holds, in this order.
//!
//! | close         | rule                                                                |
//! |---------------|---------------------------------------------------------------------|
//! | `rst`         | a RST destroyed the connection (or aborted an attempt): `rst_ended` |
//! | `refused`     | a SYN was answered by RST, and no handshake ever completed          |
//! | `fin`         | both sides sent a FIN                                               |
//! | `half-closed` | exactly one side sent a FIN (RFC 9293's word: that direction is     |
//! |               | closed, the other still open)                                       |
//! | `unanswered`  | the client sent a SYN and the server sent no segment at all (Zeek's |
//! |               | S0, "attempt with no reply")                                        |
//! | `open`        | otherwise: neither side closed                                      |
//!
//! A RST that only ends a TIME-WAIT early, or one the receiver's kernel ignores, does
//! not make the close `rst`: the FINs said how it ended. `time_wait` names the sides
//! left in TIME-WAIT at the end of the capture; `rst_from` the sides that sent any RST.
//!
//! (The Python engine said "half-open" for `half-closed`, and "open" for `unanswered`
//! too; "half-open" means something else in RFC 9293: one side gone without the other
//! knowing.)

use crate::observer::{Observer, Role, State};

/// How a connection ended; see the module's rule table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Close {
    Fin,
    Rst,
    Refused,
    HalfClosed,
    Unanswered,
    Open,
}

impl Close {
    pub fn name(self) -> &'static str {
        match self {
            Close::Fin => "fin",
            Close::Rst => "rst",
            Close::Refused => "refused",
            Close::HalfClosed => "half-closed",
            Close::Unanswered => "unanswered",
            Close::Open => "open",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub close: Close,
    /// Side that sent the first FIN or RST.
    pub first_closer: Option<Role>,
    /// "client" | "server" | "both"; None: no RST.
    pub rst_from: Option<&'static str>,
    /// The FINs crossed.
    pub simultaneous: bool,
    /// "client" | "server" | "both"; None: neither ends in TIME-WAIT.
    pub time_wait: Option<&'static str>,
    pub final_client: State,
    pub final_server: State,
    /// Zeek's conn_state.
    pub conn_state: &'static str,
    /// Zeek's history.
    pub history: String,
    /// Only one side's segments are in the capture; the other's were inferred from
    /// its ACKs (how it closed is then as far as those prove).
    pub one_direction: bool,
}

/// The verdict of an observer fed the whole connection (with or without Steps: the
/// facts are the same).
impl Verdict {
    /// How it closed, in a few words, for a table cell: "FIN", "RST from server",
    /// "FIN, then RST from client", "FIN, FINs crossed", "unanswered SYN".
    pub fn close_text(&self) -> String {
        if self.one_direction {
            return "one direction captured".to_string();
        }
        let mut text = match self.close {
            Close::Rst => format!("RST from {}", self.rst_from.unwrap_or("?")),
            Close::Fin => "FIN".to_string(),
            Close::Unanswered => "unanswered SYN".to_string(),
            other => other.name().to_string(),
        };
        if let (Some(who), Close::Fin | Close::HalfClosed | Close::Unanswered | Close::Open) =
            (self.rst_from, self.close)
        {
            text.push_str(", then RST from ");
            text.push_str(who);
        }
        if self.simultaneous {
            text.push_str(", FINs crossed");
        }
        text
    }
}

pub fn classify(obs: &Observer) -> Verdict {
    let (c, s) = (&obs.client, &obs.server);
    Verdict {
        close: close_of(obs),
        first_closer: obs.first_closer,
        rst_from: sides(obs.rst_from_client, obs.rst_from_server),
        simultaneous: obs.simultaneous,
        time_wait: sides(c.state == State::TimeWait, s.state == State::TimeWait),
        final_client: c.state,
        final_server: s.state,
        conn_state: obs.zeek.conn_state(c.bytes, s.bytes),
        history: obs.zeek.history().to_string(),
        one_direction: one_direction(obs),
    }
}

/// One side sent nothing the capture shows, yet segments of its were inferred.
fn one_direction(obs: &Observer) -> bool {
    let unseen = |s: &crate::observer::Side| s.packets == 0 && obs.inferred(s.role) > 0;
    unseen(&obs.client) || unseen(&obs.server)
}

/// The module's rule table.
fn close_of(obs: &Observer) -> Close {
    let (c, s) = (&obs.client, &obs.server);
    let fins = usize::from(c.fin >= 0) + usize::from(s.fin >= 0);
    if obs.rst_ended {
        Close::Rst
    } else if obs.refused && !obs.handshake {
        Close::Refused
    } else if fins == 2 {
        Close::Fin
    } else if fins == 1 {
        Close::HalfClosed
    } else if c.syn_seen && s.packets == 0 {
        Close::Unanswered
    } else {
        Close::Open
    }
}

fn sides(client: bool, server: bool) -> Option<&'static str> {
    match (client, server) {
        (true, true) => Some("both"),
        (true, false) => Some("client"),
        (false, true) => Some("server"),
        (false, false) => None,
    }
}

/// Hand-built cases (tests/test_verdict.py's, with issue 9's words).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::observer::testing::{after_handshake, handshake, run, seg, Seg, C, S};
    use State::*;

    fn verdict(segments: &[Seg]) -> Verdict {
        let full = classify(&run(segments, true));
        assert_eq!(
            classify(&run(segments, false)),
            full,
            "annotating changes the verdict"
        );
        full
    }

    fn four_way() -> Vec<Seg> {
        after_handshake(vec![
            seg(0.010, 'c', "FA", C + 1, S + 1),
            seg(0.050, 's', "A", S + 1, C + 2),
            seg(0.060, 's', "FA", S + 1, C + 2),
            seg(0.061, 'c', "A", C + 2, S + 2),
        ])
    }

    #[test]
    fn graceful_close() {
        let expected = Verdict {
            close: Close::Fin,
            first_closer: Some(Role::Client),
            rst_from: None,
            simultaneous: false,
            time_wait: Some("client"),
            final_client: TimeWait,
            final_server: Closed,
            conn_state: "SF",
            history: "ShAFaf".into(),
            one_direction: false,
        };
        assert_eq!(verdict(&four_way()), expected);
    }

    #[test]
    fn simultaneous_close_leaves_both_in_time_wait() {
        let v = verdict(&after_handshake(vec![
            seg(0.010, 'c', "FA", C + 1, S + 1),
            seg(0.0101, 's', "FA", S + 1, C + 1),
            seg(0.0102, 'c', "A", C + 2, S + 2),
            seg(0.0103, 's', "A", S + 2, C + 2),
        ]));
        assert_eq!(
            (v.close, v.simultaneous, v.time_wait),
            (Close::Fin, true, Some("both"))
        );
    }

    #[test]
    fn abort_and_rst_after_half_close() {
        let v = verdict(&after_handshake(vec![seg(0.01, 's', "RA", S + 1, C + 1)]));
        assert_eq!(
            (v.close, v.first_closer, v.rst_from, v.time_wait),
            (Close::Rst, Some(Role::Server), Some("server"), None)
        );
        let v = verdict(&after_handshake(vec![
            seg(0.010, 'c', "FA", C + 1, S + 1),
            seg(0.011, 's', "A", S + 1, C + 2),
            seg(0.020, 's', "PA", S + 1, C + 2).len(30),
            seg(0.021, 'c', "R", C + 2, 0),
        ]));
        assert_eq!(
            (v.close, v.first_closer, v.rst_from),
            (Close::Rst, Some(Role::Client), Some("client"))
        );
        assert_eq!((v.final_client, v.final_server), (Closed, Closed));
    }

    #[test]
    fn rst_from_both_sides() {
        let v = verdict(&after_handshake(vec![
            seg(0.01, 's', "RA", S + 1, C + 1),
            seg(0.0101, 'c', "PA", C + 1, S + 1).len(3),
            seg(0.0102, 's', "R", S + 1, 0),
            seg(0.02, 'c', "RA", C + 4, S + 1),
        ]));
        assert_eq!((v.close, v.rst_from), (Close::Rst, Some("both")));
    }

    #[test]
    fn client_abandoning_its_own_attempt_is_an_rst() {
        let v = verdict(&[seg(0.0, 'c', "S", C, 0), seg(0.5, 'c', "R", C + 1, 0)]);
        assert_eq!(
            (v.close, v.first_closer, v.rst_from, v.conn_state),
            (Close::Rst, Some(Role::Client), Some("client"), "RSTOS0")
        );
    }

    #[test]
    fn rst_that_only_ends_time_wait_keeps_the_close_graceful() {
        let mut segments = four_way();
        segments.push(seg(5.0, 's', "R", S + 2, 0));
        let v = verdict(&segments);
        assert_eq!(
            (v.close, v.rst_from, v.time_wait),
            (Close::Fin, Some("server"), None)
        );
    }

    #[test]
    fn refused() {
        let v = verdict(&[
            seg(0.0, 'c', "S", C, 0),
            seg(0.0001, 's', "RA", 0, C + 1).win(0),
        ]);
        let expected = Verdict {
            close: Close::Refused,
            first_closer: Some(Role::Server),
            rst_from: Some("server"),
            simultaneous: false,
            time_wait: None,
            final_client: Closed,
            final_server: Closed,
            conn_state: "REJ",
            history: "Sr".into(),
            one_direction: false,
        };
        assert_eq!(v, expected);
    }

    #[test]
    fn half_closed_unanswered_and_open() {
        let v = verdict(&after_handshake(vec![
            seg(0.01, 'c', "FA", C + 1, S + 1),
            seg(0.02, 's', "A", S + 1, C + 2),
        ]));
        assert_eq!(
            (v.close, v.final_client, v.final_server),
            (Close::HalfClosed, FinWait2, CloseWait)
        );
        let v = verdict(&handshake());
        assert_eq!(
            (v.close, v.first_closer, v.conn_state),
            (Close::Open, None, "S1")
        );
        // Nobody answered (Zeek S0), however often the SYN was sent.
        let v = verdict(&[seg(0.0, 'c', "S", C, 0), seg(1.0, 'c', "S", C, 0)]);
        assert_eq!(
            (v.close, v.final_client, v.final_server, v.conn_state),
            (Close::Unanswered, SynSent, Unknown, "S0")
        );
        // Mid-connection traffic from the client alone never sent a SYN: open.
        let v = verdict(&[seg(0.0, 'c', "PA", 3000, 7000).len(5)]);
        assert_eq!(v.close, Close::Open);
    }

    #[test]
    fn close_names() {
        let names: Vec<_> = [
            Close::Fin,
            Close::Rst,
            Close::Refused,
            Close::HalfClosed,
            Close::Unanswered,
            Close::Open,
        ]
        .iter()
        .map(|c| c.name())
        .collect();
        assert_eq!(
            names,
            ["fin", "rst", "refused", "half-closed", "unanswered", "open"]
        );
    }
}
