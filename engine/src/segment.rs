//! One TCP segment as seen on the wire: absolute numbers, no interpretation.
//!
//! The reader and decoder produce these; the grouper, the observer and Zeek's tracker
//! consume them. Addresses are kept as `IpAddr` (compared and hashed as bytes) and only
//! turned into text at the edge.

use std::fmt;
use std::net::IpAddr;

/// TCP header flag bits, as on the wire.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;
pub const ECE: u8 = 0x40;
pub const CWR: u8 = 0x80;

/// An (address, port) pair: one end of a connection.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    /// `ip:port`, or `[ipv6]:port`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            IpAddr::V4(ip) => write!(f, "{ip}:{}", self.port),
            IpAddr::V6(_) => write!(f, "[{}]:{}", ip_text(self.ip), self.port),
        }
    }
}

/// An address as text, as the C library's inet_ntop writes it (what tshark, tcpdump and
/// Python print): Rust's own formatting differs for IPv4-compatible IPv6 addresses
/// (`::1.2.3.4`, which it writes `::102:304`).
pub fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => {
            let w = v6.segments();
            if w[..6].iter().all(|&x| x == 0) && w[6] != 0 {
                let [.., a, b, c, d] = v6.octets();
                format!("::{a}.{b}.{c}.{d}")
            } else {
                v6.to_string()
            }
        }
        IpAddr::V4(v4) => v4.to_string(),
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// Capture timestamp, seconds since the epoch.
    pub t: f64,
    pub src: Endpoint,
    pub dst: Endpoint,
    /// TCP flag bits (FIN, SYN, ... above).
    pub flags: u8,
    /// Absolute sequence number.
    pub seq: u32,
    /// Absolute acknowledgment number (meaningful when ACK is set).
    pub ack: u32,
    /// Payload bytes, from the IP length fields (not the captured length).
    pub length: u32,
    /// Raw 16-bit window field (unscaled).
    pub win: u16,
    /// Window-scale option, SYN segments only.
    pub wscale: Option<u8>,
    /// MSS option, SYN segments only.
    pub mss: Option<u16>,
    /// 802.1Q tags, outermost first (empty: untagged; an empty Vec does not allocate).
    pub vlan: Vec<u16>,
    /// Tunnels and label stacks it travelled in, outermost first (empty: none).
    pub encap: Vec<crate::encap::Layer>,
    /// IPv4 identification field (None for IPv6): a capture's copy of a frame repeats
    /// it, a retransmission does not.
    pub ip_id: Option<u16>,
    /// TCP checksum, when captured: with the numbers, says two frames hold the same
    /// bytes.
    pub checksum: Option<u16>,
    /// 1-based record number in the capture.
    pub frame: u64,
    /// pcapng packet comments (opt_comment), as the file holds them (lossy UTF-8).
    pub comments: Vec<String>,
}

impl Segment {
    pub fn has(&self, bit: u8) -> bool {
        self.flags & bit != 0
    }

    /// Sequence numbers the segment occupies: payload plus one each for SYN and FIN.
    pub fn seq_space(&self) -> u64 {
        self.length as u64 + u64::from(self.has(SYN)) + u64::from(self.has(FIN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_inet_ntop_writes_them() {
        let text = |s: &str| ip_text(s.parse().unwrap());
        assert_eq!(text("::1.2.3.4"), "::1.2.3.4");
        assert_eq!(text("::1"), "::1");
        assert_eq!(text("::"), "::");
        assert_eq!(text("::ffff:10.0.0.1"), "::ffff:10.0.0.1");
        assert_eq!(text("2001:db8::1"), "2001:db8::1");
        assert_eq!(text("10.0.0.1"), "10.0.0.1");
        let e = Endpoint {
            ip: "::1.2.3.4".parse().unwrap(),
            port: 80,
        };
        assert_eq!(e.to_string(), "[::1.2.3.4]:80");
    }
}
