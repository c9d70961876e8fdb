//! The encapsulation a segment travelled in: tunnels and label stacks between the
//! capture's link layer and the TCP segment's own IP header.
//!
//! A path is a list of layers, outermost first (`Vec<Layer>`, empty for a plain segment:
//! an empty Vec does not allocate). It is part of a connection's key, as the VLAN stack
//! is: the same conversation seen plain and inside VXLAN (a mirror of an overlay
//! network) is two connections, never one with every segment twice. The key word
//! ([`path_word`]) is the same for both directions of a tunnel: the outer addresses are
//! taken as an unordered pair.
//!
//! Segments the decoder skipped because a layer was not understood are counted by
//! reason ([`Skip`]), so that a report can say what it could not look into.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use rustc_hash::FxHasher;

use crate::segment::ip_text;

/// One layer of encapsulation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Kind {
    /// VXLAN (RFC 7348), id = VNI.
    Vxlan,
    /// Geneve (RFC 8926), id = VNI.
    Geneve,
    /// GRE (RFC 2784/2890), id = key (0 without one; `keyed` says which).
    Gre,
    /// IPv4 or IPv6 directly in IPv4/IPv6 (IP protocol 4 or 41: IP-in-IP, 6in4, 4in6).
    Ip,
    /// One MPLS label, id = the label.
    Mpls,
    /// A PPPoE session, id = the session ID (no outer IP addresses).
    Pppoe,
    /// An ERSPAN mirror session (inside GRE), id = the session ID.
    Erspan,
}

/// A layer: its kind, its identifier and, for IP tunnels, the outer addresses (the
/// tunnel's endpoints, as the sender of this segment's outer header wrote them).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Layer {
    pub kind: Kind,
    pub id: u32,
    /// GRE: a key was present.
    pub keyed: bool,
    pub outer: Option<(IpAddr, IpAddr)>,
}

impl Layer {
    pub fn new(kind: Kind, id: u32) -> Self {
        Layer {
            kind,
            id,
            keyed: false,
            outer: None,
        }
    }
}

impl fmt::Display for Layer {
    /// `vxlan 42 10.0.0.1-10.0.0.2`, `gre key 7 ...`, `gre ...`, `ipip ...`, `6in4 ...`,
    /// `mpls 100`, `pppoe 0x1234`: the outer addresses lower first, so both directions
    /// of one tunnel read the same.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Vxlan => write!(f, "vxlan {}", self.id)?,
            Kind::Geneve => write!(f, "geneve {}", self.id)?,
            Kind::Gre if self.keyed => write!(f, "gre key {}", self.id)?,
            Kind::Gre => f.write_str("gre")?,
            Kind::Ip => {
                let outer_v6 = matches!(self.outer, Some((IpAddr::V6(_), _)));
                f.write_str(match (self.id, outer_v6) {
                    (4, false) => "ipip",
                    (4, true) => "4in6",
                    (_, false) => "6in4",
                    (_, true) => "ip6ip6",
                })?
            }
            Kind::Mpls => write!(f, "mpls {}", self.id)?,
            Kind::Pppoe => write!(f, "pppoe 0x{:04x}", self.id)?,
            Kind::Erspan => write!(f, "erspan {}", self.id)?,
        }
        if let Some((a, b)) = self.outer {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            write!(f, " {}-{}", ip_text(lo), ip_text(hi))?;
        }
        Ok(())
    }
}

/// A path as one line: layers outermost first, ` / ` between them; "" when plain.
pub fn path_text(path: &[Layer]) -> String {
    path.iter()
        .map(Layer::to_string)
        .collect::<Vec<_>>()
        .join(" / ")
}

/// A path as a table cell: each layer without its outer addresses (`vxlan 42 / mpls
/// 16`); the ladder's header and the JSON give them.
pub fn short_text(path: &[Layer]) -> String {
    let short = |l: &Layer| Layer { outer: None, ..*l }.to_string();
    path.iter().map(short).collect::<Vec<_>>().join(" / ")
}

/// A path in one word for the connection key: 0 for none (the common case costs
/// nothing), else a hash of every layer with its outer addresses as an unordered pair.
pub fn path_word(path: &[Layer]) -> u64 {
    if path.is_empty() {
        return 0;
    }
    let mut h = FxHasher::default();
    for layer in path {
        (layer.kind, layer.id, layer.keyed).hash(&mut h);
        if let Some((a, b)) = layer.outer {
            (a.min(b), a.max(b)).hash(&mut h);
        }
    }
    h.finish() | 1 // never 0: a tunnelled path never shares the plain key
}

/// Why a frame that may hold a TCP segment was not decoded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Skip {
    /// A link type the decoder does not know.
    LinkType(u32),
    /// An ethertype that may carry IP but is not understood (MACsec, PBB, ...).
    Ethertype(u16),
    /// A GRE header with a version, routing or protocol the decoder does not follow.
    Gre(u16),
    /// A PPP protocol inside PPPoE other than IPv4/IPv6 data... that may carry it.
    Ppp(u16),
    /// An IPv4 or IPv6 fragment after the first: its TCP bytes are not reassembled.
    Fragment,
    /// An IPv6 extension header the decoder cannot walk past.
    Ipv6Header(u8),
    /// A TCP header cut short by the snaplen or with an impossible length.
    TcpHeader,
    /// A tunnel header cut short (VXLAN, Geneve, GRE, PPPoE, MPLS).
    TunnelCut,
    /// Encapsulations nested deeper than the decoder follows.
    TooDeep,
    /// UDP to a port not read as VXLAN, holding what looks like a VXLAN header and, in
    /// the frame inside, a TCP segment (`--vxlan-port` reads it).
    VxlanPort(u16),
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Skip::LinkType(n) => write!(f, "link type {n} not understood"),
            Skip::Ethertype(t) => write!(f, "ethertype 0x{t:04x} not understood"),
            Skip::Gre(p) => write!(f, "GRE carrying protocol 0x{p:04x} not followed"),
            Skip::Ppp(p) => write!(f, "PPP protocol 0x{p:04x} not understood"),
            Skip::Fragment => f.write_str("IP fragments after the first (not reassembled)"),
            Skip::Ipv6Header(n) => write!(f, "IPv6 next header {n} not understood"),
            Skip::TcpHeader => f.write_str("TCP header cut short or malformed"),
            Skip::TunnelCut => f.write_str("tunnel header cut short"),
            Skip::TooDeep => f.write_str("encapsulation nested too deep"),
            Skip::VxlanPort(p) => write!(
                f,
                "VXLAN-like UDP to port {p} (--vxlan-port {p} reads it as VXLAN)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn both_directions_of_a_tunnel_share_a_word_and_a_text() {
        let there = Layer {
            outer: Some((ip("10.0.0.1"), ip("10.0.0.2"))),
            ..Layer::new(Kind::Vxlan, 42)
        };
        let back = Layer {
            outer: Some((ip("10.0.0.2"), ip("10.0.0.1"))),
            ..there
        };
        assert_eq!(path_word(&[there]), path_word(&[back]));
        assert_eq!(path_text(&[there]), "vxlan 42 10.0.0.1-10.0.0.2");
        assert_eq!(path_text(&[back]), path_text(&[there]));
        assert_eq!(
            short_text(&[there, Layer::new(Kind::Mpls, 16)]),
            "vxlan 42 / mpls 16"
        );
    }

    #[test]
    fn different_paths_differ() {
        let v = |id| Layer::new(Kind::Vxlan, id);
        assert_eq!(path_word(&[]), 0);
        assert_ne!(path_word(&[v(1)]), 0);
        assert_ne!(path_word(&[v(1)]), path_word(&[v(2)]));
        assert_ne!(
            path_word(&[v(1)]),
            path_word(&[Layer::new(Kind::Geneve, 1)])
        );
        let mpls = |l| Layer::new(Kind::Mpls, l);
        assert_ne!(
            path_word(&[mpls(1), mpls(2)]),
            path_word(&[mpls(2), mpls(1)])
        );
        let keyed = Layer {
            keyed: true,
            ..Layer::new(Kind::Gre, 0)
        };
        assert_ne!(path_word(&[keyed]), path_word(&[Layer::new(Kind::Gre, 0)]));
        assert_eq!(path_text(&[keyed, mpls(16)]), "gre key 0 / mpls 16");
        assert_eq!(
            path_text(&[Layer::new(Kind::Pppoe, 0x1a2b)]),
            "pppoe 0x1a2b"
        );
    }
}
