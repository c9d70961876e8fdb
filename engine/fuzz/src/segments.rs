//! The `segments` target: arbitrary bytes read as a recipe for a sequence of segments,
//! fed to `grouping::Scanner` (record + add + pop + finish) with an arbitrary linger and
//! `Keep`, then one connection's segments to `grouping::analyse` (the annotating path).
//!
//! The recipe is biased towards traffic that reaches deep into the state machine: three
//! endpoints (the first two talk most; any two may be equal, IPv4 or IPv6, IPv4-mapped
//! or not), sequence and acknowledgment numbers that follow each sender's SND.NXT with
//! retransmissions, gaps, wild values and ISNs near 2^32 and 2^31, common flag
//! combinations and any flag byte, lengths from 0 to u32::MAX, any window, wscale and
//! MSS options (also on non-SYNs, as Python callers may pass), VLAN stacks that change
//! per segment, timestamps that go forward, backward, across the linger, or are NaN,
//! infinite, negative or huge, and runs of non-TCP records that make the scanner's
//! housekeeping run.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use tcptrace_engine::grouping::{analyse, Finished, Keep, Scanner, HOUSEKEEPING};
use tcptrace_engine::jsonline::summary_line;
use tcptrace_engine::observer::tag_names;
use tcptrace_engine::segment::{Endpoint, Segment, ACK, CWR, ECE, FIN, PSH, RST, SYN, URG};

const LINGERS: [f64; 8] = [60.0, 0.0, 1.0, 0.001, 3600.0, f64::INFINITY, f64::NAN, -1.0];

const TIMES: [f64; 12] = [
    0.0,
    -0.0,
    -1.0,
    1.7e9,
    1e300,
    -1e300,
    f64::MAX,
    f64::MIN_POSITIVE,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    4_294_967_296.0,
];

const FLAGS: [u8; 16] = [
    SYN,
    SYN | ACK,
    ACK,
    ACK | PSH,
    FIN | ACK,
    FIN | PSH | ACK,
    RST,
    RST | ACK,
    FIN,
    SYN | FIN,
    SYN | RST,
    0,
    ACK | URG,
    SYN | ECE | CWR,
    ACK | ECE,
    SYN | ACK | FIN | RST,
];

const ISNS: [u32; 8] = [
    0,
    1,
    u32::MAX,
    u32::MAX - 1459,
    0x7FFF_FFFF,
    0x8000_0000,
    0x8000_0001,
    1_000_000,
];

const PORTS: [u16; 6] = [80, 443, 50000, 0, 65535, 1024];

fn ip(u: &mut Unstructured) -> Result<IpAddr> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 | 1 => IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        2 | 3 => IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        4 => IpAddr::V4(Ipv4Addr::LOCALHOST),
        5 => IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()),
        6 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        _ => IpAddr::V6(Ipv6Addr::from(u.arbitrary::<u128>()?)),
    })
}

fn endpoint(u: &mut Unstructured) -> Result<Endpoint> {
    let ip = ip(u)?;
    let port = if u.ratio(3, 4)? {
        *u.choose(&PORTS)?
    } else {
        u.arbitrary()?
    };
    Ok(Endpoint { ip, port })
}

fn time(u: &mut Unstructured) -> Result<f64> {
    Ok(if u.ratio(7, 8)? {
        *u.choose(&TIMES)?
    } else {
        f64::from_bits(u.arbitrary()?)
    })
}

fn isn(u: &mut Unstructured) -> Result<u32> {
    Ok(if u.ratio(3, 4)? {
        ISNS[usize::from(u.int_in_range(0..=7u8)?)]
            .wrapping_add(u32::from(u.int_in_range(0..=3u8)?))
    } else {
        u.arbitrary()?
    })
}

/// A sequence (or acknowledgment) number around `nxt`: mostly at it, sometimes behind
/// (retransmission), ahead (gap), half the space away, or anything.
fn around(u: &mut Unstructured, nxt: u32) -> Result<u32> {
    Ok(match u.int_in_range(0..=7u8)? {
        0..=3 => nxt,
        4 => nxt.wrapping_sub(u32::from(u.arbitrary::<u16>()?)),
        5 => nxt.wrapping_add(u32::from(u.arbitrary::<u16>()?)),
        6 => nxt.wrapping_add(0x8000_0000),
        _ => u.arbitrary()?,
    })
}

fn vlan_stack(u: &mut Unstructured) -> Result<Vec<u16>> {
    let depth = match u.int_in_range(0..=7u8)? {
        0..=3 => 0,
        4 | 5 => 1,
        6 => 2,
        _ => u.int_in_range(3..=7)?,
    };
    (0..depth)
        .map(|_| {
            Ok(if u.ratio(3, 4)? {
                u.int_in_range(0..=3)? * 10
            } else {
                u.arbitrary()?
            })
        })
        .collect()
}

/// Checks on one connection handed over (and its summary line written).
fn check(done: &Finished, keep: Keep, seen: &mut HashSet<u64>) -> u64 {
    assert!(
        seen.insert(done.stream),
        "stream {} handed over twice",
        done.stream
    );
    let line = summary_line(done);
    assert!(line.starts_with('{') && line.ends_with('}'));
    let _ = done.verdict.close_text();
    assert_eq!(
        done.client_sent.packets + done.server_sent.packets,
        done.packets
    );
    assert!(done.client != done.server || done.server_sent.packets == 0);
    match (&done.detail, keep) {
        (Some(detail), Keep::All) => {
            assert_eq!(detail.segments.len() as u64, done.packets);
            assert_eq!(detail.steps.len(), detail.segments.len());
        }
        (Some(detail), Keep::Stream(n)) if n == done.stream => {
            assert_eq!(detail.segments.len() as u64, done.packets);
            assert_eq!(detail.steps.len(), detail.segments.len());
        }
        (None, Keep::Nothing) => {}
        (None, Keep::Stream(n)) if n != done.stream => {}
        (detail, keep) => panic!(
            "stream {}: detail kept {} with {keep:?}",
            done.stream,
            detail.is_some()
        ),
    }
    done.packets
}

pub fn run(data: &[u8]) {
    let _ = run_recipe(&mut Unstructured::new(data));
}

fn run_recipe(u: &mut Unstructured) -> Result<()> {
    let linger = *u.choose(&LINGERS)?;
    let keep = match u.int_in_range(0..=3u8)? {
        0 | 1 => Keep::All,
        2 => Keep::Nothing,
        _ => Keep::Stream(u.int_in_range(0..=3)?),
    };
    // What analyse gets at the end: the first two endpoints' segments or all of them,
    // with either of the two as the client.
    let analyse_all = u.ratio(1, 8)?;
    let analyse_client_is_first = u.arbitrary::<bool>()?;
    let ends = [endpoint(u)?, endpoint(u)?, endpoint(u)?];
    let mut nxt = [isn(u)?, isn(u)?, isn(u)?];
    let home_vlan = vlan_stack(u)?;
    let mut t = time(u)?;
    let mut frame = 0u64;

    let mut scanner = Scanner::new(linger, keep);
    let mut seen = HashSet::new();
    let mut packets = 0u64;
    let mut records = 0u64;
    let mut fed: Vec<Segment> = Vec::new();
    while !u.is_empty() && fed.len() < 2048 {
        // The clock: mostly forward in small steps.
        t = match u.int_in_range(0..=15u8)? {
            0..=9 => t + f64::from(u.int_in_range(0..=100_000u32)?) * 1e-6,
            10 => t,
            11 => t + 60.0 + f64::from(u.arbitrary::<u16>()?),
            12 => t - f64::from(u.arbitrary::<u8>()?) * 1e-3,
            13 => time(u)?,
            _ => t + f64::from(u.arbitrary::<u8>()?) * 1e-3,
        };
        // Now and then a run of non-TCP records, enough to make housekeeping run.
        if u.ratio(1, 32)? {
            let n = u.int_in_range(1..=HOUSEKEEPING as u32 + 8)?;
            for _ in 0..n {
                scanner.record(t);
                records += 1;
            }
            while let Some(done) = scanner.pop() {
                packets += check(&done, keep, &mut seen);
            }
        }
        let (from, to) = match u.int_in_range(0..=15u8)? {
            0..=6 => (0, 1),
            7..=13 => (1, 0),
            14 => *u.choose(&[(0, 2), (2, 0)])?,
            _ => *u.choose(&[(1, 2), (2, 1)])?,
        };
        let flags = if u.ratio(7, 8)? {
            *u.choose(&FLAGS)?
        } else {
            u.arbitrary()?
        };
        let seq = around(u, nxt[from])?;
        let ack = if flags & ACK != 0 || u.ratio(1, 8)? {
            around(u, nxt[to])?
        } else {
            0
        };
        let length = match u.int_in_range(0..=7u8)? {
            0..=3 => 0,
            4 | 5 => u.int_in_range(1..=1460)?,
            6 => u32::from(u.arbitrary::<u16>()?),
            _ => u.arbitrary()?,
        };
        let win = if u.ratio(1, 8)? { 0 } else { u.arbitrary()? };
        let options = flags & SYN != 0 || u.ratio(1, 16)?;
        let wscale = match options && u.ratio(1, 2)? {
            true if u.ratio(3, 4)? => Some(u.int_in_range(0..=14)?),
            true => Some(u.arbitrary()?),
            false => None,
        };
        let mss = match options && u.ratio(1, 2)? {
            true => Some(u.arbitrary()?),
            false => None,
        };
        let vlan = if u.ratio(7, 8)? {
            home_vlan.clone()
        } else {
            vlan_stack(u)?
        };
        let comments = if u.ratio(1, 64)? {
            vec!["fuzz \"comment\"\n".to_string()]
        } else {
            Vec::new()
        };
        frame += 1;
        let seg = Segment {
            t,
            src: ends[from],
            dst: ends[to],
            flags,
            seq,
            ack,
            length,
            win,
            wscale,
            mss,
            vlan,
            encap: Vec::new(),
            ip_id: None,
            checksum: None,
            frame,
            comments,
        };
        // The sender's SND.NXT as the next segment starts from it.
        nxt[from] = seq.wrapping_add(seg.seq_space() as u32);
        scanner.record(t);
        records += 1;
        scanner.add(seg.clone());
        fed.push(seg);
        while let Some(done) = scanner.pop() {
            packets += check(&done, keep, &mut seen);
        }
    }
    scanner.finish();
    while let Some(done) = scanner.pop() {
        packets += check(&done, keep, &mut seen);
    }
    assert!(scanner.pop().is_none());
    assert_eq!(seen.len() as u64, scanner.connections);
    assert_eq!(packets, scanner.segments);
    assert_eq!(scanner.segments, fed.len() as u64);
    assert!(scanner.peak_open <= scanner.connections);
    assert!(records >= scanner.segments);

    // One connection, roles known, every step annotated (what a live run does).
    let (a, b) = (ends[0], ends[1]);
    let segments: Vec<Segment> = if analyse_all {
        fed
    } else {
        fed.into_iter()
            .filter(|s| (s.src == a && s.dst == b) || (s.src == b && s.dst == a))
            .collect()
    };
    let n = segments.len();
    let client = if analyse_client_is_first { a } else { b };
    let (detail, verdict) = analyse(segments, client);
    assert_eq!(detail.segments.len(), n);
    assert_eq!(detail.steps.len(), n);
    let _ = verdict.close_text();
    let _ = (detail.initial.0.name(), detail.initial.1.name());
    for step in &detail.steps {
        let _ = tag_names(step.tags);
        let _ = (
            step.client_state.name(),
            step.server_state.name(),
            step.sender.name(),
        );
    }
    Ok(())
}
