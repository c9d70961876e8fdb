//! The `decode` target: arbitrary (link type, original length, frame) through
//! `decode::decode_segment`, and the frame's bytes through `decode::syn_options`.
//!
//! Input layout (every input is valid):
//! - byte 0: the link type: one the decoder knows (byte % 10), or, from 0xF0 up, any
//!   u32 from the next 4 bytes;
//! - byte 1: bits 0-1 how the original length relates to the frame (equal, longer by
//!   the next u16, any u32 from the next 4 bytes, 0); bits 2-4 the timestamp;
//! - the rest: the frame as captured.

use tcptrace_engine::decode::{
    decode_segment, syn_options, ETHERNET, IPV4, IPV6, LOOP, NULL, RAW, RAW_BSD, RAW_OPENBSD, SLL,
    SLL2,
};
use tcptrace_engine::segment::{ip_text, SYN};

const LINKTYPES: [u32; 10] = [
    NULL,
    ETHERNET,
    RAW_BSD,
    RAW_OPENBSD,
    RAW,
    LOOP,
    SLL,
    IPV4,
    IPV6,
    SLL2,
];

const TIMES: [f64; 8] = [
    1.7e9,
    0.0,
    -1.0,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::MAX,
    1e-300,
];

fn split_u32(data: &[u8]) -> (u32, &[u8]) {
    match data.split_first_chunk::<4>() {
        Some((head, rest)) => (u32::from_be_bytes(*head), rest),
        None => (0, &[]),
    }
}

pub fn run(data: &[u8]) {
    let [sel, mode, rest @ ..] = data else {
        return;
    };
    let (linktype, rest) = if *sel >= 0xF0 {
        split_u32(rest)
    } else {
        (LINKTYPES[usize::from(*sel) % LINKTYPES.len()], rest)
    };
    let caplen = |frame: &[u8]| u32::try_from(frame.len()).unwrap_or(u32::MAX);
    let (orig_len, frame) = match mode & 3 {
        0 => (caplen(rest), rest),
        1 => match rest.split_first_chunk::<2>() {
            Some((extra, frame)) => (
                caplen(frame).saturating_add(u32::from(u16::from_be_bytes(*extra))),
                frame,
            ),
            None => (0, rest),
        },
        2 => split_u32(rest),
        _ => (0, rest),
    };
    let ts = TIMES[usize::from(mode >> 2 & 7)];
    let comments = if mode & 0x80 != 0 {
        vec!["fuzz".to_string()]
    } else {
        Vec::new()
    };
    let _ = syn_options(frame);
    let Some(seg) = decode_segment(linktype, frame, orig_len, ts, 7, comments.clone()) else {
        return;
    };
    // What the decoder promises: the capture's facts passed through untouched, options
    // only on SYNs, at most one VLAN tag per 4 captured bytes.
    assert!(seg.t.to_bits() == ts.to_bits());
    assert_eq!(seg.frame, 7);
    assert_eq!(seg.comments, comments);
    assert!(seg.vlan.len() <= frame.len() / 4);
    assert!(seg.vlan.iter().all(|&id| id <= 0x0FFF));
    if seg.flags & SYN == 0 {
        assert_eq!((seg.mss, seg.wscale), (None, None));
    }
    assert_eq!(seg.src.ip.is_ipv4(), seg.dst.ip.is_ipv4());
    let _ = (
        seg.src.to_string(),
        seg.dst.to_string(),
        ip_text(seg.src.ip),
    );
    let _ = seg.seq_space();
}
