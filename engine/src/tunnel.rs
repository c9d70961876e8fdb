//! Tunnel headers: where the inner packet starts, and the layer to add to the path.
//!
//! Each parser reads one header at `off` and says what follows it: an Ethernet frame
//! (VXLAN, Geneve and GRE carrying Ethernet, ERSPAN), a packet of an ethertype (GRE,
//! Geneve), or an IP header that announces itself by its version (MPLS, PPP). The
//! decoder (`decode.rs`) walks them, outermost first, down to the TCP segment.
//!
//! `Err(None)`: not this tunnel (or nothing that can hold TCP: a PPP control packet);
//! `Err(Some(skip))`: a tunnel whose inner packet the decoder cannot reach, counted.

use crate::encap::{Kind, Layer, Skip};

/// Well-known UDP ports.
pub const VXLAN_PORT: u16 = 4789;
/// Linux's VXLAN port when `ip link add ... type vxlan` is given none (the IANA port
/// came later).
pub const VXLAN_LINUX_PORT: u16 = 8472;
pub const GENEVE_PORT: u16 = 6081;

/// Ethertypes a tunnel can name.
pub const ETH_BRIDGED: u16 = 0x6558; // transparent Ethernet bridging (gretap, Geneve)
pub const ETH_PPP: u16 = 0x880B;
pub const ETH_ERSPAN2: u16 = 0x88BE;
pub const ETH_ERSPAN3: u16 = 0x22EB;
pub const ETH_PPPOE_SESSION: u16 = 0x8864;

/// What follows a tunnel header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Inner {
    /// An Ethernet frame (its own ethertype, tags and all).
    Ethernet,
    /// A packet of this ethertype.
    Ether(u16),
    /// An IPv4 or IPv6 header, by its version nibble; PPP gives its protocol instead.
    Ppp(u16),
}

/// One tunnel header read: the layer (None: adds nothing to the path, as ERSPAN's
/// outer GRE already did), where the inner packet starts, and what it is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Hop {
    pub layer: Option<Layer>,
    pub off: usize,
    pub inner: Inner,
}

type Parsed = Result<Hop, Option<Skip>>;

fn be16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(
        data.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        data.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

const CUT: Option<Skip> = Some(Skip::TunnelCut);

// VXLAN (RFC 7348): flags (I bit: a VNI follows), 3 reserved, VNI (24 bits), 1 reserved.
const VXLAN_HDR: usize = 8;
const VXLAN_I: u8 = 0x08;

/// VXLAN: an Ethernet frame follows the 8-byte header.
pub fn vxlan(data: &[u8], off: usize) -> Parsed {
    let word = be32(data, off + 4).ok_or(CUT)?;
    if data.get(off).ok_or(CUT)? & VXLAN_I == 0 {
        return Err(None); // no VNI: not VXLAN after all
    }
    Ok(Hop {
        layer: Some(Layer::new(Kind::Vxlan, word >> 8)),
        off: off + VXLAN_HDR,
        inner: Inner::Ethernet,
    })
}

/// Whether a UDP payload looks like VXLAN carrying IP: the I flag alone, the reserved
/// bytes zero, and an inner Ethernet frame whose ethertype is IPv4, IPv6 or a VLAN tag.
/// For UDP to other ports: such a datagram is counted as skipped, with the port.
pub fn looks_like_vxlan(data: &[u8], off: usize) -> bool {
    let Some(h) = data.get(off..off + VXLAN_HDR + 14) else {
        return false;
    };
    let etype = u16::from_be_bytes([h[VXLAN_HDR + 12], h[VXLAN_HDR + 13]]);
    h[0] == VXLAN_I
        && h[1..4] == [0, 0, 0]
        && h[7] == 0
        && matches!(etype, 0x0800 | 0x86DD | 0x8100 | 0x88A8)
}

// Geneve (RFC 8926): version (2 bits) and option length in 4-byte words (6 bits),
// flags, protocol type, VNI (24 bits), reserved; then the options.
const GENEVE_HDR: usize = 8;

pub fn geneve(data: &[u8], off: usize) -> Parsed {
    let first = *data.get(off).ok_or(CUT)?;
    let proto = be16(data, off + 2).ok_or(CUT)?;
    let vni = be32(data, off + 4).ok_or(CUT)? >> 8;
    if first >> 6 != 0 {
        return Err(None); // a version this decoder does not know
    }
    let inner = if proto == ETH_BRIDGED {
        Inner::Ethernet
    } else {
        Inner::Ether(proto)
    };
    Ok(Hop {
        layer: Some(Layer::new(Kind::Geneve, vni)),
        off: off + GENEVE_HDR + usize::from(first & 0x3F) * 4,
        inner,
    })
}

// GRE (RFC 2784, 2890; version 1: PPTP's enhanced GRE, RFC 2637): flags and version,
// protocol, then optional checksum+reserved, key, sequence number (and for version 1
// an acknowledgment number), each 4 bytes.
const GRE_C: u16 = 0x8000;
const GRE_R: u16 = 0x4000;
const GRE_K: u16 = 0x2000;
const GRE_S: u16 = 0x1000;
const GRE_A: u16 = 0x0080; // version 1 only
const GRE_VERSION: u16 = 0x0007;

pub fn gre(data: &[u8], off: usize) -> Parsed {
    let bits = be16(data, off).ok_or(CUT)?;
    let proto = be16(data, off + 2).ok_or(CUT)?;
    let version = bits & GRE_VERSION;
    if bits & GRE_R != 0 || version > 1 || (version == 1 && proto != ETH_PPP) {
        return Err(Some(Skip::Gre(proto)));
    }
    let mut p = off + 4;
    if bits & GRE_C != 0 {
        p += 4;
    }
    let mut layer = Layer::new(Kind::Gre, 0);
    if bits & GRE_K != 0 {
        // Version 1 keeps a payload length and PPTP's call ID in the key field.
        let key = be32(data, p).ok_or(CUT)?;
        layer.id = if version == 1 { key & 0xFFFF } else { key };
        layer.keyed = true;
        p += 4;
    }
    if bits & GRE_S != 0 {
        p += 4;
    }
    if version == 1 && bits & GRE_A != 0 {
        p += 4;
    }
    if p > data.len() {
        return Err(CUT);
    }
    let inner = match proto {
        ETH_BRIDGED => Inner::Ethernet,
        ETH_PPP => return ppp(data, p, Some(layer)),
        ETH_ERSPAN2 | ETH_ERSPAN3 => return erspan(data, p, proto, layer),
        other => Inner::Ether(other),
    };
    Ok(Hop {
        layer: Some(layer),
        off: p,
        inner,
    })
}

// ERSPAN (the draft-foschiano-erspan): type II is 8 bytes, type III 12 (20 with its
// platform-specific subheader, the O bit); the session ID is the low 10 bits of the
// second 16-bit word. A mirror session: the path is the session, not the GRE.
const ERSPAN2_HDR: usize = 8;
const ERSPAN3_HDR: usize = 12;
const ERSPAN3_SUBHDR: usize = 8;

fn erspan(data: &[u8], off: usize, proto: u16, gre: Layer) -> Parsed {
    let session = be16(data, off + 2).ok_or(CUT)? & 0x03FF;
    let len = if proto == ETH_ERSPAN2 {
        ERSPAN2_HDR
    } else {
        let o_bit = *data.get(off + ERSPAN3_HDR - 1).ok_or(CUT)? & 1;
        ERSPAN3_HDR + usize::from(o_bit) * ERSPAN3_SUBHDR
    };
    Ok(Hop {
        layer: Some(Layer {
            kind: Kind::Erspan,
            id: u32::from(session),
            keyed: false,
            outer: gre.outer,
        }),
        off: off + len,
        inner: Inner::Ethernet,
    })
}

// PPPoE session stage (RFC 2516): version/type, code, session ID, length; then PPP.
const PPPOE_HDR: usize = 6;

pub fn pppoe(data: &[u8], off: usize) -> Parsed {
    let session = be16(data, off + 2).ok_or(CUT)?;
    ppp(
        data,
        off + PPPOE_HDR,
        Some(Layer::new(Kind::Pppoe, u32::from(session))),
    )
}

/// PPP protocol numbers.
pub const PPP_IPV4: u16 = 0x0021;
pub const PPP_IPV6: u16 = 0x0057;
/// HDLC-like framing's address and control bytes (RFC 1662), often left in by PPTP.
const PPP_ADDRESS_CONTROL: u16 = 0xFF03;

/// A PPP frame: optional address/control, a protocol of 1 byte (compressed, odd) or 2.
/// IP follows for IPv4 and IPv6; network control and link control packets carry no
/// TCP; any other network protocol (VJ-compressed TCP, compressed datagrams) is skipped.
fn ppp(data: &[u8], mut off: usize, layer: Option<Layer>) -> Parsed {
    if be16(data, off) == Some(PPP_ADDRESS_CONTROL) {
        off += 2;
    }
    let first = *data.get(off).ok_or(CUT)?;
    let (proto, len) = if first & 1 == 1 {
        (u16::from(first), 1)
    } else {
        (be16(data, off).ok_or(CUT)?, 2)
    };
    match proto {
        PPP_IPV4 | PPP_IPV6 => Ok(Hop {
            layer,
            off: off + len,
            inner: Inner::Ppp(proto),
        }),
        // 0x8000-0xBFFF: network control (IPCP...); 0xC000 and up: link control.
        p if p >= 0x8000 => Err(None),
        p => Err(Some(Skip::Ppp(p))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vxlan_header() {
        let hop = vxlan(&[0x08, 0, 0, 0, 0, 0x10, 0x92, 0], 0).unwrap();
        assert_eq!(hop.layer.unwrap().id, 4242);
        assert_eq!((hop.off, hop.inner), (8, Inner::Ethernet));
        assert_eq!(vxlan(&[0, 0, 0, 0, 0, 0, 1, 0], 0), Err(None));
        assert_eq!(vxlan(&[0x08, 0, 0], 0), Err(CUT));
    }

    #[test]
    fn vxlan_lookalikes() {
        let mut h = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
        h.extend([0; 12]);
        h.extend([0x08, 0x00]);
        assert!(looks_like_vxlan(&h, 0));
        h[20] = 0x08;
        h[21] = 0x06; // ARP inside: no TCP to miss
        assert!(!looks_like_vxlan(&h, 0));
        assert!(!looks_like_vxlan(&[0x08, 0, 0, 0], 0));
    }

    #[test]
    fn geneve_header_with_options() {
        let mut h = vec![0x02, 0, 0x65, 0x58, 0, 0, 7, 0];
        h.extend([0; 8]); // two words of options
        let hop = geneve(&h, 0).unwrap();
        assert_eq!((hop.layer.unwrap().id, hop.off), (7, 16));
        assert_eq!(hop.inner, Inner::Ethernet);
        h[2..4].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(geneve(&h, 0).unwrap().inner, Inner::Ether(0x0800));
    }

    #[test]
    fn gre_with_and_without_key() {
        let plain = gre(&[0, 0, 0x08, 0], 0).unwrap();
        assert_eq!((plain.off, plain.inner), (4, Inner::Ether(0x0800)));
        assert!(!plain.layer.unwrap().keyed);
        // checksum + key + sequence number
        let mut h = vec![0xB0, 0, 0x86, 0xDD, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1];
        let keyed = gre(&h, 0).unwrap();
        assert_eq!((keyed.off, keyed.layer.unwrap().id), (16, 9));
        assert!(keyed.layer.unwrap().keyed);
        h.truncate(10);
        assert_eq!(gre(&h, 0), Err(CUT));
        assert_eq!(gre(&[0x40, 0, 0x08, 0], 0), Err(Some(Skip::Gre(0x0800))));
        assert_eq!(gre(&[0, 2, 0x08, 0], 0), Err(Some(Skip::Gre(0x0800))));
    }

    #[test]
    fn pptp_gre_carries_ppp() {
        // Version 1, key (payload length 0x0010, call ID 0x0005), sequence number,
        // then PPP with address/control and IPv4.
        let h = [
            0x30, 0x01, 0x88, 0x0B, 0, 0x10, 0, 5, 0, 0, 0, 1, 0xFF, 0x03, 0, 0x21,
        ];
        let hop = gre(&h, 0).unwrap();
        assert_eq!((hop.off, hop.inner), (16, Inner::Ppp(PPP_IPV4)));
        assert_eq!(hop.layer.unwrap().id, 5);
        // LCP: carries no TCP.
        let lcp = [
            0x30, 0x01, 0x88, 0x0B, 0, 0x10, 0, 5, 0, 0, 0, 1, 0xC0, 0x21,
        ];
        assert_eq!(gre(&lcp, 0), Err(None));
    }

    #[test]
    fn pppoe_session() {
        let hop = pppoe(&[0x11, 0, 0x12, 0x34, 0, 40, 0, 0x57], 0).unwrap();
        assert_eq!(hop.layer.unwrap().id, 0x1234);
        assert_eq!((hop.off, hop.inner), (8, Inner::Ppp(PPP_IPV6)));
        assert_eq!(
            pppoe(&[0x11, 0, 0, 1, 0, 40, 0, 0x2d], 0),
            Err(Some(Skip::Ppp(0x2d)))
        );
        // Compressed (1-byte) protocol field.
        let hop = pppoe(&[0x11, 0, 0, 1, 0, 40, 0x21], 0).unwrap();
        assert_eq!((hop.off, hop.inner), (7, Inner::Ppp(PPP_IPV4)));
    }

    #[test]
    fn erspan_type_ii_and_iii() {
        let mut h = vec![0x10, 0, 0x88, 0xBE, 0, 0, 0, 1]; // GRE with sequence number
        h.extend([0x10, 0x0A, 0x00, 0x2A, 0, 0, 0, 0]); // ERSPAN II, session 42
        let hop = gre(&h, 0).unwrap();
        assert_eq!((hop.off, hop.layer.unwrap().kind), (16, Kind::Erspan));
        assert_eq!(hop.layer.unwrap().id, 42);
        let mut h = vec![0x10, 0, 0x22, 0xEB, 0, 0, 0, 1];
        h.extend([0x20, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1]); // type III, O bit set
        assert_eq!(gre(&h, 0).unwrap().off, 8 + 20);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
                        off in 0usize..48) {
            let _ = (vxlan(&data, off), geneve(&data, off), gre(&data, off), pppoe(&data, off));
        }
    }
}
