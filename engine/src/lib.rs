//! tcptrace's analysis engine.
//!
//! A capture's path through it: `reader` (pcap/pcapng records, damage skipped with a
//! warning) → `decode` (link, IP and TCP headers → `Segment`) → `grouping` (which
//! connection a segment belongs to, who is the client, when a 4-tuple is reused) →
//! `observer` (both endpoints' RFC 9293 state machines, run by a passive observer, with
//! `zeek`'s conn_state/history alongside) → `verdict` (how the connection ended).
//! `scan` drives that pipeline over a whole capture; `python` is the PyO3 face that
//! tcptrace's Python front calls (built only with the `python` feature).

#![forbid(unsafe_code)]

pub mod decode;
pub mod diagnose;
pub mod encap;
pub mod grouping;
pub mod jsonline;
pub mod observer;
pub mod reader;
pub mod scan;
pub mod segment;
pub mod tunnel;
pub mod verdict;
pub mod zeek;

#[cfg(feature = "python")]
mod python;
