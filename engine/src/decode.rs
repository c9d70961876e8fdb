//! Turn one captured frame into a [`Segment`], or None when it is not (the first fragment
//! of) a TCP segment (a port of `tcptrace/decode.py`).
//!
//! Link layers: Ethernet with 802.1Q, 802.1ad and pre-standard 0x9100 VLAN tags (their
//! IDs are collected, outermost first) and MPLS label stacks; Linux cooked SLL and SLL2;
//! raw IP (the version nibble tells IPv4 from IPv6); BSD NULL/LOOP loopback headers
//! (the address family, in whichever byte order gives a small number).
//!
//! Below the link layer the decoder walks, header by header (at most `MAX_LAYERS`),
//! VLAN tags, MPLS labels, PPPoE sessions and tunnels (`tunnel.rs`: VXLAN, Geneve, GRE,
//! ERSPAN, IP in IP) down to the TCP segment, recording the path in `Segment::encap`
//! (`encap.rs`). A frame that may hold TCP but cannot be reached is `Decoded::Skipped`
//! with its reason, so that the scan can count it: nothing is dropped silently.
//!
//! Payload length comes from the IP header's length fields, never from the captured
//! length: snaplen-limited captures cut the bytes but not the sequence-number accounting.
//! A TCP header cut short by the snaplen still yields a segment as long as its first 16
//! bytes (ports, numbers, flags, window) are there; only the options are then missing.
//! Lengths are computed in i64 because the Python's integers can go negative on bad
//! headers (an IP length smaller than its header), which must give None, not wrap.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::encap::{Kind, Layer, Skip};
use crate::segment::{Endpoint, Segment, SYN};
use crate::tunnel::{
    self, Hop, Inner, ETH_PPPOE_SESSION, GENEVE_PORT, VXLAN_LINUX_PORT, VXLAN_PORT,
};

/// LINKTYPE_* values the decoder understands.
pub const NULL: u32 = 0;
pub const ETHERNET: u32 = 1;
pub const RAW_BSD: u32 = 12;
pub const RAW_OPENBSD: u32 = 14;
pub const RAW: u32 = 101;
pub const LOOP: u32 = 108;
pub const SLL: u32 = 113;
pub const IPV4: u32 = 228;
pub const IPV6: u32 = 229;
pub const SLL2: u32 = 276;

/// Ethertypes.
pub const ETH_IPV4: u16 = 0x0800;
pub const ETH_IPV6: u16 = 0x86DD;
/// 802.1Q, 802.1ad, pre-standard QinQ.
const VLAN_TAGS: [u16; 3] = [0x8100, 0x88A8, 0x9100];
const MPLS: [u16; 2] = [0x8847, 0x8848];
/// Address families a BSD loopback header can carry (BSDs and macOS disagree on IPv6).
const AF_INET: u32 = 2;
const AF_INET6: [u32; 3] = [24, 28, 30];
/// Hop-by-hop, routing, destination options.
const IPV6_SKIPPABLE: [u8; 3] = [0, 43, 60];
const IPV6_FRAGMENT: u8 = 44;
const TCP: u8 = 6;

// Link-layer header layouts.
const ETH_HDR: usize = 14;
const ETH_TYPE_AT: usize = 12;
const VLAN_TAG: usize = 4; // TCI, then the inner ethertype
const VLAN_ID_MASK: u16 = 0x0FFF;
const MPLS_LABEL: usize = 4;
const MPLS_BOTTOM_AT: usize = 2; // byte holding the bottom-of-stack bit
const SLL_HDR: usize = 16;
const SLL_PROTO_AT: usize = 14;
const SLL2_HDR: usize = 20;
const SLL2_PROTO_AT: usize = 0;
const LOOPBACK_HDR: usize = 4;

// IPv4 header: version/IHL, total length, fragment field, protocol, addresses.
const IP4_HDR: usize = 20;
const IP4_TOTAL_AT: usize = 2;
const IP4_ID_AT: usize = 4;
const IP4_FRAG_AT: usize = 6;
const IP4_PROTO_AT: usize = 9;
const IP4_SRC_AT: usize = 12;
const IP4_DST_AT: usize = 16;
const IP4_FRAG_OFFSET: u16 = 0x1FFF;

// IPv6 header and extension headers.
const IP6_HDR: usize = 40;
const IP6_PAYLOAD_AT: usize = 4;
const IP6_NEXT_AT: usize = 6;
const IP6_SRC_AT: usize = 8;
const IP6_DST_AT: usize = 24;
const IP6_EXT_MIN: usize = 8;
const IP6_EXT_UNIT: usize = 8; // extension header lengths count 8-octet units
const IP6_FRAG_OFFSET_AT: usize = 2;
const IP6_FRAG_OFFSET: u16 = 0xFFF8;

// TCP header: ports, sequence, acknowledgment, data offset, flags, window.
const TCP_NEEDED: usize = 16; // up to and including the window
const TCP_MIN_HDR: usize = 20;
const TCP_DPORT_AT: usize = 2;
const TCP_SEQ_AT: usize = 4;
const TCP_ACK_AT: usize = 8;
const TCP_OFFSET_AT: usize = 12;
const TCP_FLAGS_AT: usize = 13;
const TCP_WIN_AT: usize = 14;
const TCP_SUM_AT: usize = 16;

// TCP options.
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;
const OPT_WSCALE: u8 = 3;

fn be16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes(b.try_into().ok()?))
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(b.try_into().ok()?))
}

fn byte(data: &[u8], at: usize) -> Option<u8> {
    data.get(at).copied()
}

/// What a frame held.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    Segment(Segment),
    /// No TCP segment: another protocol, or nothing that could hold one.
    Other,
    /// A frame that may hold a TCP segment the decoder could not reach, and why.
    Skipped(Skip),
}

/// The UDP ports whose datagrams are read as tunnels.
#[derive(Clone, Copy, Debug)]
pub struct Ports<'a> {
    pub vxlan: &'a [u16],
    pub geneve: &'a [u16],
}

/// IANA's VXLAN and Geneve ports, and Linux's default VXLAN port.
pub const DEFAULT_PORTS: Ports<'static> = Ports {
    vxlan: &[VXLAN_PORT, VXLAN_LINUX_PORT],
    geneve: &[GENEVE_PORT],
};

/// Headers within headers the decoder follows (tags, labels and tunnels), at most.
const MAX_LAYERS: usize = 24;

/// Ethertypes of protocols that never carry an IP packet (ARP, RARP, LLDP, 802.1X,
/// slow protocols, PTP, PPPoE discovery, loopback test, IPX, AppleTalk, HomePlug AV):
/// not TCP, and not counted as skipped.
const NOT_IP: [u16; 11] = [
    0x0806, 0x8035, 0x88CC, 0x888E, 0x8809, 0x88F7, 0x8863, 0x9000, 0x8137, 0x809B, 0x88E1,
];
/// 802.3 frames carry a length, not an ethertype, below this (LLC: STP, CDP...).
const ETHERTYPE_MIN: u16 = 0x0600;

/// Where the walk down a frame's headers has got to.
#[derive(Clone, Copy, Debug)]
enum At {
    Ethernet(usize),
    Ether(u16, usize),
    Ipv4(usize),
    Ipv6(usize),
    /// The TCP header, its length with payload (from the IP header), the addresses, the
    /// IPv4 ID.
    Tcp(usize, i64, (IpAddr, IpAddr), Option<u16>),
}

type Walked = Result<At, Option<Skip>>;

/// IP protocols.
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_GRE: u8 = 47;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_AH: u8 = 51;
/// IPv6 headers that may precede TCP but that the decoder cannot walk (mobility,
/// HIP, shim6).
const IPV6_UNWALKABLE: [u8; 3] = [135, 139, 140];
/// Protocols whose later fragments hold (tunnelled) TCP bytes.
const CARRIES_TCP: [u8; 4] = [TCP, IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_GRE];
const UDP_HDR: usize = 8;

/// One frame's walk: the bytes, the tags and tunnels collected on the way.
struct Walk<'a> {
    data: &'a [u8],
    orig_len: i64,
    ports: Ports<'a>,
    vlan: Vec<u16>,
    encap: Vec<Layer>,
    /// A UDP port that looked like VXLAN without being read as it: a segment found
    /// through it is reported as skipped (`Skip::VxlanPort`), not decoded.
    unread_port: Option<u16>,
}

/// The TCP segment in one captured frame, or None if there is none.
pub fn decode_segment(
    linktype: u32,
    data: &[u8],
    orig_len: u32,
    ts: f64,
    index: u64,
    comments: Vec<String>,
) -> Option<Segment> {
    let frame = Frame {
        linktype,
        data,
        orig_len,
        ts,
        index,
    };
    match decode_frame(&frame, comments, DEFAULT_PORTS) {
        Decoded::Segment(seg) => Some(seg),
        _ => None,
    }
}

/// One captured frame, as the reader hands it over.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub linktype: u32,
    pub data: &'a [u8],
    pub orig_len: u32,
    pub ts: f64,
    pub index: u64,
}

/// What one captured frame holds: its TCP segment (with the VLAN tags and tunnels it
/// travelled in), no segment, or a segment the decoder could not reach and why.
#[inline]
pub fn decode_frame(frame: &Frame, comments: Vec<String>, ports: Ports) -> Decoded {
    if frame.linktype == ETHERNET && frame.data.len() < ETH_HDR {
        // No ethertype to read (what the walk finds too, in more steps): inlined, so a
        // capture of empty or cut records costs no call per record.
        return Decoded::Other;
    }
    walk_frame(frame, comments, ports)
}

/// `decode_frame` past its first check.
fn walk_frame(frame: &Frame, comments: Vec<String>, ports: Ports) -> Decoded {
    let mut walk = Walk {
        data: frame.data,
        orig_len: i64::from(frame.orig_len),
        ports,
        vlan: Vec::new(),
        encap: Vec::new(),
        unread_port: None,
    };
    let Some(mut at) = link_layer(frame.linktype, frame.data) else {
        return Decoded::Skipped(Skip::LinkType(frame.linktype));
    };
    let mut taken = 0;
    if frame.linktype == ETHERNET && be16(frame.data, ETH_TYPE_AT) == Some(ETH_IPV4) {
        // Nearly every frame: the two steps (Ethernet, then its ethertype) the loop
        // would take first, taken at once, and counted as taken.
        at = At::Ipv4(ETH_HDR);
        taken = 2;
    }
    for _ in taken..MAX_LAYERS {
        at = match at {
            At::Tcp(_, _, _, _) if walk.unread_port.is_some() => {
                let port = walk.unread_port.unwrap_or_default();
                return Decoded::Skipped(Skip::VxlanPort(port));
            }
            At::Tcp(p, len, addrs, ip_id) => {
                let meta = Meta {
                    ts: frame.ts,
                    vlan: walk.vlan,
                    encap: walk.encap,
                    index: frame.index,
                    comments,
                    ip_id,
                };
                return tcp_segment(frame.data, p, len, addrs, meta);
            }
            other => match walk.step(other) {
                Ok(next) => next,
                Err(_) if walk.unread_port.is_some() => return Decoded::Other,
                Err(None) => return Decoded::Other,
                Err(Some(skip)) => return Decoded::Skipped(skip),
            },
        };
    }
    Decoded::Skipped(Skip::TooDeep)
}

/// Where a frame's network layer starts, by link type; None for a link type the
/// decoder does not know.
fn link_layer(linktype: u32, data: &[u8]) -> Option<At> {
    Some(match linktype {
        ETHERNET => At::Ethernet(0),
        SLL => At::Ether(be16(data, SLL_PROTO_AT).unwrap_or(0), SLL_HDR),
        SLL2 => At::Ether(be16(data, SLL2_PROTO_AT).unwrap_or(0), SLL2_HDR),
        RAW | RAW_BSD | RAW_OPENBSD | IPV4 | IPV6 => At::Ether(by_version(data, 0), 0),
        NULL | LOOP => At::Ether(loopback_family(data), LOOPBACK_HDR),
        _ => return None,
    })
}

impl Walk<'_> {
    /// One header down.
    #[inline]
    fn step(&mut self, at: At) -> Walked {
        match at {
            At::Ethernet(off) => {
                let etype = be16(self.data, off + ETH_TYPE_AT).ok_or(None)?;
                if etype < ETHERTYPE_MIN {
                    return Err(None); // 802.3 with LLC
                }
                Ok(At::Ether(etype, off + ETH_HDR))
            }
            At::Ether(etype, off) => self.ether(etype, off),
            At::Ipv4(off) => self.ipv4(off),
            At::Ipv6(off) => self.ipv6(off),
            At::Tcp(..) => Ok(at),
        }
    }

    #[inline]
    fn ether(&mut self, etype: u16, off: usize) -> Walked {
        match etype {
            ETH_IPV4 => Ok(At::Ipv4(off)),
            ETH_IPV6 => Ok(At::Ipv6(off)),
            t if VLAN_TAGS.contains(&t) => {
                let tci = be16(self.data, off).ok_or(None)?;
                let inner = be16(self.data, off + 2).ok_or(None)?;
                self.vlan.push(tci & VLAN_ID_MASK);
                Ok(At::Ether(inner, off + VLAN_TAG))
            }
            t if MPLS.contains(&t) => Ok(self.mpls(off)),
            ETH_PPPOE_SESSION => self.hop(tunnel::pppoe(self.data, off)?, None),
            0 => Err(None), // neither IPv4 nor IPv6 (raw IP, BSD loopback)
            t if NOT_IP.contains(&t) => Err(None),
            t => Err(Some(Skip::Ethertype(t))),
        }
    }

    /// An MPLS label stack, each label a layer; no protocol field under it: an IP
    /// header announces itself by its version.
    fn mpls(&mut self, mut off: usize) -> At {
        while let Some(word) = be32(self.data, off) {
            self.encap.push(Layer::new(Kind::Mpls, word >> 12));
            off += MPLS_LABEL;
            if byte(self.data, off - MPLS_LABEL + MPLS_BOTTOM_AT).unwrap_or(0) & 1 == 1 {
                break;
            }
        }
        At::Ether(by_version(self.data, off), off)
    }

    /// Past a tunnel header: its layer joins the path, with the outer addresses.
    fn hop(&mut self, hop: Hop, outer: Option<(IpAddr, IpAddr)>) -> Walked {
        if let Some(mut layer) = hop.layer {
            layer.outer = layer.outer.or(outer);
            self.encap.push(layer);
        }
        Ok(match hop.inner {
            Inner::Ethernet => At::Ethernet(hop.off),
            Inner::Ether(etype) => At::Ether(etype, hop.off),
            Inner::Ppp(tunnel::PPP_IPV6) => At::Ipv6(hop.off),
            Inner::Ppp(_) => At::Ipv4(hop.off),
        })
    }

    #[inline]
    fn ipv4(&mut self, off: usize) -> Walked {
        let data = self.data;
        if off + IP4_HDR > data.len() {
            return Err(None);
        }
        let vihl = byte(data, off).ok_or(None)?;
        let mut total = i64::from(be16(data, off + IP4_TOTAL_AT).ok_or(None)?);
        let frag = be16(data, off + IP4_FRAG_AT).ok_or(None)?;
        let proto = byte(data, off + IP4_PROTO_AT).ok_or(None)?;
        let ihl = usize::from(vihl & 0x0F) * 4;
        if vihl >> 4 != 4 || ihl < IP4_HDR {
            return Err(None);
        }
        if frag & IP4_FRAG_OFFSET != 0 {
            return Err(CARRIES_TCP.contains(&proto).then_some(Skip::Fragment));
        }
        if total == 0 {
            // Linux captures of TCP segmentation offload write 0: use the frame's length.
            total = self.orig_len - off as i64;
        }
        let src = Ipv4Addr::from(be32(data, off + IP4_SRC_AT).ok_or(None)?);
        let dst = Ipv4Addr::from(be32(data, off + IP4_DST_AT).ok_or(None)?);
        let ip_id = be16(data, off + IP4_ID_AT);
        let len = total - ihl as i64;
        self.transport(proto, off + ihl, len, (src.into(), dst.into()), ip_id)
    }

    fn ipv6(&mut self, off: usize) -> Walked {
        let data = self.data;
        if off + IP6_HDR > data.len() || byte(data, off).ok_or(None)? >> 4 != 6 {
            return Err(None);
        }
        let mut payload = i64::from(be16(data, off + IP6_PAYLOAD_AT).ok_or(None)?);
        if payload == 0 {
            payload = self.orig_len - off as i64 - IP6_HDR as i64; // jumbogram or offload
        }
        let mut nxt = byte(data, off + IP6_NEXT_AT).ok_or(None)?;
        let mut p = off + IP6_HDR;
        loop {
            let size = if IPV6_SKIPPABLE.contains(&nxt) {
                (usize::from(byte(data, p + 1).ok_or(None)?) + 1) * IP6_EXT_UNIT
            } else if nxt == IPPROTO_AH {
                (usize::from(byte(data, p + 1).ok_or(None)?) + 2) * 4
            } else if nxt == IPV6_FRAGMENT {
                let later = be16(data, p + IP6_FRAG_OFFSET_AT).ok_or(None)? & IP6_FRAG_OFFSET;
                if later != 0 {
                    let inner = byte(data, p).ok_or(None)?;
                    return Err(CARRIES_TCP.contains(&inner).then_some(Skip::Fragment));
                }
                IP6_EXT_MIN
            } else if IPV6_UNWALKABLE.contains(&nxt) {
                return Err(Some(Skip::Ipv6Header(nxt)));
            } else {
                break;
            };
            if p + IP6_EXT_MIN > data.len() {
                return Err(None);
            }
            nxt = byte(data, p).ok_or(None)?;
            p += size;
        }
        let addr = |at: usize| -> Option<IpAddr> {
            let bytes: [u8; 16] = data.get(at..at + 16)?.try_into().ok()?;
            Some(Ipv6Addr::from(bytes).into())
        };
        let addrs = (
            addr(off + IP6_SRC_AT).ok_or(None)?,
            addr(off + IP6_DST_AT).ok_or(None)?,
        );
        let len = payload - (p - off - IP6_HDR) as i64;
        self.transport(nxt, p, len, addrs, None)
    }

    /// What an IP header's protocol field leads to: TCP, or a tunnel inside IP.
    #[inline]
    fn transport(
        &mut self,
        proto: u8,
        p: usize,
        len: i64,
        addrs: (IpAddr, IpAddr),
        ip_id: Option<u16>,
    ) -> Walked {
        let outer = Some(addrs);
        match proto {
            TCP => Ok(At::Tcp(p, len, addrs, ip_id)),
            IPPROTO_IPIP | IPPROTO_IPV6 => {
                self.encap.push(Layer {
                    outer,
                    ..Layer::new(Kind::Ip, u32::from(proto))
                });
                Ok(if proto == IPPROTO_IPIP {
                    At::Ipv4(p)
                } else {
                    At::Ipv6(p)
                })
            }
            IPPROTO_GRE => self.hop(tunnel::gre(self.data, p)?, outer),
            IPPROTO_UDP => {
                let dport = be16(self.data, p + 2).ok_or(None)?;
                let hop = if self.ports.vxlan.contains(&dport) {
                    tunnel::vxlan(self.data, p + UDP_HDR)?
                } else if self.ports.geneve.contains(&dport) {
                    tunnel::geneve(self.data, p + UDP_HDR)?
                } else if tunnel::looks_like_vxlan(self.data, p + UDP_HDR) {
                    // Followed to see whether it holds TCP; counted, not decoded.
                    self.unread_port.get_or_insert(dport);
                    tunnel::vxlan(self.data, p + UDP_HDR)?
                } else {
                    return Err(None);
                };
                self.hop(hop, outer)
            }
            _ => Err(None),
        }
    }
}

/// Ethertype for a bare IP header, from its version nibble (0 when neither).
fn by_version(data: &[u8], off: usize) -> u16 {
    match byte(data, off).map(|b| b >> 4) {
        Some(4) => ETH_IPV4,
        Some(6) => ETH_IPV6,
        _ => 0,
    }
}

/// Ethertype from a BSD NULL/LOOP header: an address family in the capturing host's
/// byte order (NULL) or big-endian (LOOP), so read it whichever way gives a small number.
fn loopback_family(data: &[u8]) -> u16 {
    let Some(head) = data
        .get(..LOOPBACK_HDR)
        .and_then(|h| <[u8; 4]>::try_from(h).ok())
    else {
        return 0;
    };
    let mut family = u32::from_le_bytes(head);
    if family > 0xFFFF {
        family = u32::from_be_bytes(head);
    }
    if family == AF_INET {
        ETH_IPV4
    } else if AF_INET6.contains(&family) {
        ETH_IPV6
    } else {
        0
    }
}

/// The parts of a Segment that come from the capture or the outer headers.
struct Meta {
    ts: f64,
    vlan: Vec<u16>,
    encap: Vec<Layer>,
    index: u64,
    comments: Vec<String>,
    ip_id: Option<u16>,
}

/// The fixed TCP header's fields and the SYN options, read before the segment is built.
struct TcpHeader {
    sport: u16,
    dport: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    length: u32,
    win: u16,
    wscale: Option<u8>,
    mss: Option<u16>,
    checksum: Option<u16>,
}

/// The segment whose TCP header starts at `p`; `tcp_len` is header plus payload as the
/// IP header states it (possibly negative on a bad header). Built in the `Decoded` it
/// is returned in: wrapping a finished Segment would copy all of it once more.
fn tcp_segment(
    data: &[u8],
    p: usize,
    tcp_len: i64,
    (src, dst): (IpAddr, IpAddr),
    meta: Meta,
) -> Decoded {
    let Some(h) = tcp_header(data, p, tcp_len) else {
        return Decoded::Skipped(Skip::TcpHeader);
    };
    Decoded::Segment(Segment {
        t: meta.ts,
        src: Endpoint {
            ip: src,
            port: h.sport,
        },
        dst: Endpoint {
            ip: dst,
            port: h.dport,
        },
        flags: h.flags,
        seq: h.seq,
        ack: h.ack,
        length: h.length,
        win: h.win,
        wscale: h.wscale,
        mss: h.mss,
        vlan: meta.vlan,
        encap: meta.encap,
        ip_id: meta.ip_id,
        checksum: h.checksum,
        frame: meta.index,
        comments: meta.comments,
    })
}

/// The TCP header at `p`, or None when it is cut short or its lengths are impossible.
fn tcp_header(data: &[u8], p: usize, tcp_len: i64) -> Option<TcpHeader> {
    if p.checked_add(TCP_NEEDED)? > data.len() {
        return None;
    }
    let flags = byte(data, p + TCP_FLAGS_AT)?;
    let hlen = usize::from(byte(data, p + TCP_OFFSET_AT)? >> 4) * 4;
    if hlen < TCP_MIN_HDR || tcp_len < hlen as i64 {
        return None;
    }
    let (mut mss, mut wscale) = (None, None);
    if flags & SYN != 0 && hlen > TCP_MIN_HDR {
        let end = (p + hlen).min(data.len());
        (mss, wscale) = syn_options(data.get(p + TCP_MIN_HDR..end).unwrap_or(&[]));
    }
    Some(TcpHeader {
        sport: be16(data, p)?,
        dport: be16(data, p + TCP_DPORT_AT)?,
        flags,
        seq: be32(data, p + TCP_SEQ_AT)?,
        ack: be32(data, p + TCP_ACK_AT)?,
        length: u32::try_from(tcp_len - hlen as i64).ok()?,
        win: be16(data, p + TCP_WIN_AT)?,
        wscale,
        mss,
        checksum: be16(data, p + TCP_SUM_AT),
    })
}

/// (MSS, window scale) from the captured part of a SYN's options (the bytes after the
/// fixed 20-byte header, as far as the header length and the capture both reach).
pub fn syn_options(data: &[u8]) -> (Option<u16>, Option<u8>) {
    let (mut mss, mut wscale) = (None, None);
    let end = data.len();
    let mut p = 0;
    while let Some(&kind) = data.get(p) {
        if kind == OPT_END {
            break;
        }
        if kind == OPT_NOP {
            p += 1;
            continue;
        }
        let length = match data.get(p + 1) {
            Some(&len) if len >= 2 => usize::from(len),
            _ => break, // cut by the snaplen, or malformed
        };
        if p + length > end {
            break;
        }
        match (kind, length) {
            (OPT_MSS, 4) => mss = be16(data, p + 2),
            (OPT_WSCALE, 3) => wscale = byte(data, p + 2),
            _ => {}
        }
        p += length;
    }
    (mss, wscale)
}

#[cfg(test)]
mod tests {
    //! Hand-built frames for every link type and header twist, and the real captures
    //! (tests/test_decode.py).

    use super::*;
    use crate::reader::open_path;
    use crate::segment::{ACK, FIN, PSH};
    use proptest::prelude::*;

    const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/captures-real");

    // -- frame builders --------------------------------------------------------------

    struct Tcp<'a> {
        sport: u16,
        seq: u32,
        flags: u8,
        options: &'a [u8],
        payload: &'a [u8],
    }

    const TCP_DEFAULT: Tcp<'static> = Tcp {
        sport: 40000,
        seq: 1000,
        flags: ACK,
        options: b"",
        payload: b"",
    };

    fn tcp(t: &Tcp) -> Vec<u8> {
        tcp_full(t, 80, 2000, 512)
    }

    fn tcp_full(t: &Tcp, dport: u16, ack: u32, win: u16) -> Vec<u8> {
        let offset = ((20 + t.options.len()) / 4) as u8;
        let mut out = Vec::new();
        out.extend(t.sport.to_be_bytes());
        out.extend(dport.to_be_bytes());
        out.extend(t.seq.to_be_bytes());
        out.extend(ack.to_be_bytes());
        out.extend([offset << 4, t.flags]);
        out.extend(win.to_be_bytes());
        out.extend([0; 4]); // checksum, urgent pointer
        out.extend_from_slice(t.options);
        out.extend_from_slice(t.payload);
        out
    }

    struct Ip4<'a> {
        proto: u8,
        options: &'a [u8],
        frag: u16,
        total: Option<u16>,
    }

    const IP4_DEFAULT: Ip4<'static> = Ip4 {
        proto: 6,
        options: b"",
        frag: 0,
        total: None,
    };

    fn ipv4(segment: &[u8], ip: &Ip4) -> Vec<u8> {
        let ihl = ((20 + ip.options.len()) / 4) as u8;
        let total = ip
            .total
            .unwrap_or((20 + ip.options.len() + segment.len()) as u16);
        let mut out = vec![0x40 | ihl, 0];
        out.extend(total.to_be_bytes());
        out.extend(7u16.to_be_bytes());
        out.extend(ip.frag.to_be_bytes());
        out.extend([64, ip.proto, 0, 0]);
        out.extend([10, 0, 0, 1, 10, 0, 0, 2]);
        out.extend_from_slice(ip.options);
        out.extend_from_slice(segment);
        out
    }

    fn v6(text: &str) -> [u8; 16] {
        text.parse::<Ipv6Addr>().unwrap().octets()
    }

    fn ipv6(segment: &[u8], nh: u8, ext: &[u8]) -> Vec<u8> {
        let mut out = (6u32 << 28).to_be_bytes().to_vec();
        out.extend(((ext.len() + segment.len()) as u16).to_be_bytes());
        out.extend([nh, 64]);
        out.extend(v6("2001:db8::1"));
        out.extend(v6("2001:db8:0:0:1::2"));
        out.extend_from_slice(ext);
        out.extend_from_slice(segment);
        out
    }

    fn ether(l3: &[u8], etype: u16, tags: &[(u16, u16)]) -> Vec<u8> {
        let mut out = [[2u8; 6], [4u8; 6]].concat();
        for (tpid, tci) in tags {
            out.extend(tpid.to_be_bytes());
            out.extend(tci.to_be_bytes());
        }
        out.extend(etype.to_be_bytes());
        out.extend_from_slice(l3);
        out
    }

    fn sll(l3: &[u8], proto: u16) -> Vec<u8> {
        let mut out = [0u16, 772, 6]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect::<Vec<_>>();
        out.extend([0; 8]);
        out.extend(proto.to_be_bytes());
        out.extend_from_slice(l3);
        out
    }

    fn sll2(l3: &[u8], proto: u16) -> Vec<u8> {
        let mut out = proto.to_be_bytes().to_vec();
        out.extend([0, 0, 0, 0, 0, 1]);
        out.extend(772u16.to_be_bytes());
        out.extend([0, 6]);
        out.extend([0; 8]);
        out.extend_from_slice(l3);
        out
    }

    fn ext(nh: u8, size: usize) -> Vec<u8> {
        let mut out = vec![nh, (size / 8 - 1) as u8];
        out.resize(size, 0);
        out
    }

    fn v4_frame() -> Vec<u8> {
        ipv4(&tcp(&TCP_DEFAULT), &IP4_DEFAULT)
    }

    fn v6_frame() -> Vec<u8> {
        ipv6(&tcp(&TCP_DEFAULT), 6, &[])
    }

    fn decode(linktype: u32, frame: &[u8]) -> Option<Segment> {
        decode_segment(linktype, frame, frame.len() as u32, 1.5, 0, Vec::new())
    }

    fn decode_cut(frame: &[u8], cut: usize) -> Option<Segment> {
        decode_segment(
            ETHERNET,
            &frame[..cut],
            frame.len() as u32,
            1.5,
            0,
            Vec::new(),
        )
    }

    const SYN_OPTIONS: &[u8] = b"\x02\x04\x05\xb4\x01\x03\x03\x07\x04\x02\x08\x0a\0\0\0\0\0\0\0\0";

    fn syn(options: &[u8]) -> Vec<u8> {
        let t = Tcp {
            flags: SYN,
            options,
            ..TCP_DEFAULT
        };
        ether(&ipv4(&tcp(&t), &IP4_DEFAULT), ETH_IPV4, &[])
    }

    // -- hand-built frames -----------------------------------------------------------

    #[test]
    fn ethernet_ipv4_segment_fields() {
        let t = Tcp {
            seq: 0xFFFF_FFF0,
            flags: PSH | ACK,
            payload: b"hello",
            ..TCP_DEFAULT
        };
        let frame = ether(
            &ipv4(&tcp_full(&t, 80, 77, 65535), &IP4_DEFAULT),
            ETH_IPV4,
            &[],
        );
        let seg = decode_segment(
            ETHERNET,
            &frame,
            frame.len() as u32,
            1.5,
            9,
            vec!["note".into()],
        )
        .unwrap();
        assert_eq!(seg.t, 1.5);
        assert_eq!(seg.src.to_string(), "10.0.0.1:40000");
        assert_eq!(seg.dst.to_string(), "10.0.0.2:80");
        assert_eq!(
            (seg.seq, seg.ack, seg.flags, seg.length, seg.win),
            (0xFFFF_FFF0, 77, PSH | ACK, 5, 65535)
        );
        assert_eq!((seg.mss, seg.wscale, seg.frame), (None, None, 9));
        assert!(seg.vlan.is_empty());
        assert_eq!(seg.comments, ["note"]);
    }

    #[test]
    fn syn_options_mss_and_window_scale() {
        let seg = decode(ETHERNET, &syn(SYN_OPTIONS)).unwrap();
        assert_eq!((seg.mss, seg.wscale, seg.length), (Some(1460), Some(7), 0));
    }

    #[test]
    fn options_are_only_read_on_syn_segments() {
        let t = Tcp {
            options: SYN_OPTIONS,
            ..TCP_DEFAULT
        };
        let seg = decode(
            ETHERNET,
            &ether(&ipv4(&tcp(&t), &IP4_DEFAULT), ETH_IPV4, &[]),
        )
        .unwrap();
        assert_eq!((seg.mss, seg.wscale), (None, None));
    }

    #[test]
    fn vlan_stacks_outermost_first() {
        type Tags = &'static [(u16, u16)];
        let cases: [(Tags, &[u16]); 5] = [
            (&[(0x8100, 42)], &[42]),
            (&[(0x8100, 0xE00A)], &[10]), // priority bits are not the VLAN ID
            (&[(0x88A8, 10), (0x8100, 20)], &[10, 20]),
            (&[(0x9100, 5), (0x8100, 6)], &[5, 6]),
            (&[(0x8100, 0)], &[0]), // priority-tagged frame
        ];
        for (tags, vlan) in cases {
            let seg = decode(ETHERNET, &ether(&v4_frame(), ETH_IPV4, tags)).unwrap();
            assert_eq!(seg.vlan, vlan);
            assert_eq!(seg.src.ip.to_string(), "10.0.0.1");
        }
    }

    #[test]
    fn mpls_label_stack() {
        let labels = [100u32 << 12 | 64, 200 << 12 | 1 << 8 | 64]
            .iter()
            .flat_map(|l| l.to_be_bytes())
            .collect::<Vec<_>>();
        for etype in [0x8847, 0x8848] {
            let frame = ether(&[&labels[..], &v4_frame()].concat(), etype, &[]);
            assert_eq!(decode(ETHERNET, &frame).unwrap().dst.port, 80);
            let frame = ether(&[&labels[..], &v6_frame()].concat(), etype, &[]);
            assert_eq!(
                decode(ETHERNET, &frame).unwrap().src.ip.to_string(),
                "2001:db8::1"
            );
        }
    }

    #[test]
    fn link_types() {
        let (v4, v6) = (v4_frame(), v6_frame());
        let family = |le: bool, af: u32, l3: &[u8]| {
            let head = if le {
                af.to_le_bytes()
            } else {
                af.to_be_bytes()
            };
            [&head[..], l3].concat()
        };
        let cases: Vec<(u32, Vec<u8>, &str)> = vec![
            (SLL, sll(&v4, 0x0800), "10.0.0.1"),
            (SLL, sll(&v6, 0x86DD), "2001:db8::1"),
            (SLL2, sll2(&v4, 0x0800), "10.0.0.1"),
            (SLL2, sll2(&v6, 0x86DD), "2001:db8::1"),
            (RAW, v4.clone(), "10.0.0.1"),
            (RAW, v6.clone(), "2001:db8::1"),
            (RAW_BSD, v4.clone(), "10.0.0.1"),
            (RAW_OPENBSD, v6.clone(), "2001:db8::1"),
            (IPV4, v4.clone(), "10.0.0.1"),
            (IPV6, v6.clone(), "2001:db8::1"),
            (NULL, family(true, 2, &v4), "10.0.0.1"), // little-endian host
            (NULL, family(false, 2, &v4), "10.0.0.1"), // big-endian host
            (NULL, family(true, 24, &v6), "2001:db8::1"), // NetBSD/OpenBSD AF_INET6
            (NULL, family(true, 28, &v6), "2001:db8::1"), // FreeBSD
            (NULL, family(true, 30, &v6), "2001:db8::1"), // macOS
            (NULL, family(false, 30, &v6), "2001:db8::1"),
            (LOOP, family(false, 2, &v4), "10.0.0.1"), // OpenBSD LOOP: network order
            (LOOP, family(false, 24, &v6), "2001:db8::1"),
        ];
        for (linktype, frame, src) in cases {
            let seg = decode(linktype, &frame).unwrap();
            assert_eq!(
                (
                    seg.src.ip.to_string().as_str(),
                    seg.src.port,
                    seg.dst.port,
                    seg.seq
                ),
                (src, 40000, 80, 1000),
                "linktype {linktype}"
            );
        }
    }

    #[test]
    fn not_a_tcp_segment() {
        let udp = Ip4 {
            proto: 17,
            ..IP4_DEFAULT
        };
        let full = ether(&v4_frame(), ETH_IPV4, &[]);
        let mut neither = v4_frame();
        neither[0] = 0x50;
        let cases: Vec<(u32, Vec<u8>)> = vec![
            (ETHERNET, ether(&[0; 28], 0x0806, &[])), // ARP
            (ETHERNET, ether(&ipv4(&[0; 16], &udp), ETH_IPV4, &[])), // UDP
            (
                ETHERNET,
                ether(&ipv6(&tcp(&TCP_DEFAULT), 17, &[]), ETH_IPV6, &[]),
            ),
            (ETHERNET, ether(&v6_frame(), ETH_IPV4, &[])), // IPv4 ethertype, IPv6 header
            (RAW, neither),                                // neither IPv4 nor IPv6
            (NULL, [&7u32.to_le_bytes()[..], &v4_frame()].concat()), // unknown family
            (147, v4_frame()),                             // a user link type
            (ETHERNET, full[..20].to_vec()),               // cut inside the IP header
            (ETHERNET, full[..14 + 20 + 15].to_vec()),     // TCP header cut before the window
            (ETHERNET, ether(&v4_frame(), 0x8100, &[])[..16].to_vec()), // tag cut short
            (SLL, sll(&v4_frame(), 0x0800)[..15].to_vec()),
            (SLL2, sll2(&v4_frame(), 0x0800)[..19].to_vec()),
            (NULL, vec![2, 0, 0]),
            (ETHERNET, Vec::new()),
        ];
        for (linktype, frame) in cases {
            assert_eq!(decode(linktype, &frame), None, "{linktype} {frame:02x?}");
        }
    }

    #[test]
    fn ipv4_header_options() {
        let t = Tcp {
            payload: b"abc",
            ..TCP_DEFAULT
        };
        let ip = Ip4 {
            options: b"\x01\x01\x01\x00",
            ..IP4_DEFAULT
        };
        let seg = decode(ETHERNET, &ether(&ipv4(&tcp(&t), &ip), ETH_IPV4, &[])).unwrap();
        assert_eq!((seg.src.port, seg.seq, seg.length), (40000, 1000, 3));
    }

    #[test]
    fn ipv4_fragments() {
        let t = Tcp {
            payload: b"xxxxxxxx",
            ..TCP_DEFAULT
        };
        let frag = |frag| {
            ether(
                &ipv4(
                    &tcp(&t),
                    &Ip4 {
                        frag,
                        ..IP4_DEFAULT
                    },
                ),
                ETH_IPV4,
                &[],
            )
        };
        assert_eq!(decode(ETHERNET, &frag(0x2000)).unwrap().length, 8); // more follow, offset 0
        assert_eq!(decode(ETHERNET, &frag(0x2003)), None); // offset 24 bytes
    }

    #[test]
    fn ipv6_extension_headers() {
        // hop-by-hop -> destination options -> routing -> fragment (offset 0) -> TCP
        let mut chain = [ext(60, 8), ext(43, 8), ext(44, 16)].concat();
        chain.extend([6, 0, 0, 1, 0, 0, 0, 99]);
        let t = Tcp {
            payload: b"data!",
            ..TCP_DEFAULT
        };
        let seg = decode(ETHERNET, &ether(&ipv6(&tcp(&t), 0, &chain), ETH_IPV6, &[])).unwrap();
        assert_eq!(seg.dst.to_string(), "[2001:db8::1:0:0:2]:80");
        assert_eq!(seg.length, 5);
    }

    #[test]
    fn ipv6_later_fragment_and_unknown_header() {
        let later = [6, 0, 0, 8, 0, 0, 0, 99]; // fragment offset 1 (8 bytes)
        assert_eq!(decode(RAW, &ipv6(&tcp(&TCP_DEFAULT), 44, &later)), None);
        assert_eq!(decode(RAW, &ipv6(b"", 59, &[])), None); // no next header
        let cut = ipv6(&tcp(&TCP_DEFAULT), 0, &ext(6, 8));
        assert_eq!(decode(RAW, &cut[..44]), None); // chain cut short
    }

    #[test]
    fn payload_length_comes_from_ip_not_from_capture() {
        let t = Tcp {
            payload: &[b'p'; 1000],
            ..TCP_DEFAULT
        };
        let frame = ether(&ipv4(&tcp(&t), &IP4_DEFAULT), ETH_IPV4, &[]);
        assert_eq!(decode_cut(&frame, 68).unwrap().length, 1000);
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let t = Tcp {
            flags: FIN | ACK,
            ..TCP_DEFAULT
        };
        let mut frame = ether(&ipv4(&tcp(&t), &IP4_DEFAULT), ETH_IPV4, &[]);
        frame.extend([0; 6]);
        assert_eq!(frame.len(), 60);
        assert_eq!(decode(ETHERNET, &frame).unwrap().length, 0);
    }

    #[test]
    fn ipv4_total_length_zero_from_segmentation_offload() {
        let t = Tcp {
            payload: &[b'z'; 3000],
            ..TCP_DEFAULT
        };
        let ip = Ip4 {
            total: Some(0),
            ..IP4_DEFAULT
        };
        let frame = ether(&ipv4(&tcp(&t), &ip), ETH_IPV4, &[]);
        assert_eq!(decode_cut(&frame, 100).unwrap().length, 3000);
        // An offload frame whose wire length cannot hold the headers: no segment.
        assert_eq!(
            decode_segment(ETHERNET, &frame[..100], 40, 0.0, 0, vec![]),
            None
        );
    }

    #[test]
    fn ipv6_payload_length_zero_uses_the_frame_length() {
        let t = Tcp {
            payload: &[b'j'; 70],
            ..TCP_DEFAULT
        };
        let mut l3 = ipv6(&tcp(&t), 6, &[]);
        l3[4..6].copy_from_slice(&[0, 0]);
        let frame = ether(&l3, ETH_IPV6, &[]);
        assert_eq!(decode_cut(&frame, 80).unwrap().length, 70);
        assert_eq!(decode_segment(ETHERNET, &frame, 60, 0.0, 0, vec![]), None);
    }

    #[test]
    fn tcp_header_cut_after_the_window_still_decodes() {
        let frame = syn(SYN_OPTIONS);
        assert_eq!(decode_cut(&frame, 14 + 20 + 16).unwrap().mss, None);
        assert_eq!(decode_cut(&frame, 14 + 20 + 19).unwrap().mss, None);
        // Cut inside the window-scale option: the MSS before it is still read.
        let seg = decode_cut(&frame, 14 + 20 + 20 + 6).unwrap();
        assert_eq!((seg.mss, seg.wscale, seg.length), (Some(1460), None, 0));
    }

    #[test]
    fn malformed_tcp_header() {
        let mut short_offset = tcp(&TCP_DEFAULT);
        short_offset[12] = 4 << 4; // data offset < 5 words
        let t = Tcp {
            options: &[1; 8],
            ..TCP_DEFAULT
        };
        let longer_than_ip = tcp(&t)[..20].to_vec(); // header longer than IP says
        for segment in [short_offset, longer_than_ip] {
            let frame = ether(&ipv4(&segment, &IP4_DEFAULT), ETH_IPV4, &[]);
            assert_eq!(decode(ETHERNET, &frame), None);
        }
        // An IP total length below the IP header: negative TCP length, no segment.
        let ip = Ip4 {
            total: Some(10),
            ..IP4_DEFAULT
        };
        let frame = ether(&ipv4(&tcp(&TCP_DEFAULT), &ip), ETH_IPV4, &[]);
        assert_eq!(decode(ETHERNET, &frame), None);
    }

    #[test]
    fn malformed_options_do_not_loop_or_raise() {
        // Zero and one-byte option lengths.
        let seg = decode(ETHERNET, &syn(b"\x02\x00\x05\xb4\x03\x01\x07\x00")).unwrap();
        assert_eq!((seg.mss, seg.wscale), (None, None));
    }

    #[test]
    fn syn_options_over_bytes() {
        assert_eq!(syn_options(b""), (None, None));
        assert_eq!(syn_options(b"\x01\x01\x03\x03\x0e"), (None, Some(14)));
        assert_eq!(syn_options(b"\x02\x04\x05"), (None, None)); // cut inside the MSS
        assert_eq!(
            syn_options(b"\x02\x04\x05\xb4\x00\x03\x03\x07"),
            (Some(1460), None)
        );
        assert_eq!(
            syn_options(b"\x02\x05\x05\xb4\x00\x03\x03\x07"),
            (None, Some(7))
        );
        assert_eq!(syn_options(b"\x08\x0a\x00"), (None, None)); // runs past the end
    }

    // -- tunnels ----------------------------------------------------------------------

    /// `inner` (an IP packet) in an outer IPv4 header of protocol `proto`, from
    /// 192.0.2.1 to 192.0.2.2.
    fn outer4(proto: u8, inner: &[u8]) -> Vec<u8> {
        let mut out = ipv4(
            inner,
            &Ip4 {
                proto,
                ..IP4_DEFAULT
            },
        );
        out[12..20].copy_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
        out
    }

    fn udp(dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = 50000u16.to_be_bytes().to_vec();
        out.extend(dport.to_be_bytes());
        out.extend(((8 + payload.len()) as u16).to_be_bytes());
        out.extend([0, 0]);
        out.extend_from_slice(payload);
        out
    }

    fn frame_of(linktype: u32, frame: &[u8], ports: Ports) -> Decoded {
        let f = Frame {
            linktype,
            data: frame,
            orig_len: frame.len() as u32,
            ts: 0.0,
            index: 1,
        };
        decode_frame(&f, Vec::new(), ports)
    }

    fn path_of(frame: &[u8]) -> String {
        match frame_of(ETHERNET, frame, DEFAULT_PORTS) {
            Decoded::Segment(seg) => {
                assert_eq!((seg.src.port, seg.dst.port, seg.seq), (40000, 80, 1000));
                crate::encap::path_text(&seg.encap)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_tunnel_down_to_the_segment() {
        let inner_eth = ether(&v4_frame(), ETH_IPV4, &[]);
        let vxlan = [&[0x08, 0, 0, 0, 0, 0, 42, 0][..], &inner_eth].concat();
        let geneve = [&[0, 0, 0x65, 0x58, 0, 0, 9, 0][..], &inner_eth].concat();
        let gre_key = [&[0x20, 0, 0x08, 0x00, 0, 0, 0, 5][..], &v4_frame()].concat();
        let gre_v6 = [&[0, 0, 0x86, 0xDD][..], &v6_frame()].concat();
        let gretap = [&[0, 0, 0x65, 0x58][..], &inner_eth].concat();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                outer4(17, &udp(4789, &vxlan)),
                "vxlan 42 192.0.2.1-192.0.2.2",
            ),
            (
                outer4(17, &udp(8472, &vxlan)),
                "vxlan 42 192.0.2.1-192.0.2.2",
            ),
            (
                outer4(17, &udp(6081, &geneve)),
                "geneve 9 192.0.2.1-192.0.2.2",
            ),
            (outer4(47, &gre_key), "gre key 5 192.0.2.1-192.0.2.2"),
            (outer4(47, &gre_v6), "gre 192.0.2.1-192.0.2.2"),
            (outer4(47, &gretap), "gre 192.0.2.1-192.0.2.2"),
            (outer4(4, &v4_frame()), "ipip 192.0.2.1-192.0.2.2"),
            (outer4(41, &v6_frame()), "6in4 192.0.2.1-192.0.2.2"),
        ];
        for (l3, path) in cases {
            assert_eq!(path_of(&ether(&l3, ETH_IPV4, &[])), path);
        }
        // PPPoE session, MPLS labels, and VXLAN inside QinQ with a VLAN-tagged inner frame.
        let pppoe = [&[0x11, 0, 0x12, 0x34, 0, 0, 0, 0x21][..], &v4_frame()].concat();
        assert_eq!(path_of(&ether(&pppoe, 0x8864, &[])), "pppoe 0x1234");
        let labels = [100u32 << 12 | 64, 200 << 12 | 1 << 8 | 64]
            .iter()
            .flat_map(|l| l.to_be_bytes())
            .collect::<Vec<_>>();
        let mpls = ether(&[&labels[..], &v6_frame()].concat(), 0x8847, &[]);
        match frame_of(ETHERNET, &mpls, DEFAULT_PORTS) {
            Decoded::Segment(seg) => {
                assert_eq!(crate::encap::path_text(&seg.encap), "mpls 100 / mpls 200")
            }
            other => panic!("{other:?}"),
        }
        let tagged_inner = ether(&v4_frame(), ETH_IPV4, &[(0x8100, 7)]);
        let vx = [&[0x08, 0, 0, 0, 0, 0, 1, 0][..], &tagged_inner].concat();
        let outer = ether(&outer4(17, &udp(4789, &vx)), ETH_IPV4, &[(0x88A8, 10)]);
        let Decoded::Segment(seg) = frame_of(ETHERNET, &outer, DEFAULT_PORTS) else {
            panic!("no segment");
        };
        assert_eq!(seg.vlan, [10, 7]); // outer tags, then the inner frame's
        assert_eq!(seg.encap.len(), 1);
    }

    #[test]
    fn what_cannot_be_reached_is_counted_with_its_reason() {
        let vxlan = [
            &[0x08, 0, 0, 0, 0, 0, 42, 0][..],
            &ether(&v4_frame(), ETH_IPV4, &[]),
        ]
        .concat();
        let odd_port = ether(&outer4(17, &udp(4790, &vxlan)), ETH_IPV4, &[]);
        assert_eq!(
            frame_of(ETHERNET, &odd_port, DEFAULT_PORTS),
            Decoded::Skipped(Skip::VxlanPort(4790))
        );
        let ports = Ports {
            vxlan: &[4790],
            geneve: &[],
        };
        assert!(matches!(
            frame_of(ETHERNET, &odd_port, ports),
            Decoded::Segment(_)
        ));
        let later = ipv4(
            &tcp(&TCP_DEFAULT),
            &Ip4 {
                frag: 0x0003,
                ..IP4_DEFAULT
            },
        );
        let cases: Vec<(u32, Vec<u8>, Decoded)> = vec![
            (
                ETHERNET,
                ether(&later, ETH_IPV4, &[]),
                Decoded::Skipped(Skip::Fragment),
            ),
            (
                ETHERNET,
                ether(&v4_frame(), 0x88E5, &[]),
                Decoded::Skipped(Skip::Ethertype(0x88E5)),
            ),
            (147, v4_frame(), Decoded::Skipped(Skip::LinkType(147))),
            (
                ETHERNET,
                ether(&outer4(47, &[0, 1, 0x08, 0]), ETH_IPV4, &[]),
                Decoded::Skipped(Skip::Gre(0x0800)),
            ),
            (
                ETHERNET,
                ether(&v4_frame(), ETH_IPV4, &[])[..14 + 20 + 10].to_vec(),
                Decoded::Skipped(Skip::TcpHeader),
            ),
            (ETHERNET, ether(&[0; 28], 0x0806, &[]), Decoded::Other), // ARP
            (
                ETHERNET,
                ether(&outer4(17, &udp(53, b"dns")), ETH_IPV4, &[]),
                Decoded::Other,
            ),
        ];
        for (linktype, frame, want) in cases {
            assert_eq!(frame_of(linktype, &frame, DEFAULT_PORTS), want);
        }
        // Tunnels within tunnels, beyond what the decoder follows.
        let mut nested = v4_frame();
        for _ in 0..30 {
            nested = outer4(4, &nested);
        }
        assert_eq!(
            frame_of(RAW, &nested, DEFAULT_PORTS),
            Decoded::Skipped(Skip::TooDeep)
        );
    }

    #[test]
    fn ip_id_and_checksum_are_kept() {
        let seg = decode(ETHERNET, &ether(&v4_frame(), ETH_IPV4, &[])).unwrap();
        assert_eq!((seg.ip_id, seg.checksum), (Some(7), Some(0)));
        let seg = decode(ETHERNET, &ether(&v6_frame(), ETH_IPV6, &[])).unwrap();
        assert_eq!(seg.ip_id, None);
    }

    // -- real captures ---------------------------------------------------------------

    fn segments(name: &str) -> Vec<Segment> {
        let mut reader = open_path(&format!("{CAPTURES}/{name}")).unwrap();
        let mut out = Vec::new();
        while let Some(r) = reader.next_record() {
            out.extend(decode_segment(
                r.linktype, r.data, r.orig_len, r.ts, r.index, r.comments,
            ));
        }
        out
    }

    #[test]
    fn snaplen_cut_capture_counts_payload_from_ip_length() {
        let segs = segments("zeek_tcp_truncated-header.pcap");
        assert_eq!(segs.len(), 24);
        assert!(segs.iter().map(|s| s.length).max() > Some(68));
    }

    #[test]
    fn vlan_captures() {
        let vlans = |name| {
            let mut v: Vec<Vec<u16>> = segments(name).into_iter().map(|s| s.vlan).collect();
            v.sort();
            v.dedup();
            v
        };
        assert_eq!(vlans("zeek_http-vlan-0.pcap"), [vec![0]]);
        assert_eq!(
            vlans("zeek_vlan-collisions.pcap"),
            [vec![], vec![10, 20], vec![42]]
        );
        let mut by_direction: Vec<(bool, Vec<u16>)> = segments("zeek_ldap_modify-request.pcapng")
            .into_iter()
            .map(|s| (s.dst.port == 389, s.vlan))
            .collect();
        by_direction.sort();
        by_direction.dedup();
        assert_eq!(by_direction, [(false, vec![80]), (true, vec![81])]);
    }

    #[test]
    fn bsd_loopback_mixes_ipv4_and_ipv6() {
        let mut dsts: Vec<String> = segments("zeek_redis_attr.pcap")
            .into_iter()
            .filter(|s| s.flags == SYN)
            .map(|s| s.dst.ip.to_string())
            .collect();
        dsts.sort();
        dsts.dedup();
        assert_eq!(dsts, ["127.0.0.1", "::1"]);
    }

    #[test]
    fn ipv6_capture_addresses_and_numbers() {
        // Recorded from decode.py: the first segment of the IPv6 FTP session.
        let seg = &segments("zeek_ftp_ipv6-violation.pcap")[0];
        assert_eq!(
            seg.src.to_string(),
            "[2001:470:1f05:17a6:d69a:20ff:fefd:6b88]:24316"
        );
        assert_eq!(seg.dst.to_string(), "[2001:6a8:a40::21]:21");
        assert_eq!((seg.flags, seg.seq, seg.frame), (SYN, 2_845_794_500, 1));
        assert_eq!((seg.win, seg.wscale, seg.mss), (65535, Some(6), Some(1440)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_frames_never_panic(
            which in 0usize..5,
            edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..6),
            cut in any::<u16>(),
            orig_len in any::<u32>(),
        ) {
            let templates = [
                ether(&v4_frame(), ETH_IPV4, &[]),
                ether(&v6_frame(), ETH_IPV6, &[]),
                sll(&v4_frame(), 0x0800),
                sll2(&v6_frame(), 0x86DD),
                v4_frame(),
            ];
            let mut frame = templates[which].clone();
            for (at, value) in edits {
                let at = usize::from(at) % frame.len();
                frame[at] = value;
            }
            frame.truncate(usize::from(cut) % (frame.len() + 1));
            for linktype in [NULL, ETHERNET, RAW, LOOP, SLL, SLL2] {
                let _ = decode_segment(linktype, &frame, orig_len, 0.0, 0, Vec::new());
            }
        }

        #[test]
        fn syn_options_never_panic(data in proptest::collection::vec(any::<u8>(), 0..60)) {
            let _ = syn_options(&data);
        }
    }
}
