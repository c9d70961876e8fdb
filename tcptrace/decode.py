"""Turn one captured frame into a `Segment`, or None when it is not (the first fragment
of) a TCP segment.

Payload length comes from the IP header's length fields, never from the captured
length: snaplen-limited captures cut the bytes but not the sequence-number accounting.
A TCP header cut short by the snaplen still yields a segment as long as its first 16
bytes (ports, numbers, flags, window) are there; only the options are then missing.
"""

from __future__ import annotations

import socket
import struct
from typing import Iterable, Iterator

from .model import SYN, Segment
from .pcapfile import Record

ETHERNET, NULL, RAW, RAW_BSD, RAW_OPENBSD, LOOP, SLL, SLL2, IPV4, IPV6 = (
    1, 0, 101, 12, 14, 108, 113, 276, 228, 229)
ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
VLAN_TAGS = {0x8100, 0x88A8, 0x9100}            # 802.1Q, 802.1ad, pre-standard QinQ
MPLS = {0x8847, 0x8848}
# Address families a BSD loopback header can carry for IPv6 (BSDs and macOS disagree).
AF_INET, AF_INET6 = 2, {24, 28, 30}
IPV6_SKIPPABLE = {0, 43, 60}                    # hop-by-hop, routing, destination options
IPV6_FRAGMENT, TCP = 44, 6

_ip4 = struct.Struct("!BxHxxHxBxx4s4s").unpack_from   # version/IHL, length, frag, proto, addrs
# The most common frame, Ethernet + IPv4 without options + TCP, in one unpack from the
# frame's first byte, for readers that decode in place (summary.py): ethertype,
# version/IHL, total length, fragment field, protocol; then source and destination
# address and port as 12 raw bytes (a connection key as it is); sequence, acknowledgment,
# data offset, flags, window. Frames it does not fit go through decode_segment.
ETH_IP4_TCP = struct.Struct("!12xHBxHxxHxBxx12sIIBBH")
_tcp = struct.Struct("!HHIIBBH").unpack_from    # ports, seq, ack, offset, flags, window
_u16 = struct.Struct("!H").unpack_from
_ntoa = socket.inet_ntoa
_ntop = socket.inet_ntop


def decode_segment(linktype: int, data: bytes, orig_len: int, ts: float, index: int = 0,
                   comments: tuple[str, ...] = ()) -> Segment | None:
    """The TCP segment in one captured frame, or None if there is none."""
    vlan: tuple[int, ...] = ()
    if linktype == ETHERNET:
        if len(data) < 14:
            return None
        etype = data[12] << 8 | data[13]
        off = 14
        if etype in VLAN_TAGS or etype in MPLS:
            off, etype, vlan = _ethernet_tail(data, off, etype)
    elif linktype == SLL:
        if len(data) < 16:
            return None
        off, etype = 16, data[14] << 8 | data[15]
    elif linktype == SLL2:
        if len(data) < 20:
            return None
        off, etype = 20, data[0] << 8 | data[1]
    elif linktype in (RAW, RAW_BSD, RAW_OPENBSD, IPV4, IPV6):
        off, etype = 0, _by_version(data, 0)
    elif linktype == NULL or linktype == LOOP:
        off, etype = 4, _loopback_family(data)
    else:
        return None
    if etype == ETH_IPV4:
        return _ipv4(data, off, orig_len, ts, vlan, index, comments)
    if etype == ETH_IPV6:
        return _ipv6(data, off, orig_len, ts, vlan, index, comments)
    return None


def decode_records(records: Iterable[Record]) -> Iterator[Segment]:
    """The TCP segments among a capture's records, in order."""
    for rec in records:
        seg = decode_segment(rec.linktype, rec.data, rec.orig_len, rec.ts, rec.index,
                             rec.comments)
        if seg is not None:
            yield seg


def decode_frames(frames: Iterable[tuple[float, bytes]], linktype: int = 1) -> list[Segment]:
    """The TCP segments among whole captured frames (timestamp, bytes), numbered from 1
    as a file would number them; a live capture on lo delivers Ethernet frames."""
    return [seg for seg in (decode_segment(linktype, data, len(data), ts, index=i)
                            for i, (ts, data) in enumerate(frames, start=1)) if seg]


def _ethernet_tail(data: bytes, off: int, etype: int) -> tuple[int, int, tuple[int, ...]]:
    """Walk VLAN tags (collecting their IDs, outermost first) and an MPLS label stack;
    returns (offset of the network header, its ethertype, VLAN IDs)."""
    vlan = []
    while etype in VLAN_TAGS and off + 4 <= len(data):
        vlan.append((data[off] << 8 | data[off + 1]) & 0x0FFF)
        etype = data[off + 2] << 8 | data[off + 3]
        off += 4
    if etype in MPLS:
        while off + 4 <= len(data):
            bottom = data[off + 2] & 1
            off += 4
            if bottom:
                break
        # No protocol field under MPLS: an IP header announces itself by its version.
        etype = _by_version(data, off)
    return off, etype, tuple(vlan)


def _by_version(data: bytes, off: int) -> int:
    """Ethertype for a bare IP header, from its version nibble (0 when neither)."""
    if off >= len(data):
        return 0
    version = data[off] >> 4
    return ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else 0


def _loopback_family(data: bytes) -> int:
    """Ethertype from a BSD NULL/LOOP header: an address family in the capturing host's
    byte order (NULL) or big-endian (LOOP), so read it whichever way gives a small number."""
    if len(data) < 4:
        return 0
    family = int.from_bytes(data[:4], "little")
    if family > 0xFFFF:
        family = int.from_bytes(data[:4], "big")
    if family == AF_INET:
        return ETH_IPV4
    return ETH_IPV6 if family in AF_INET6 else 0


def _ipv4(data: bytes, off: int, orig_len: int, ts: float, vlan: tuple[int, ...],
          index: int, comments: tuple[str, ...]) -> Segment | None:
    if off + 20 > len(data):
        return None
    vihl, total, frag, proto, src, dst = _ip4(data, off)
    ihl = (vihl & 0x0F) * 4
    # Not IPv4 or TCP, a bad header, or a fragment other than the first.
    if vihl >> 4 != 4 or proto != TCP or ihl < 20 or frag & 0x1FFF:
        return None
    if total == 0:
        # Linux captures of TCP segmentation offload write 0: use the frame's length.
        total = orig_len - off
    return _tcp_segment(data, off + ihl, total - ihl, _ntoa(src), _ntoa(dst), ts, vlan, index,
                        comments)


def _ipv6(data: bytes, off: int, orig_len: int, ts: float, vlan: tuple[int, ...],
          index: int, comments: tuple[str, ...]) -> Segment | None:
    if off + 40 > len(data) or data[off] >> 4 != 6:
        return None
    payload = _u16(data, off + 4)[0] or orig_len - off - 40   # 0: jumbogram or offload
    nxt, p = data[off + 6], off + 40
    while nxt != TCP:
        if p + 8 > len(data):
            return None
        if nxt in IPV6_SKIPPABLE:
            size = (data[p + 1] + 1) * 8
        elif nxt == IPV6_FRAGMENT:
            if _u16(data, p + 2)[0] & 0xFFF8:   # fragment offset: not the first fragment
                return None
            size = 8
        else:
            return None
        nxt, p = data[p], p + size
    src = _ntop(socket.AF_INET6, data[off + 8:off + 24])
    dst = _ntop(socket.AF_INET6, data[off + 24:off + 40])
    return _tcp_segment(data, p, payload - (p - off - 40), src, dst, ts, vlan, index,
                        comments)


def _tcp_segment(data: bytes, p: int, tcp_len: int, src: str, dst: str, ts: float,
                 vlan: tuple[int, ...], index: int, comments: tuple[str, ...]) -> Segment | None:
    """The segment whose TCP header starts at p; tcp_len is header plus payload as the IP
    header states it."""
    if p + 16 > len(data):
        return None
    sport, dport, seq, ack, offset, flags, win = _tcp(data, p)
    hlen = (offset >> 4) * 4
    if hlen < 20 or tcp_len < hlen:
        return None
    mss = wscale = None
    if flags & SYN and hlen > 20:
        mss, wscale = syn_options(data, p + 20, min(p + hlen, len(data)))
    # Positional (model field order): keyword arguments cost twice as much per segment.
    return Segment(ts, src, sport, dst, dport, flags, seq, ack, tcp_len - hlen, win,
                   wscale, mss, vlan, index, comments)


def syn_options(data: bytes, p: int, end: int) -> tuple[int | None, int | None]:
    """(MSS, window scale) from the captured part of a SYN's options."""
    mss = wscale = None
    while p < end:
        kind = data[p]
        if kind == 0:
            break
        if kind == 1:
            p += 1
            continue
        if p + 1 >= end or data[p + 1] < 2:
            break                                       # cut by the snaplen, or malformed
        length = data[p + 1]
        if p + length > end:
            break
        if kind == 2 and length == 4:
            mss = _u16(data, p + 2)[0]
        elif kind == 3 and length == 3:
            wscale = data[p + 2]
        p += length
    return mss, wscale
