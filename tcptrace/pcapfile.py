"""Streaming reader for pcap and pcapng capture files: pure `struct`, no scapy.

The file is read in 1 MiB chunks and each record is unpacked in place with a precompiled
`struct.Struct`, so memory stays flat however large the capture is.

Damaged input (a record header that cannot be right, a file cut short) does not raise:
the reader notes a warning and resynchronises on the next offset where a plausible record
is followed by another plausible record header (or by the exact end of the file), because
a capture with three stray bytes in the middle still holds the rest of the session.
Only a file that is not a capture at all raises `TcptraceError`.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO, Callable, Iterator, NamedTuple

from .errors import TcptraceError

CHUNK = 1 << 20
MAX_CAPLEN = 256 * 1024         # libpcap's MAXIMUM_SNAPLEN: no real record is longer
MAX_BLOCK = 16 << 20            # pcapng blocks beyond this are taken as damage
RESYNC_MAX_GAP = 86400          # s: a resync candidate must be within a day of the last record

PCAP_MAGICS = {                 # first 4 bytes read little-endian -> (byte order, ticks/s)
    0xA1B2C3D4: ("<", 10**6), 0xD4C3B2A1: (">", 10**6),
    0xA1B23C4D: ("<", 10**9), 0x4D3CB2A1: (">", 10**9),
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
SHB, IDB, PB, SPB, NRB, ISB, EPB = 0x0A0D0D0A, 1, 2, 3, 4, 5, 6
KNOWN_BLOCKS = {SHB, IDB, PB, SPB, NRB, ISB, EPB, 7, 9, 10, 0xBAD, 0x40000BAD}
MIN_BLOCK = {SHB: 28, IDB: 20, PB: 32, SPB: 16, EPB: 32}     # fixed fields + length twice
OPT_COMMENT, IF_TSRESOL, IF_TSOFFSET = 1, 9, 14

Check = Callable[[bytes, int], "int | None"]


class Record(NamedTuple):
    ts: float                   # seconds since the epoch
    linktype: int               # LINKTYPE_* of the interface the packet came from
    data: bytes                 # captured bytes (may be shorter than orig_len)
    orig_len: int               # length of the packet on the wire
    comments: tuple[str, ...]   # pcapng opt_comment values
    index: int                  # 1-based record number


# NamedTuple's generated __new__ is a Python function; tuple.__new__ halves the cost per record.
_record = tuple.__new__


class _Layout:
    """Precompiled structs for one byte order."""

    def __init__(self, e: str):
        self.endian = e
        self.u32 = struct.Struct(e + "I").unpack_from
        self.hdr = struct.Struct(e + "II").unpack_from
        self.pcap = struct.Struct(e + "IIII").unpack_from
        self.epb = struct.Struct(e + "IIIII").unpack_from
        self.pb = struct.Struct(e + "HHIIII").unpack_from
        self.idb = struct.Struct(e + "HHI").unpack_from
        self.opt = struct.Struct(e + "HH").unpack_from
        self.i64 = struct.Struct(e + "q").unpack_from


LAYOUTS = {"<": _Layout("<"), ">": _Layout(">")}


class _Window:
    """The part of the file held in memory: `buf` starts at file offset `base`."""

    def __init__(self, f: BinaryIO):
        self.f, self.buf, self.base, self.eof = f, b"", 0, False

    def ensure(self, pos: int, need: int) -> int:
        """Make `need` bytes from buf[pos] available (fewer only at end of file).
        May drop everything before `pos`: returns where that byte now is."""
        if len(self.buf) - pos >= need or self.eof:
            return pos
        keep = self.buf[pos:]
        self.base += pos
        while len(keep) < need and not self.eof:
            more = self.f.read(max(CHUNK, need - len(keep)))
            self.eof = not more
            keep += more
        self.buf = keep
        return 0

    def offset(self, pos: int) -> int:
        return self.base + pos


class CaptureReader:
    """Iterate over a capture's records; `warnings` says where damaged input was skipped.

    Creating the reader checks the file (raising `TcptraceError` when it is not a
    capture); iterating streams it. `bytes_read` against `size` drives a progress bar.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        self.warnings: list[str] = []
        self.bytes_read = 0
        self.size, head = _open_check(self.path)
        self.format = "pcapng" if head[:4] == PCAPNG_MAGIC else "pcap"

    def __iter__(self) -> Iterator[Record]:
        self.warnings, self.bytes_read = [], 0
        with open(self.path, "rb") as f:
            win = _Window(f)
            yield from (self._pcapng(win) if self.format == "pcapng" else self._pcap(win))
        self.bytes_read = self.size

    def frames(self) -> Iterator[tuple[float, int, bytes, int, int, int]]:
        """The records as (ts, linktype, buffer, offset, caplen, orig_len): the packet is
        buffer[offset:offset + caplen]. Classic pcap records are not copied out of the
        read buffer, for decoders that unpack in place (summary.py); the damage handling
        and warnings are the same as iterating."""
        if self.format == "pcapng":
            for rec in self:
                yield rec.ts, rec.linktype, rec.data, 0, len(rec.data), rec.orig_len
            return
        self.warnings, self.bytes_read = [], 0
        with open(self.path, "rb") as f:
            yield from self._pcap(_Window(f), raw=True)
        self.bytes_read = self.size

    # -- classic pcap ----------------------------------------------------------------

    def _pcap(self, win: _Window, raw: bool = False) -> Iterator:
        win.ensure(0, 24)
        buf = win.buf
        endian, units = PCAP_MAGICS[int.from_bytes(buf[:4], "little")]
        layout = LAYOUTS[endian]
        snaplen, linktype = struct.unpack_from(endian + "II", buf, 16)
        linktype &= 0xFFFF          # the upper bits carry FCS-length flags
        # Records longer than the header's snaplen are read, as libpcap and Wireshark
        # do (writers get the snaplen wrong); only resync probes hold junk to it.
        limit = snaplen if 0 < snaplen < MAX_CAPLEN else MAX_CAPLEN
        unpack = layout.pcap
        last_sec = None

        def candidate(buf: bytes, q: int) -> int | None:
            """Record size at q if its header is plausible. Stricter than the main loop
            (a non-empty packet, a time near the last good record): it probes junk."""
            if q + 16 > len(buf):
                return None
            sec, frac, incl, orig = unpack(buf, q)
            if (frac < units and incl <= limit and 0 < orig and incl <= orig
                    and (last_sec is None or abs(sec - last_sec) <= RESYNC_MAX_GAP)):
                return 16 + incl
            return None

        pos, n, index = 24, len(buf), 0
        while True:
            if pos + 16 > n:
                pos = self._refill(win, pos, 16, index)
                if pos is None:
                    return
                buf, n = win.buf, len(win.buf)
            sec, frac, incl, orig = unpack(buf, pos)
            if frac >= units or incl > MAX_CAPLEN or incl > orig:
                pos = self._resync(win, pos, index, candidate, None, 16)
                if pos is None:
                    return
                buf, n = win.buf, len(win.buf)
                continue
            end = pos + 16 + incl
            if end > n:
                pos = win.ensure(pos, 16 + incl)
                buf, n, end = win.buf, len(win.buf), pos + 16 + incl
                if end > n:
                    self._cut(win, pos, index, 16 + incl)
                    return
            index += 1
            last_sec = sec
            self.bytes_read = win.base + end
            if raw:
                yield sec + frac / units, linktype, buf, pos + 16, incl, orig
            else:
                yield _record(Record, (sec + frac / units, linktype, buf[pos + 16:end], orig,
                                       (), index))
            pos = end

    # -- pcapng ----------------------------------------------------------------------

    def _pcapng(self, win: _Window) -> Iterator[Record]:
        layout = LAYOUTS["<"]
        interfaces: list[tuple[int, int, float, int]] = []   # linktype, ticks/s, offset, snaplen
        last_ts = 0.0

        def endian_at(buf: bytes, q: int) -> str | None:
            return _shb_endian(buf, q) if layout.u32(buf, q)[0] == SHB else layout.endian

        def candidate(buf: bytes, q: int) -> int | None:
            """Block size at q if a known block type with a sane length starts there."""
            if q + 12 > len(buf):
                return None
            btype, e = layout.u32(buf, q)[0], endian_at(buf, q)
            if btype not in KNOWN_BLOCKS or e is None:
                return None
            blen = LAYOUTS[e].u32(buf, q + 4)[0]
            return blen if _sane_length(btype, blen) else None

        def complete(buf: bytes, q: int, size: int) -> bool:
            """The trailing copy of the block length matches the leading one."""
            return LAYOUTS[endian_at(buf, q)].u32(buf, q + size - 4)[0] == size

        pos, n, index, buf = 0, 0, 0, b""
        while True:
            if pos + 12 > n:
                pos = self._refill(win, pos, 12, index)
                if pos is None:
                    return
                buf, n = win.buf, len(win.buf)
            btype, blen = layout.hdr(buf, pos)
            if btype == SHB:                    # a new section may switch byte order
                e = _shb_endian(buf, pos)
                if e is None:
                    blen = 0                    # no byte-order magic: damaged
                else:
                    layout = LAYOUTS[e]
                    blen = layout.u32(buf, pos + 4)[0]
            sane = _sane_length(btype, blen)
            if sane and pos + blen > n:
                pos = win.ensure(pos, blen)
                buf, n = win.buf, len(win.buf)
                if pos + blen > n:
                    self._cut(win, pos, index, blen)
                    return
            if not sane or layout.u32(buf, pos + blen - 4)[0] != blen:
                pos = self._resync(win, pos, index, candidate, complete, 12)
                if pos is None:
                    return
                buf, n = win.buf, len(win.buf)
                continue
            end = pos + blen
            if btype == EPB or btype == PB or btype == SPB:
                rec = _packet(buf, pos, end, btype, layout, interfaces, last_ts)
                if rec is None:
                    self.warnings.append(f"record {index + 1} at byte {win.offset(pos)}: packet "
                                         "block names an undefined interface; skipped")
                else:
                    index += 1
                    last_ts = rec[0]
                    self.bytes_read = win.base + end
                    yield _record(Record, rec + (index,))
            elif btype == IDB:
                interfaces.append(_interface(buf, pos, end, layout))
            elif btype == SHB:
                interfaces = []                 # interface ids are numbered per section
            pos = end

    # -- damage ----------------------------------------------------------------------

    def _refill(self, win: _Window, pos: int, size: int, index: int) -> int | None:
        """Make `size` bytes at `pos` readable; None at a clean end of the file, or when
        the file ends inside them (a warning says where)."""
        pos = win.ensure(pos, size)
        n = len(win.buf)
        if pos == n:
            return None
        if n - pos < size:
            self._cut(win, pos, index, size)
            return None
        return pos

    def _cut(self, win: _Window, pos: int, index: int, need: int) -> None:
        have = len(win.buf) - pos
        self.warnings.append(f"record {index + 1} at byte {win.offset(pos)}: file ends in the "
                             f"middle of the record ({have} of {need} bytes); stopped there")

    def _resync(self, win: _Window, pos: int, index: int, candidate: Check,
                complete: Callable[[bytes, int, int], bool] | None, hdr_len: int) -> int | None:
        """Scan forward byte by byte from a damaged header at `pos` for an offset where a
        plausible record is followed by another plausible header or the exact end of the
        file. Returns its position in `win.buf`; None (and a warning) when there is none."""
        start = win.offset(pos)
        where = f"record {index + 1} at byte {start}: damaged record header"
        q = pos + 1
        while True:
            q = win.ensure(q, hdr_len)
            buf = win.buf
            if len(buf) - q < hdr_len:
                self.warnings.append(f"{where}; no valid record in the remaining "
                                     f"{win.offset(len(buf)) - start} bytes; stopped there")
                return None
            size = candidate(buf, q)
            if size is not None:
                q = win.ensure(q, size + hdr_len)
                buf = win.buf
                if (q + size <= len(buf) and (complete is None or complete(buf, q, size))
                        and ((q + size == len(buf) and win.eof)
                             or candidate(buf, q + size) is not None)):
                    self.warnings.append(f"{where}; skipped {win.offset(q) - start} bytes "
                                         "and resynchronised")
                    return q
            q += 1


def _sane_length(btype: int, blen: int) -> bool:
    return MIN_BLOCK.get(btype, 12) <= blen <= MAX_BLOCK and not blen & 3


def _packet(buf: bytes, pos: int, end: int, btype: int, layout: _Layout,
            interfaces: list, last_ts: float) -> tuple | None:
    """(ts, linktype, data, orig_len, comments) of a pcapng packet block; None when it
    names an interface the section has not described."""
    if btype == SPB:                            # no timestamp: keep the previous one
        if not interfaces:
            return None
        linktype, _, _, snaplen = interfaces[0]
        orig = layout.u32(buf, pos + 8)[0]
        caplen = min(orig, end - pos - 16, snaplen or MAX_CAPLEN)
        return last_ts, linktype, buf[pos + 12:pos + 12 + caplen], orig, ()
    if btype == EPB:
        iface, hi, lo, caplen, orig = layout.epb(buf, pos + 8)
    else:                                       # obsolete Packet Block: 16-bit interface id
        iface, _, hi, lo, caplen, orig = layout.pb(buf, pos + 8)
    if iface >= len(interfaces):
        return None
    linktype, units, offset, _ = interfaces[iface]
    caplen = min(caplen, end - pos - 32)
    data_end = pos + 28 + caplen
    opts = data_end + (-caplen & 3)
    comments = ()
    if opts < end - 4:                          # most packets carry no options at all
        comments = tuple(v.decode("utf-8", "replace").rstrip("\0")
                         for code, v in _options(buf, opts, end - 4, layout)
                         if code == OPT_COMMENT)
    return (hi << 32 | lo) / units + offset, linktype, buf[pos + 28:data_end], orig, comments


def _interface(buf: bytes, pos: int, end: int, layout: _Layout) -> tuple[int, int, float, int]:
    """(linktype, ticks per second, time offset, snaplen) of an Interface Description Block."""
    linktype, _, snaplen = layout.idb(buf, pos + 8)
    units, offset = 10**6, 0.0
    for code, value in _options(buf, pos + 16, end - 4, layout):
        if code == IF_TSRESOL and value:
            # High bit set: a negative power of 2; otherwise a negative power of 10.
            units = 2 ** (value[0] & 0x7F) if value[0] & 0x80 else 10 ** value[0]
        elif code == IF_TSOFFSET and len(value) == 8:
            offset = float(layout.i64(value, 0)[0])
    return linktype, units, offset, snaplen


def _options(buf: bytes, pos: int, end: int, layout: _Layout) -> Iterator[tuple[int, bytes]]:
    """pcapng options as (code, value), up to opt_endofopt or the end of the block."""
    while pos + 4 <= end:
        code, length = layout.opt(buf, pos)
        if code == 0 or pos + 4 + length > end:
            return
        yield code, buf[pos + 4:pos + 4 + length]
        pos += 4 + length + (-length & 3)


def _shb_endian(buf: bytes, pos: int) -> str | None:
    """Byte order of the section whose header starts at pos, from its byte-order magic."""
    return {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}.get(bytes(buf[pos + 8:pos + 12]))


def _open_check(path: str) -> tuple[int, bytes]:
    """(size, first bytes) of a readable capture file; TcptraceError otherwise."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(28)
    except FileNotFoundError:
        raise TcptraceError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise TcptraceError(f"{path} is a directory, not a capture file") from None
    except OSError as e:
        raise TcptraceError(f"cannot read {path}: {e.strerror or e}") from None
    if not head:
        raise TcptraceError(f"{path} is empty (0 bytes), not a capture file")
    if head[:2] == b"\x1f\x8b":
        raise TcptraceError(f"{path} is gzip-compressed; decompress it first")
    if head[:4] == PCAPNG_MAGIC:
        if len(head) < 28 or _shb_endian(head, 0) is None:
            raise TcptraceError(f"{path} is not a valid pcapng file (damaged section header)")
    elif int.from_bytes(head[:4].ljust(4, b"\0"), "little") in PCAP_MAGICS:
        if len(head) < 24:
            raise TcptraceError(f"{path} is too short for a pcap file header "
                                f"({len(head)} of 24 bytes)")
    else:
        raise TcptraceError(f"{path} is not a capture file (unknown magic 0x{head[:4].hex()}; "
                            "expected pcap or pcapng)")
    return size, head


def read_records(path: str | os.PathLike) -> Iterator[Record]:
    """The records of a capture file. Damage is skipped as CaptureReader does; use a
    CaptureReader directly to see the warnings."""
    return iter(CaptureReader(path))
