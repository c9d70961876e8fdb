//! Streaming reader for pcap and pcapng capture files (a port of `tcptrace/pcapfile.py`).
//!
//! The source is read once, front to back, in 1 MiB chunks into a window that keeps only
//! the unconsumed tail, so memory stays flat however large the capture is and the source
//! may be stdin or a FIFO. Records are handed out as borrowed slices of that window
//! (`next_record` is a lending iterator): no per-packet copy.
//!
//! Formats: classic pcap in either byte order with microsecond or nanosecond timestamps
//! (the link type's upper 16 bits carry FCS flags and are dropped); pcapng with sections
//! of either byte order, Interface Description Blocks (`if_tsresol`, `if_tsoffset`,
//! snaplen), Enhanced, obsolete and Simple Packet Blocks, and packet comments.
//! Timestamps are computed exactly as the Python does, including its correctly rounded
//! integer division for pcapng tick counts (see [`TickRate`]).
//!
//! Damage policy: damaged input (a record header that cannot be right, a file cut short,
//! a read error) never fails. The reader notes a warning and resynchronises on the next
//! offset where a plausible record is followed by another plausible record header (or by
//! the exact end of the file), because a capture with three stray bytes in the middle
//! still holds the rest of the session. Only a source that is not a capture at all is an
//! error, from [`CaptureReader::new`]. The warning texts are those of pcapfile.py, byte
//! for byte: the CLI prints them and tests compare them.

use std::fs::File;
use std::io::{ErrorKind, Read};

/// Bytes asked of the source per read.
pub const CHUNK: usize = 1 << 20;
/// libpcap's MAXIMUM_SNAPLEN: no real record is longer.
pub const MAX_CAPLEN: u32 = 256 * 1024;
/// pcapng blocks beyond this are taken as damage.
pub const MAX_BLOCK: u32 = 16 << 20;
/// Seconds: a pcap resync candidate must be within a day of the last good record.
pub const RESYNC_MAX_GAP: i64 = 86400;

/// Bytes read and checked before parsing: a pcapng Section Header Block's fixed fields
/// up to its byte-order magic and version (and more than a pcap file header).
const HEAD_LEN: usize = 28;

// Classic pcap layout: a 24-byte file header, then 16-byte record headers
// (seconds, fraction, captured length, original length), each followed by its data.
const PCAP_MAGIC_US: u32 = 0xA1B2_C3D4;
const PCAP_MAGIC_NS: u32 = 0xA1B2_3C4D;
const PCAP_FILE_HDR: usize = 24;
const PCAP_SNAPLEN_AT: usize = 16;
const PCAP_LINKTYPE_AT: usize = 20;
const PCAP_REC_HDR: usize = 16;

// pcapng layout: every block is (type, total length, body, total length again).
const PCAPNG_MAGIC: [u8; 4] = [0x0A, 0x0D, 0x0D, 0x0A];
const BLOCK_HDR: usize = 12; // type + length + trailing length: the smallest block
const BLOCK_LEN_AT: usize = 4;
const BLOCK_TRAILER: usize = 4;
const SHB_BOM_AT: usize = 8;
const SHB_FIXED: usize = 28; // header, magic, version, section length, trailer
const BOM_LITTLE: [u8; 4] = [0x4D, 0x3C, 0x2B, 0x1A];
const BOM_BIG: [u8; 4] = [0x1A, 0x2B, 0x3C, 0x4D];
// Enhanced and obsolete Packet Blocks share offsets apart from the interface id's width.
const PKT_IFACE_AT: usize = 8;
const PKT_TS_HI_AT: usize = 12;
const PKT_TS_LO_AT: usize = 16;
const PKT_CAPLEN_AT: usize = 20;
const PKT_ORIG_AT: usize = 24;
const PKT_DATA_AT: usize = 28;
const PKT_FIXED: usize = 32; // fixed fields plus the block header and trailer
const SPB_ORIG_AT: usize = 8;
const SPB_DATA_AT: usize = 12;
const SPB_FIXED: usize = 16;
const IDB_LINKTYPE_AT: usize = 8;
const IDB_SNAPLEN_AT: usize = 12;
const IDB_OPTIONS_AT: usize = 16;
const IDB_FIXED: usize = 20;
const OPT_HDR: usize = 4; // code, length

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const NRB: u32 = 4;
const ISB: u32 = 5;
const EPB: u32 = 6;
/// Block types a resync may land on (pcapfile.KNOWN_BLOCKS).
fn is_known_block(btype: u32) -> bool {
    matches!(
        btype,
        SHB | IDB | PB | SPB | NRB | ISB | EPB | 7 | 9 | 10 | 0xBAD | 0x4000_0BAD
    )
}
const OPT_COMMENT: u16 = 1;
const IF_TSRESOL: u16 = 9;
const IF_TSOFFSET: u16 = 14;

/// The container format, from the file's magic number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap,
    Pcapng,
}

/// One captured packet. `data` borrows the reader's buffer: it is valid until the next
/// call to [`CaptureReader::next_record`].
#[derive(Clone, Debug, PartialEq)]
pub struct Record<'a> {
    /// Seconds since the epoch.
    pub ts: f64,
    /// LINKTYPE_* of the interface the packet came from.
    pub linktype: u32,
    /// Captured bytes (may be shorter than `orig_len`).
    pub data: &'a [u8],
    /// Length of the packet on the wire.
    pub orig_len: u32,
    /// pcapng opt_comment values (lossy UTF-8, trailing NULs stripped).
    pub comments: Vec<String>,
    /// 1-based record number.
    pub index: u64,
}

// -- byte order ------------------------------------------------------------------------

/// Byte order of a pcap file or a pcapng section. Every read is bounds-checked and
/// returns `None` past the end, so no input can make the reader index out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn bytes<const N: usize>(buf: &[u8], pos: usize) -> Option<[u8; N]> {
        buf.get(pos..pos.checked_add(N)?)?.try_into().ok()
    }

    fn u16(self, buf: &[u8], pos: usize) -> Option<u16> {
        let b = Self::bytes::<2>(buf, pos)?;
        Some(match self {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        })
    }

    fn u32(self, buf: &[u8], pos: usize) -> Option<u32> {
        Some(self.word(Self::bytes::<4>(buf, pos)?))
    }

    fn word(self, b: [u8; 4]) -> u32 {
        match self {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        }
    }

    fn i64(self, buf: &[u8], pos: usize) -> Option<i64> {
        let b = Self::bytes::<8>(buf, pos)?;
        Some(match self {
            Endian::Little => i64::from_le_bytes(b),
            Endian::Big => i64::from_be_bytes(b),
        })
    }
}

/// Byte order of the pcapng section whose header starts at `pos`, from its byte-order magic.
fn shb_endian(buf: &[u8], pos: usize) -> Option<Endian> {
    match Endian::bytes::<4>(buf, pos.checked_add(SHB_BOM_AT)?)? {
        BOM_LITTLE => Some(Endian::Little),
        BOM_BIG => Some(Endian::Big),
        _ => None,
    }
}

/// Classic pcap magic (first four bytes read little-endian) -> (byte order, ticks per second).
fn pcap_magic(magic: u32) -> Option<(Endian, u32)> {
    match magic {
        PCAP_MAGIC_US => Some((Endian::Little, 1_000_000)),
        m if m == PCAP_MAGIC_US.swap_bytes() => Some((Endian::Big, 1_000_000)),
        PCAP_MAGIC_NS => Some((Endian::Little, 1_000_000_000)),
        m if m == PCAP_MAGIC_NS.swap_bytes() => Some((Endian::Big, 1_000_000_000)),
        _ => None,
    }
}

// -- the window over the source ----------------------------------------------------------

/// The part of the source held in memory (pcapfile._Window): `data[..len]` starts at
/// source offset `base`. Positions handed around are indices into it; `ensure` may drop
/// everything before the position it is given and says where that byte is now.
/// `data` past `len` is zeroed spare room, reused so refills do not clear memory again.
struct Window<R> {
    src: R,
    data: Vec<u8>,
    len: usize,
    base: u64,
    eof: bool,
    /// A read error, reported once as a warning; reading stops there as at end of file.
    error: Option<String>,
}

impl<R: Read> Window<R> {
    fn new(src: R) -> Self {
        Window {
            src,
            data: Vec::new(),
            len: 0,
            base: 0,
            eof: false,
            error: None,
        }
    }

    fn buf(&self) -> &[u8] {
        self.data.get(..self.len).unwrap_or(&[])
    }

    /// Source offset of buffer position `pos`.
    fn offset(&self, pos: usize) -> u64 {
        self.base.saturating_add(pos as u64)
    }

    /// Make `need` bytes from `pos` available (fewer only at the end of the source).
    /// May drop everything before `pos`: returns where that byte now is.
    fn ensure(&mut self, pos: usize, need: usize) -> usize {
        if self.len.saturating_sub(pos) >= need || self.eof {
            return pos;
        }
        let pos = pos.min(self.len);
        self.data.copy_within(pos..self.len, 0);
        self.len -= pos;
        self.base = self.offset(pos);
        // Room for the request, and at least a chunk, as Python's read(max(CHUNK, ...)).
        let room = self.len.saturating_add(need.max(CHUNK));
        if self.data.len() < room {
            self.data.resize(room, 0);
        }
        while self.len < need && !self.eof {
            self.read_some();
        }
        0
    }

    /// One read into the spare room; a short read (a pipe) is fine, the caller loops.
    fn read_some(&mut self) {
        let Some(spare) = self.data.get_mut(self.len..) else {
            self.eof = true;
            return;
        };
        loop {
            match self.src.read(spare) {
                Ok(0) => self.eof = true,
                Ok(n) => self.len = self.len.saturating_add(n).min(self.data.len()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.eof = true;
                    self.error = Some(strerror(&e));
                }
            }
            return;
        }
    }
}

/// The OS's message for an error, as Python's `OSError.strerror` gives it (std's Display
/// appends " (os error N)").
fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(cut) if e.raw_os_error().is_some() => text[..cut].to_string(),
        _ => text,
    }
}

// -- the read position and the damage handling -------------------------------------------

/// The window plus where parsing stands: the position in the window, the number of
/// records handed out, the warnings so far. Both parsers drive it.
struct Cursor<R> {
    win: Window<R>,
    pos: usize,
    index: u64,
    bytes_read: u64,
    warnings: Vec<String>,
}

impl<R: Read> Cursor<R> {
    /// Make `size` bytes at `pos` readable; false at a clean end of the source, or when
    /// it ends inside them (a warning says where).
    fn refill(&mut self, size: usize) -> bool {
        self.pos = self.win.ensure(self.pos, size);
        let have = self.win.len.saturating_sub(self.pos);
        if have == 0 {
            return false;
        }
        if have < size {
            self.cut(size);
            return false;
        }
        true
    }

    fn cut(&mut self, need: usize) {
        let have = self.win.len.saturating_sub(self.pos);
        self.warnings.push(format!(
            "record {} at byte {}: file ends in the middle of the record ({have} of {need} \
             bytes); stopped there",
            self.index + 1,
            self.win.offset(self.pos)
        ));
    }

    /// Make the whole record of `size` bytes at the position readable; false (and a
    /// warning) when the source ends inside it.
    fn ensure_record(&mut self, size: usize) -> bool {
        if self.pos.saturating_add(size) > self.win.len {
            self.pos = self.win.ensure(self.pos, size);
            if self.pos.saturating_add(size) > self.win.len {
                self.cut(size);
                return false;
            }
        }
        true
    }

    /// Scan forward byte by byte from a damaged header at the position for an offset
    /// where a plausible record (`candidate` gives its size) is `complete` and followed
    /// by another plausible header or the exact end of the source. Moves there and says
    /// so in a warning; false (and a warning) when there is none.
    ///
    /// Linear in the bytes scanned: each probe is O(1), the offsets whose header is
    /// already in the window are probed in a tight loop, and the window only ever moves
    /// forward, dropping what lies behind the probe (pcapfile.py re-reads instead).
    fn resync<C, K>(&mut self, candidate: C, complete: K, hdr_len: usize) -> bool
    where
        C: Fn(&[u8], usize) -> Option<usize>,
        K: Fn(&[u8], usize, usize) -> bool,
    {
        let start = self.win.offset(self.pos);
        let where_ = format!(
            "record {} at byte {start}: damaged record header",
            self.index + 1
        );
        let mut q = self.pos.saturating_add(1);
        loop {
            q = self.win.ensure(q, hdr_len);
            let buf = self.win.buf();
            let Some(last) = buf.len().checked_sub(hdr_len).filter(|&last| q <= last) else {
                let remaining = self.win.offset(buf.len()).saturating_sub(start);
                self.warnings.push(format!(
                    "{where_}; no valid record in the remaining {remaining} bytes; stopped there"
                ));
                return false;
            };
            let Some((at, size)) = (q..=last).find_map(|p| Some((p, candidate(buf, p)?))) else {
                q = last + 1; // all probed: read on
                continue;
            };
            q = self.win.ensure(at, size.saturating_add(hdr_len));
            let buf = self.win.buf();
            let next = q.saturating_add(size);
            if next <= buf.len()
                && complete(buf, q, size)
                && ((next == buf.len() && self.win.eof) || candidate(buf, next).is_some())
            {
                let skipped = self.win.offset(q).saturating_sub(start);
                self.warnings.push(format!(
                    "{where_}; skipped {skipped} bytes and resynchronised"
                ));
                self.pos = q;
                return true;
            }
            q = q.saturating_add(1);
        }
    }

    /// Hand out the record that ends at `end`: count it, note the progress, move past it.
    fn accept(&mut self, end: usize) -> u64 {
        self.index += 1;
        self.bytes_read = self.win.offset(end);
        self.pos = end;
        self.index
    }
}

/// A record found in the window: `data` is a range of the window's buffer.
struct Found {
    ts: f64,
    linktype: u32,
    data: std::ops::Range<usize>,
    orig_len: u32,
    comments: Vec<String>,
}

// -- classic pcap ----------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct PcapParser {
    endian: Endian,
    /// Timestamp fraction ticks per second: 10^6 or 10^9.
    units: u32,
    linktype: u32,
    /// Resync probes hold a record's captured length to this (the header's snaplen when
    /// sensible); the main loop reads anything up to MAX_CAPLEN, as libpcap and
    /// Wireshark do, because writers get the snaplen wrong.
    limit: u32,
    /// Seconds of the last good record: resync candidates must be near it.
    last_sec: Option<u32>,
}

/// A classic pcap record header.
struct PcapRecordHeader {
    sec: u32,
    frac: u32,
    incl: u32,
    orig: u32,
}

impl PcapParser {
    /// The parser for the file header at the start of `head` (at least 24 bytes).
    fn new(head: &[u8]) -> Option<Self> {
        let (endian, units) = pcap_magic(Endian::Little.u32(head, 0)?)?;
        let snaplen = endian.u32(head, PCAP_SNAPLEN_AT)?;
        // The upper bits carry FCS-length flags.
        let linktype = endian.u32(head, PCAP_LINKTYPE_AT)? & 0xFFFF;
        let limit = if 0 < snaplen && snaplen < MAX_CAPLEN {
            snaplen
        } else {
            MAX_CAPLEN
        };
        Some(PcapParser {
            endian,
            units,
            linktype,
            limit,
            last_sec: None,
        })
    }

    /// The record header at `q`, read with one bounds check (resync probes every byte).
    fn header(&self, buf: &[u8], q: usize) -> Option<PcapRecordHeader> {
        let [s0, s1, s2, s3, f0, f1, f2, f3, i0, i1, i2, i3, o0, o1, o2, o3] =
            Endian::bytes::<PCAP_REC_HDR>(buf, q)?;
        let e = self.endian;
        Some(PcapRecordHeader {
            sec: e.word([s0, s1, s2, s3]),
            frac: e.word([f0, f1, f2, f3]),
            incl: e.word([i0, i1, i2, i3]),
            orig: e.word([o0, o1, o2, o3]),
        })
    }

    /// Record size at `q` if its header is plausible. Stricter than the main loop (a
    /// non-empty packet, a time near the last good record): it probes junk.
    fn candidate(&self, buf: &[u8], q: usize) -> Option<usize> {
        let h = self.header(buf, q)?;
        let near = match self.last_sec {
            None => true,
            Some(last) => (i64::from(h.sec) - i64::from(last)).abs() <= RESYNC_MAX_GAP,
        };
        let plausible =
            h.frac < self.units && h.incl <= self.limit && 0 < h.orig && h.incl <= h.orig;
        (plausible && near).then(|| PCAP_REC_HDR + h.incl as usize)
    }

    #[inline]
    fn next<R: Read>(&mut self, c: &mut Cursor<R>) -> Option<Found> {
        loop {
            if c.pos.saturating_add(PCAP_REC_HDR) > c.win.len && !c.refill(PCAP_REC_HDR) {
                return None;
            }
            let h = self.header(c.win.buf(), c.pos)?;
            if h.frac >= self.units || h.incl > MAX_CAPLEN || h.incl > h.orig {
                let probe = *self;
                if !c.resync(|b, q| probe.candidate(b, q), |_, _, _| true, PCAP_REC_HDR) {
                    return None;
                }
                continue;
            }
            let size = PCAP_REC_HDR + h.incl as usize;
            if !c.ensure_record(size) {
                return None;
            }
            let data = c.pos + PCAP_REC_HDR..c.pos + size;
            c.accept(data.end);
            self.last_sec = Some(h.sec);
            return Some(Found {
                ts: f64::from(h.sec) + f64::from(h.frac) / f64::from(self.units),
                linktype: self.linktype,
                data,
                orig_len: h.orig,
                comments: Vec::new(),
            });
        }
    }
}

// -- pcapng ----------------------------------------------------------------------------

/// What an Interface Description Block says about its packets.
#[derive(Clone, Debug)]
struct Interface {
    linktype: u32,
    rate: TickRate,
    /// if_tsoffset, seconds.
    offset: f64,
    snaplen: u32,
}

#[derive(Debug)]
struct PcapngParser {
    /// Byte order of the current section.
    endian: Endian,
    /// Interface ids are numbered per section.
    interfaces: Vec<Interface>,
    /// A Simple Packet Block has no timestamp: it keeps the previous packet's.
    last_ts: f64,
}

/// Whether a block length can be right for the block type: at least the type's fixed
/// fields, at most MAX_BLOCK, a multiple of 4.
fn sane_length(btype: u32, blen: u32) -> bool {
    let min = match btype {
        SHB => SHB_FIXED as u32,
        IDB => IDB_FIXED as u32,
        PB | EPB => PKT_FIXED as u32,
        SPB => SPB_FIXED as u32,
        _ => BLOCK_HDR as u32,
    };
    min <= blen && blen <= MAX_BLOCK && blen & 3 == 0
}

/// Byte order of the block at `q` in a section of order `endian`: an SHB states its own.
fn endian_at(endian: Endian, buf: &[u8], q: usize) -> Option<Endian> {
    if endian.u32(buf, q)? == SHB {
        shb_endian(buf, q)
    } else {
        Some(endian)
    }
}

/// Block size at `q` if a known block type with a sane length starts there. Reads the
/// 12 bytes with one bounds check: resync probes every byte.
fn block_candidate(endian: Endian, buf: &[u8], q: usize) -> Option<usize> {
    let [t0, t1, t2, t3, l0, l1, l2, l3, m0, m1, m2, m3] = Endian::bytes::<BLOCK_HDR>(buf, q)?;
    let btype = endian.word([t0, t1, t2, t3]);
    if !is_known_block(btype) {
        return None; // first: the cheapest test, and the one junk fails
    }
    let e = match (btype, [m0, m1, m2, m3]) {
        (SHB, BOM_LITTLE) => Endian::Little,
        (SHB, BOM_BIG) => Endian::Big,
        (SHB, _) => return None,
        _ => endian,
    };
    let blen = e.word([l0, l1, l2, l3]);
    sane_length(btype, blen).then_some(blen as usize)
}

/// The trailing copy of the block length at `q` matches the leading one.
fn block_complete(endian: Endian, buf: &[u8], q: usize, size: usize) -> bool {
    let trailer = q.saturating_add(size).saturating_sub(BLOCK_TRAILER);
    endian_at(endian, buf, q).and_then(|e| e.u32(buf, trailer)) == Some(size as u32)
}

impl PcapngParser {
    fn new() -> Self {
        PcapngParser {
            endian: Endian::Little,
            interfaces: Vec::new(),
            last_ts: 0.0,
        }
    }

    fn next<R: Read>(&mut self, c: &mut Cursor<R>) -> Option<Found> {
        loop {
            if c.pos.saturating_add(BLOCK_HDR) > c.win.len && !c.refill(BLOCK_HDR) {
                return None;
            }
            let (btype, blen) = self.block_header(c.win.buf(), c.pos)?;
            let sane = sane_length(btype, blen);
            let size = blen as usize;
            if sane && !c.ensure_record(size) {
                return None;
            }
            let trailer = c.pos.saturating_add(size).saturating_sub(BLOCK_TRAILER);
            if !sane || self.endian.u32(c.win.buf(), trailer) != Some(blen) {
                let e = self.endian;
                if !c.resync(
                    |b, q| block_candidate(e, b, q),
                    |b, q, s| block_complete(e, b, q, s),
                    BLOCK_HDR,
                ) {
                    return None;
                }
                continue;
            }
            let (pos, end) = (c.pos, c.pos + size);
            match btype {
                EPB | PB | SPB => match self.packet(c.win.buf(), pos, end, btype) {
                    Some(found) => {
                        c.accept(end);
                        self.last_ts = found.ts;
                        return Some(found);
                    }
                    None => c.warnings.push(format!(
                        "record {} at byte {}: packet block names an undefined interface; \
                         skipped",
                        c.index + 1,
                        c.win.offset(pos)
                    )),
                },
                IDB => {
                    let iface = self.interface(c.win.buf(), pos, end);
                    self.interfaces.extend(iface);
                }
                SHB => self.interfaces.clear(),
                _ => {}
            }
            c.pos = end;
        }
    }

    /// (type, length) of the block at `pos`. A Section Header Block may switch the byte
    /// order; one without a byte-order magic gets length 0, which marks it damaged.
    fn block_header(&mut self, buf: &[u8], pos: usize) -> Option<(u32, u32)> {
        let btype = self.endian.u32(buf, pos)?;
        let mut blen = self.endian.u32(buf, pos + BLOCK_LEN_AT)?;
        if btype == SHB {
            blen = match shb_endian(buf, pos) {
                None => 0,
                Some(e) => {
                    self.endian = e;
                    e.u32(buf, pos + BLOCK_LEN_AT)?
                }
            };
        }
        Some((btype, blen))
    }

    /// The record in a packet block spanning buf[pos..end]; None when it names an
    /// interface the section has not described.
    fn packet(&self, buf: &[u8], pos: usize, end: usize, btype: u32) -> Option<Found> {
        if btype == SPB {
            return self.simple_packet(buf, pos, end);
        }
        let e = self.endian;
        let iface = if btype == EPB {
            e.u32(buf, pos + PKT_IFACE_AT)?
        } else {
            u32::from(e.u16(buf, pos + PKT_IFACE_AT)?) // obsolete Packet Block: 16 bits
        };
        let iface = self.interfaces.get(iface as usize)?;
        let hi = e.u32(buf, pos + PKT_TS_HI_AT)?;
        let lo = e.u32(buf, pos + PKT_TS_LO_AT)?;
        let caplen = e.u32(buf, pos + PKT_CAPLEN_AT)?;
        let orig = e.u32(buf, pos + PKT_ORIG_AT)?;
        let caplen = (caplen as usize).min(end.saturating_sub(pos + PKT_FIXED));
        let data = pos + PKT_DATA_AT..pos + PKT_DATA_AT + caplen;
        let opts = data.end + (caplen.wrapping_neg() & 3);
        let opts_end = end.saturating_sub(BLOCK_TRAILER);
        let comments = if opts < opts_end {
            comments(buf, opts, opts_end, e)
        } else {
            Vec::new() // most packets carry no options at all
        };
        let ticks = u64::from(hi) << 32 | u64::from(lo);
        Some(Found {
            ts: iface.rate.seconds(ticks) + iface.offset,
            linktype: iface.linktype,
            data,
            orig_len: orig,
            comments,
        })
    }

    /// A Simple Packet Block: the section's first interface, no timestamp (the previous
    /// packet's is kept), the captured length from the original length and snaplen.
    fn simple_packet(&self, buf: &[u8], pos: usize, end: usize) -> Option<Found> {
        let iface = self.interfaces.first()?;
        let orig = self.endian.u32(buf, pos + SPB_ORIG_AT)?;
        let snaplen = if iface.snaplen == 0 {
            MAX_CAPLEN
        } else {
            iface.snaplen
        };
        let room = end.saturating_sub(pos + SPB_FIXED);
        let caplen = (orig.min(snaplen) as usize).min(room);
        let start = pos + SPB_DATA_AT;
        Some(Found {
            ts: self.last_ts,
            linktype: iface.linktype,
            data: start..start + caplen,
            orig_len: orig,
            comments: Vec::new(),
        })
    }

    /// What the Interface Description Block in buf[pos..end] says.
    fn interface(&self, buf: &[u8], pos: usize, end: usize) -> Option<Interface> {
        let e = self.endian;
        let mut iface = Interface {
            linktype: u32::from(e.u16(buf, pos + IDB_LINKTYPE_AT)?),
            rate: TickRate::MICROSECONDS,
            offset: 0.0,
            snaplen: e.u32(buf, pos + IDB_SNAPLEN_AT)?,
        };
        let opts_end = end.saturating_sub(BLOCK_TRAILER);
        for (code, value) in Options::new(buf, pos + IDB_OPTIONS_AT, opts_end, e) {
            match (code, value) {
                (IF_TSRESOL, [v, ..]) => iface.rate = TickRate::from_tsresol(*v),
                (IF_TSOFFSET, v) if v.len() == 8 => {
                    iface.offset = e.i64(v, 0).map_or(0.0, |secs| secs as f64);
                }
                _ => {}
            }
        }
        Some(iface)
    }
}

/// The opt_comment values among the options in buf[pos..end]: lossy UTF-8, trailing
/// NULs stripped (writers pad with them).
fn comments(buf: &[u8], pos: usize, end: usize, endian: Endian) -> Vec<String> {
    Options::new(buf, pos, end, endian)
        .filter(|&(code, _)| code == OPT_COMMENT)
        .map(|(_, v)| {
            String::from_utf8_lossy(v)
                .trim_end_matches('\0')
                .to_string()
        })
        .collect()
}

/// pcapng options as (code, value), up to opt_endofopt or the end of the block.
struct Options<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
    endian: Endian,
}

impl<'a> Options<'a> {
    fn new(buf: &'a [u8], pos: usize, end: usize, endian: Endian) -> Self {
        Options {
            buf,
            pos,
            end,
            endian,
        }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos.checked_add(OPT_HDR)? > self.end {
            return None;
        }
        let code = self.endian.u16(self.buf, self.pos)?;
        let length = usize::from(self.endian.u16(self.buf, self.pos + 2)?);
        let value_at = self.pos + OPT_HDR;
        if code == 0 || value_at + length > self.end {
            self.end = 0; // opt_endofopt, or an option running past the block: stop
            return None;
        }
        let value = self.buf.get(value_at..value_at + length)?;
        self.pos = value_at + length + (length.wrapping_neg() & 3);
        Some((code, value))
    }
}

// -- exact timestamps ------------------------------------------------------------------

/// Ticks per second of a pcapng interface, `if_tsresol`: 2^twos × odd, where odd is 1
/// (a power-of-2 resolution) or 5^e (10^e = 2^e × 5^e).
///
/// Why not `ticks as f64 / units as f64`: Python computes `ticks / units` on integers,
/// which is correctly rounded, while a nanosecond tick count (above 2^53) loses bits in
/// the conversion to f64, so a quarter of nanosecond timestamps would come out one ulp
/// away from the Python's. Dividing by the odd part with correct rounding and then
/// scaling by a power of two (exact) gives the Python's value for every input, including
/// absurd exponents up to 10^127 (no overflow, no panic).
#[derive(Clone, Debug, PartialEq)]
struct TickRate {
    twos: i32,
    odd: Big,
}

impl TickRate {
    const MICROSECONDS: TickRate = TickRate {
        twos: 6,
        odd: Big([15_625, 0, 0, 0, 0]),
    };

    /// From if_tsresol's byte: high bit set, a negative power of 2; otherwise of 10.
    fn from_tsresol(v: u8) -> Self {
        let exp = v & 0x7F;
        let mut odd = Big::from_u64(1);
        if v & 0x80 == 0 {
            for _ in 0..exp {
                odd.mul_small(5);
            }
        }
        TickRate {
            twos: i32::from(exp),
            odd,
        }
    }

    /// `ticks / units`, correctly rounded to the nearest f64 (ties to even), as Python's
    /// int / int.
    fn seconds(&self, ticks: u64) -> f64 {
        const EXACT: u64 = 1 << 53; // integers up to this are exact in an f64
        let quotient = match self.odd.to_u64() {
            Some(d) if ticks <= EXACT && d <= EXACT => ticks as f64 / d as f64,
            Some(d) => div_u64(ticks, d).unwrap_or_else(|| div_big(ticks, &self.odd)),
            None => div_big(ticks, &self.odd),
        };
        quotient * pow2(-self.twos)
    }
}

/// 2^e as an f64, for e in the normal range.
fn pow2(e: i32) -> f64 {
    let e = e.clamp(-1022, 1023);
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// Round a 54-bit quotient (53 bits and a rounding bit) whose last bit weighs 2^lsb to
/// an f64, ties to even; `sticky` says whether anything non-zero lies below it.
fn round_quotient(top: u64, sticky: bool, lsb: i32) -> f64 {
    let mut mant = top >> 1;
    if top & 1 == 1 && (sticky || mant & 1 == 1) {
        mant += 1; // at most 2^53: still exact
    }
    mant as f64 * pow2(lsb + 1)
}

/// Significant bits kept before rounding: the f64 mantissa and one rounding bit.
const QUOTIENT_BITS: u32 = 54;

/// `n / d` correctly rounded, when the quotient of `n·2^64 / d` has at least 54 bits
/// (it does for every real timestamp); None otherwise.
fn div_u64(n: u64, d: u64) -> Option<f64> {
    let wide = u128::from(n) << 64;
    let d = u128::from(d);
    let q = wide.checked_div(d)?;
    let r = wide % d;
    let bits = 128 - q.leading_zeros();
    let shift = bits.checked_sub(QUOTIENT_BITS)?;
    let top = u64::try_from(q >> shift).ok()?;
    let sticky = q & ((1u128 << shift) - 1) != 0 || r != 0;
    Some(round_quotient(top, sticky, shift as i32 - 64))
}

/// `n / d` correctly rounded by schoolbook binary long division: slow, only for the
/// quotients `div_u64` cannot handle (tiny tick counts, absurd resolutions).
fn div_big(n: u64, d: &Big) -> f64 {
    if n == 0 || d.is_zero() {
        return 0.0;
    }
    let mut r = Big::from_u64(0);
    let (mut q, mut qbits) = (0u64, 0u32);
    let mut exp: i32 = 63; // weight of the quotient bit being produced
                           // At most 64 bits of n, then the bits of d before the quotient turns non-zero, then 54.
    for _ in 0..(64 + 64 * BIG_LIMBS as u32 + QUOTIENT_BITS) {
        let bit = if exp >= 0 { (n >> exp) & 1 } else { 0 };
        r.shl1_or(bit);
        let qbit = u64::from(r.ge(d));
        if qbit == 1 {
            r.sub_assign(d);
        }
        if qbits > 0 || qbit == 1 {
            q = q << 1 | qbit;
            qbits += 1;
            if qbits == QUOTIENT_BITS {
                break;
            }
        }
        exp -= 1;
    }
    let rest = exp > 0 && n & ((1u64 << exp) - 1) != 0;
    round_quotient(q, !r.is_zero() || rest, exp)
}

const BIG_LIMBS: usize = 5;

/// A fixed-width unsigned integer (320 bits, little-endian limbs): room for 5^127 and
/// twice any remainder below it. Operations wrap rather than panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Big([u64; BIG_LIMBS]);

impl Big {
    fn from_u64(v: u64) -> Self {
        let mut limbs = [0; BIG_LIMBS];
        limbs[0] = v;
        Big(limbs)
    }

    fn to_u64(self) -> Option<u64> {
        let (low, high) = self.0.split_first()?;
        high.iter().all(|&l| l == 0).then_some(*low)
    }

    fn is_zero(&self) -> bool {
        self.0.iter().all(|&l| l == 0)
    }

    fn mul_small(&mut self, m: u64) {
        let mut carry = 0u128;
        for limb in &mut self.0 {
            let v = u128::from(*limb) * u128::from(m) + carry;
            *limb = v as u64;
            carry = v >> 64;
        }
    }

    /// self = 2·self + bit.
    fn shl1_or(&mut self, bit: u64) {
        let mut carry = bit & 1;
        for limb in &mut self.0 {
            let next = *limb >> 63;
            *limb = *limb << 1 | carry;
            carry = next;
        }
    }

    fn ge(&self, other: &Big) -> bool {
        self.0.iter().rev().cmp(other.0.iter().rev()) != std::cmp::Ordering::Less
    }

    fn sub_assign(&mut self, other: &Big) {
        let mut borrow = false;
        for (a, &b) in self.0.iter_mut().zip(other.0.iter()) {
            let (v, b1) = a.overflowing_sub(b);
            let (v, b2) = v.overflowing_sub(u64::from(borrow));
            *a = v;
            borrow = b1 || b2;
        }
    }
}

// -- the reader ------------------------------------------------------------------------

enum Parser {
    Pcap(PcapParser),
    Pcapng(PcapngParser),
}

/// Reads a capture's records one by one; `warnings` says where damaged input was skipped.
///
/// Creating the reader checks the first bytes (an error when the source is not a
/// capture); `next_record` streams the rest. `bytes_read` drives a progress bar.
pub struct CaptureReader<R: Read> {
    cursor: Cursor<R>,
    parser: Parser,
    done: bool,
}

impl<R: Read> CaptureReader<R> {
    /// Reads the first bytes from `src` and checks them: Err(one-line message) when it
    /// is not a capture (the texts of pcapfile._open_check, with `name` for the path).
    /// `src` is read once, front to back, never reopened or seeked: it may be stdin.
    pub fn new(src: R, name: &str) -> Result<Self, String> {
        let mut win = Window::new(src);
        win.ensure(0, HEAD_LEN);
        if let Some(err) = win.error.take() {
            return Err(format!("cannot read {name}: {err}"));
        }
        let head = win.buf().get(..HEAD_LEN).unwrap_or(win.buf());
        let (parser, pos) = check_head(head, name)?;
        Ok(CaptureReader {
            cursor: Cursor {
                win,
                pos,
                index: 0,
                bytes_read: 0,
                warnings: Vec::new(),
            },
            parser,
            done: false,
        })
    }

    pub fn format(&self) -> Format {
        match self.parser {
            Parser::Pcap(_) => Format::Pcap,
            Parser::Pcapng(_) => Format::Pcapng,
        }
    }

    /// The next record, or None at the end of the source (a clean end, or after a
    /// warning said where reading stopped). The record borrows the reader's buffer.
    #[inline]
    pub fn next_record(&mut self) -> Option<Record<'_>> {
        if self.done {
            return None;
        }
        let c = &mut self.cursor;
        let found = match &mut self.parser {
            Parser::Pcap(p) => p.next(c),
            Parser::Pcapng(p) => p.next(c),
        };
        let Some(found) = found else {
            self.finish();
            return None;
        };
        Some(Record {
            ts: found.ts,
            linktype: found.linktype,
            data: self.cursor.win.buf().get(found.data).unwrap_or(&[]),
            orig_len: found.orig_len,
            comments: found.comments,
            index: self.cursor.index,
        })
    }

    /// Reading has stopped: report a read error, and count everything read as done.
    fn finish(&mut self) {
        self.done = true;
        let c = &mut self.cursor;
        if let Some(err) = c.win.error.take() {
            let at = c.win.offset(c.win.len);
            c.warnings
                .push(format!("read error after byte {at}: {err}; stopped there"));
        }
        c.bytes_read = c.win.offset(c.win.len);
    }

    /// Where damaged input was skipped, in pcapfile.py's words.
    pub fn warnings(&self) -> &[String] {
        &self.cursor.warnings
    }

    /// Source offset consumed so far (for a progress bar); all of it at the end.
    pub fn bytes_read(&self) -> u64 {
        self.cursor.bytes_read
    }
}

/// The parser and start position for a source whose first bytes are `head`; the
/// one-line error of pcapfile._open_check when it is not a capture.
fn check_head(head: &[u8], name: &str) -> Result<(Parser, usize), String> {
    if head.is_empty() {
        return Err(format!("{name} is empty (0 bytes), not a capture file"));
    }
    if head.starts_with(&[0x1F, 0x8B]) {
        return Err(format!("{name} is gzip-compressed; decompress it first"));
    }
    if head.starts_with(&PCAPNG_MAGIC) {
        if head.len() < HEAD_LEN || shb_endian(head, 0).is_none() {
            return Err(format!(
                "{name} is not a valid pcapng file (damaged section header)"
            ));
        }
        return Ok((Parser::Pcapng(PcapngParser::new()), 0));
    }
    let mut magic = [0u8; 4];
    let first = head.get(..4).unwrap_or(head);
    magic.iter_mut().zip(first).for_each(|(m, &b)| *m = b);
    if pcap_magic(u32::from_le_bytes(magic)).is_none() {
        let hex: String = first.iter().map(|b| format!("{b:02x}")).collect();
        return Err(format!(
            "{name} is not a capture file (unknown magic 0x{hex}; expected pcap or pcapng)"
        ));
    }
    match PcapParser::new(head) {
        Some(p) if head.len() >= PCAP_FILE_HDR => Ok((Parser::Pcap(p), PCAP_FILE_HDR)),
        _ => Err(format!(
            "{name} is too short for a pcap file header ({} of {PCAP_FILE_HDR} bytes)",
            head.len()
        )),
    }
}

/// A source behind a trait object: a file, or standard input.
pub type Source = Box<dyn Read + Send>;

/// Opens a capture by path, `-` meaning standard input (named "standard input" in the
/// messages, as tcptrace's front end names it), and checks its first bytes.
pub fn open(path: &str) -> Result<CaptureReader<Source>, String> {
    if path == "-" {
        return CaptureReader::new(Box::new(std::io::stdin()), "standard input");
    }
    CaptureReader::new(Box::new(open_file(path)?), path)
}

/// Opens a capture file by path and checks its first bytes (errors as pcapfile.py's).
pub fn open_path(path: &str) -> Result<CaptureReader<File>, String> {
    CaptureReader::new(open_file(path)?, path)
}

/// The file at `path` opened for reading, or pcapfile._open_check's message.
fn open_file(path: &str) -> Result<File, String> {
    let file = File::open(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => format!("no such file: {path}"),
        ErrorKind::IsADirectory => format!("{path} is a directory, not a capture file"),
        _ => format!("cannot read {path}: {}", strerror(&e)),
    })?;
    // Linux opens a directory for reading without complaint; Python refuses it.
    match file.metadata() {
        Ok(meta) if meta.is_dir() => Err(format!("{path} is a directory, not a capture file")),
        Ok(_) => Ok(file),
        Err(e) => Err(format!("cannot read {path}: {}", strerror(&e))),
    }
}

#[cfg(test)]
mod tests {
    //! Real captures, hand-built pcap/pcapng files, damaged input (tests/test_pcapfile.py),
    //! plus what only the Rust side has: streaming sources, read errors, exact timestamp
    //! division, linear resync, no panics on any input.

    use super::*;
    use proptest::prelude::*;
    use std::io::Cursor as IoCursor;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/captures-real");
    const CORRUPT: &str = "sv_smtp-to-comma_corrupt.pcap";
    /// A realistic capture time: resync rejects records far from the last.
    const T0: u32 = 1_600_000_000;

    /// File -> (records, link type), as the README table of the captures states them.
    /// The corrupt file holds 199 records for a reader that resyncs.
    const README_TABLE: [(&str, usize, u32); 25] = [
        ("cs_tcp_teardown.pcapng", 4, 1),
        ("cs_nowebaccess2.pcapng", 8, 1),
        ("cs_tcp_zerowindowrecovery.pcapng", 7, 1),
        ("cs_tcp_zerowindowdead.pcapng", 8, 1),
        ("cs_http_ip4and6.pcapng", 20, 1),
        ("lw_200722_tcp_anon.pcapng", 35, 1),
        ("lw_simple_http_sll2.pcap", 24, 276),
        ("zeek_http_get-gzip.pcap", 14, 1),
        ("zeek_tcp_fin_retransmission.pcap", 5, 1),
        ("zeek_http_206_example_b.pcap", 1556, 1),
        ("zeek_http-vlan-0.pcap", 14, 1),
        ("zeek_vlan-collisions.pcap", 42, 1),
        ("zeek_tls_irc-starttls.pcap", 20, 113),
        ("zeek_tcp_truncated-header.pcap", 24, 1),
        ("zeek_nmap-vsn.pcap", 547, 1),
        ("zeek_ftp_ipv6-violation.pcap", 19, 1),
        ("zeek_redis_attr.pcap", 28, 0),
        ("zeek_ldap_modify-request.pcapng", 17, 1),
        ("zeek_http_get-to-ssh-server.pcap", 9, 1),
        ("sv_community-id-ipv6.pcap", 70, 1),
        ("sv_mqtt-limit-2.pcap", 37, 1),
        ("sv_tcp-empty-sack_tcp-opt.pcap", 42, 101),
        (CORRUPT, 199, 1),
        ("tcpreplay_test.pcap", 179, 1),
        ("tcpdump_pptp.pcap", 23, 1),
    ];

    /// A record copied out of the reader's buffer.
    #[derive(Debug, Clone, PartialEq)]
    struct Rec {
        ts: f64,
        linktype: u32,
        data: Vec<u8>,
        orig_len: u32,
        comments: Vec<String>,
        index: u64,
    }

    fn drain<R: Read>(reader: &mut CaptureReader<R>) -> Vec<Rec> {
        let mut out = Vec::new();
        while let Some(r) = reader.next_record() {
            out.push(Rec {
                ts: r.ts,
                linktype: r.linktype,
                data: r.data.to_vec(),
                orig_len: r.orig_len,
                comments: r.comments,
                index: r.index,
            });
        }
        out
    }

    fn read_bytes(raw: &[u8]) -> (Vec<Rec>, Vec<String>) {
        let mut reader = CaptureReader::new(IoCursor::new(raw.to_vec()), "t").expect("a capture");
        let records = drain(&mut reader);
        (records, reader.warnings().to_vec())
    }

    fn capture(name: &str) -> String {
        format!("{CAPTURES}/{name}")
    }

    fn read_capture(name: &str) -> (Vec<Rec>, Vec<String>) {
        let mut reader = open_path(&capture(name)).expect("a capture");
        let records = drain(&mut reader);
        (records, reader.warnings().to_vec())
    }

    /// A fresh directory under the system's temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "tcptrace-reader-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            std::fs::create_dir_all(&dir).expect("temp dir");
            TempDir(dir)
        }

        fn write(&self, name: &str, raw: &[u8]) -> String {
            let path = self.0.join(name);
            std::fs::write(&path, raw).expect("write");
            path.to_string_lossy().into_owned()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    // -- builders --------------------------------------------------------------------

    fn u32s(big: bool, values: &[u32]) -> Vec<u8> {
        values
            .iter()
            .flat_map(|v| {
                if big {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            })
            .collect()
    }

    fn u16s(big: bool, values: &[u16]) -> Vec<u8> {
        values
            .iter()
            .flat_map(|v| {
                if big {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            })
            .collect()
    }

    /// A classic pcap record: (seconds, fraction ticks, data, orig_len).
    type PcapRec<'a> = (u32, u32, &'a [u8], u32);

    fn rec(sec: u32, frac: u32, data: &[u8]) -> PcapRec<'_> {
        (sec, frac, data, data.len() as u32)
    }

    fn pcap_header(big: bool, nano: bool, snaplen: u32, linktype: u32) -> Vec<u8> {
        let magic = if nano { PCAP_MAGIC_NS } else { PCAP_MAGIC_US };
        let mut out = u32s(big, &[magic]);
        out.extend(u16s(big, &[2, 4]));
        out.extend(u32s(big, &[0, 0, snaplen, linktype]));
        out
    }

    fn pcap_records(big: bool, records: &[PcapRec]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(sec, frac, data, orig) in records {
            out.extend(u32s(big, &[sec, frac, data.len() as u32, orig]));
            out.extend_from_slice(data);
        }
        out
    }

    fn pcap(records: &[PcapRec]) -> Vec<u8> {
        let mut out = pcap_header(false, false, 65535, 1);
        out.extend(pcap_records(false, records));
        out
    }

    fn pad4(v: &mut Vec<u8>) {
        v.resize(v.len().next_multiple_of(4), 0);
    }

    fn block_e(btype: u32, body: &[u8], big: bool) -> Vec<u8> {
        let mut body = body.to_vec();
        pad4(&mut body);
        let size = body.len() as u32 + 12;
        let mut out = u32s(big, &[btype, size]);
        out.extend(body);
        out.extend(u32s(big, &[size]));
        out
    }

    fn block(btype: u32, body: &[u8]) -> Vec<u8> {
        block_e(btype, body, false)
    }

    fn option_e(code: u16, value: &[u8], big: bool) -> Vec<u8> {
        let mut out = u16s(big, &[code, value.len() as u16]);
        out.extend_from_slice(value);
        pad4(&mut out);
        out
    }

    fn option(code: u16, value: &[u8]) -> Vec<u8> {
        option_e(code, value, false)
    }

    fn shb_e(big: bool) -> Vec<u8> {
        let mut body = u32s(big, &[0x1A2B_3C4D]);
        body.extend(u16s(big, &[1, 0]));
        body.extend([0xFF; 8]); // section length -1
        block_e(SHB, &body, big)
    }

    fn shb() -> Vec<u8> {
        shb_e(false)
    }

    fn idb_e(linktype: u16, options: &[u8], big: bool, snaplen: u32) -> Vec<u8> {
        let mut body = u16s(big, &[linktype, 0]);
        body.extend(u32s(big, &[snaplen]));
        body.extend_from_slice(options);
        block_e(IDB, &body, big)
    }

    fn idb(options: &[u8]) -> Vec<u8> {
        idb_e(1, options, false, 0)
    }

    fn epb_e(ticks: u64, data: &[u8], iface: u32, options: &[u8], big: bool) -> Vec<u8> {
        let (hi, lo) = ((ticks >> 32) as u32, ticks as u32);
        let mut body = u32s(
            big,
            &[iface, hi, lo, data.len() as u32, data.len() as u32 + 10],
        );
        body.extend_from_slice(data);
        pad4(&mut body);
        body.extend_from_slice(options);
        block_e(EPB, &body, big)
    }

    fn epb(ticks: u64, data: &[u8]) -> Vec<u8> {
        epb_e(ticks, data, 0, &[], false)
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// Deterministic junk bytes (xorshift), in place of Python's random.Random.
    fn junk(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// Byte offsets of the first `count` record headers of a little-endian pcap, and
    /// the offset after them.
    fn pcap_offsets(raw: &[u8], count: usize) -> Vec<usize> {
        let mut offsets = Vec::new();
        let mut pos = 24;
        for _ in 0..count {
            offsets.push(pos);
            pos += 16 + Endian::Little.u32(raw, pos + 8).unwrap() as usize;
        }
        offsets.push(pos);
        offsets
    }

    // -- real captures ---------------------------------------------------------------

    #[test]
    fn readme_table_covers_every_capture() {
        let mut names: Vec<String> = std::fs::read_dir(CAPTURES)
            .expect("shared/captures-real")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.contains(".pcap"))
            .collect();
        names.sort();
        let mut table: Vec<&str> = README_TABLE.iter().map(|r| r.0).collect();
        table.sort();
        assert_eq!(names, table);
    }

    #[test]
    fn open_reads_a_path_as_open_path_does() {
        let name = capture("cs_http_ip4and6.pcapng");
        let mut boxed = open(&name).unwrap();
        let mut plain = open_path(&name).unwrap();
        assert_eq!(drain(&mut boxed), drain(&mut plain));
        assert_eq!(boxed.format(), Format::Pcapng);
    }

    #[test]
    fn real_capture_counts_and_link_types() {
        for (name, count, linktype) in README_TABLE {
            let mut reader = open_path(&capture(name)).unwrap();
            assert_eq!(reader.format() == Format::Pcapng, name.ends_with(".pcapng"));
            let records = drain(&mut reader);
            assert_eq!(records.len(), count, "{name}");
            assert!(records.iter().all(|r| r.linktype == linktype), "{name}");
            let indexes: Vec<u64> = records.iter().map(|r| r.index).collect();
            assert_eq!(indexes, (1..=count as u64).collect::<Vec<_>>(), "{name}");
            assert!(records.iter().all(|r| r.data.len() <= r.orig_len as usize));
            let size = std::fs::metadata(capture(name)).unwrap().len();
            assert_eq!(reader.bytes_read(), size, "{name}");
            assert_eq!(!reader.warnings().is_empty(), name == CORRUPT, "{name}");
        }
    }

    #[test]
    fn nanosecond_file_keeps_sub_microsecond_digits() {
        let (records, _) = read_capture("zeek_http_get-to-ssh-server.pcap");
        // Recorded from pcapfile.py: 1770126425.73256 with its nanoseconds.
        assert_eq!(records[0].ts.to_bits(), 0x41da_607f_166e_e243);
        assert_eq!(records[0].data.len(), 74);
    }

    #[test]
    fn big_endian_pcap() {
        let (records, _) = read_capture("tcpdump_pptp.pcap");
        assert_eq!(records[0].ts.to_bits(), 0x41cc_6f91_2192_f430); // 954147395.148077
        assert_eq!((records[0].data.len(), records[0].orig_len), (62, 62));
        assert_eq!(
            records[0].data[..8],
            [0x08, 0x00, 0x20, 0x9f, 0x6b, 0x72, 0x00, 0x00]
        );
    }

    #[test]
    fn corrupt_capture_resynchronises_after_three_stray_bytes() {
        let (records, warnings) = read_capture(CORRUPT);
        assert_eq!(records.len(), 199);
        assert_eq!(
            warnings,
            ["record 19 at byte 3695: damaged record header; skipped 3 bytes and resynchronised"]
        );
        assert_eq!(records[18].ts.to_bits(), 0x41d7_4fc9_9ec4_6a2b); // 1564419707.06898
        assert!((0.0..60.0).contains(&(records[18].ts - records[17].ts)));
    }

    #[test]
    fn pcapng_nanosecond_timestamps_match_python() {
        let mut reader = open_path(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../captures/close-end.pcapng"
        ))
        .unwrap();
        let records = drain(&mut reader);
        let bits: Vec<u64> = records[..3].iter().map(|r| r.ts.to_bits()).collect();
        // Recorded from pcapfile.py (if_tsresol 9); the naive f64 division misses some.
        assert_eq!(
            bits,
            [
                0x41da_c249_cda1_0e43,
                0x41da_c249_cda1_0eac,
                0x41da_c249_cda1_0efe
            ]
        );
        assert_eq!(
            records[0].comments,
            ["client opens: SYN (ISN chosen, MSS 65495, wscale 10)"]
        );
    }

    /// (if_tsresol byte, ticks, bits of Python's `ticks / units`).
    const PYTHON_DIVISIONS: [(u8, u64, u64); 24] = [
        (9, 1_700_000_000_123_456_789, 0x41d9_54fc_4007_e6b7),
        (9, 1_700_000_000_000_000_001, 0x41d9_54fc_4000_0000),
        (9, u64::MAX, 0x4211_2e0b_e826_d695),
        (9, 1, 0x3e11_2e0b_e826_d695),
        (6, u64::MAX, 0x42b0_c6f7_a0b5_ed8d),
        (3, 12345, 0x4028_b0a3_d70a_3d71),
        (0, u64::MAX, 0x43f0_0000_0000_0000),
        (19, u64::MAX, 0x3ffd_83c9_4fb6_d2ac),
        (20, 12_345_678_901_234_567_890, 0x3fbf_9add_3746_f65f),
        (27, (1 << 63) + 1, 0x3e43_ce9a_36f2_3c10),
        (28, 3, 0x3a37_c4b9_0ebc_4813),
        (38, u64::MAX, 0x3c0b_38fb_9daa_78e4),
        (39, u64::MAX, 0x3bd5_c72f_b155_2d83),
        (55, 7, 0x34b1_29f8_a187_fd73),
        (56, u64::MAX, 0x384f_62b0_b257_c0d2),
        (127, u64::MAX, 0x2991_5445_81b7_dec2),
        (127, 1, 0x2591_5445_81b7_dec2),
        (0x8A, u64::MAX, 0x4350_0000_0000_0000),
        (0xFF, (1 << 60) + 1, 0x3bc0_0000_0000_0000),
        (0x80, (1 << 53) + 1, 0x4340_0000_0000_0000),
        // Nanosecond times where `ticks as f64 / 1e9` is one ulp off.
        (9, 1_776_747_256_362_804_846, 0x41da_79c0_be17_3832),
        (9, 1_697_515_686_295_091_792, 0x41d9_4b82_2992_e2c9),
        (9, 1_638_169_069_893_389_993, 0x41d8_691e_7b79_2d4d),
        (9, 1_659_075_730_218_853_779, 0x41d8_b8df_248e_01b3),
    ];

    #[test]
    fn tick_division_is_correctly_rounded_like_python() {
        for (tsresol, ticks, bits) in PYTHON_DIVISIONS {
            let got = TickRate::from_tsresol(tsresol).seconds(ticks);
            assert_eq!(got.to_bits(), bits, "tsresol {tsresol}, ticks {ticks}");
        }
        assert_eq!(TickRate::from_tsresol(6), TickRate::MICROSECONDS);
        assert_eq!(TickRate::from_tsresol(200).seconds(0), 0.0);
    }

    #[test]
    fn slow_division_agrees_with_fast_division() {
        let rate = TickRate::from_tsresol(9);
        let d = rate.odd.to_u64().unwrap();
        for ticks in [
            1u64,
            999,
            1 << 53,
            (1 << 53) + 1,
            1_776_747_256_362_804_846,
            u64::MAX,
        ] {
            if let Some(fast) = div_u64(ticks, d) {
                assert_eq!(
                    fast.to_bits(),
                    div_big(ticks, &rate.odd).to_bits(),
                    "{ticks}"
                );
            }
        }
    }

    // -- hand-built files ------------------------------------------------------------

    #[test]
    fn nanosecond_big_endian_pcap() {
        let mut raw = pcap_header(true, true, 65535, 101);
        raw.extend(pcap_records(
            true,
            &[
                rec(1_700_000_000, 123_456_789, b"abc"),
                (1_700_000_001, 999_999_999, b"defg", 70),
            ],
        ));
        let (records, warnings) = read_bytes(&raw);
        assert!(warnings.is_empty());
        assert_eq!(records[0].ts, 1_700_000_000.0 + 123_456_789.0 / 1e9);
        assert_eq!(records[1].ts, 1_700_000_001.0 + 999_999_999.0 / 1e9);
        assert_eq!(
            (
                records[0].linktype,
                &records[0].data[..],
                records[0].orig_len
            ),
            (101, &b"abc"[..], 3)
        );
        assert_eq!(
            (&records[1].data[..], records[1].orig_len, records[1].index),
            (&b"defg"[..], 70, 2)
        );
    }

    #[test]
    fn pcap_linktype_drops_fcs_flag_bits() {
        let mut raw = pcap_header(false, false, 65535, 0x1000_0001);
        raw.extend(pcap_records(false, &[rec(1, 0, b"x")]));
        assert_eq!(read_bytes(&raw).0[0].linktype, 1);
    }

    #[test]
    fn pcapng_two_comments_on_one_packet() {
        let comments = cat(&[
            &option(1, b"first comment"),
            &option(1, "zweite \u{e4}".as_bytes()),
            &option(0, b""),
        ]);
        let raw = cat(&[
            &shb(),
            &idb(&[]),
            &epb_e(5_000_000, b"frame", 0, &comments, false),
            &epb(6_000_000, b"next"),
        ]);
        let (records, _) = read_bytes(&raw);
        assert_eq!(records[0].comments, ["first comment", "zweite \u{e4}"]);
        assert_eq!(
            (&records[0].data[..], records[0].orig_len, records[0].ts),
            (&b"frame"[..], 15, 5.0)
        );
        assert!(records[1].comments.is_empty());
    }

    #[test]
    fn pcapng_comment_is_lossy_utf8_without_trailing_nuls() {
        let comment = option(1, b"caf\xc3\xa9 \xff!\0\0");
        let raw = cat(&[&shb(), &idb(&[]), &epb_e(1, b"x", 0, &comment, false)]);
        assert_eq!(read_bytes(&raw).0[0].comments, ["caf\u{e9} \u{fffd}!"]);
    }

    #[test]
    fn pcapng_timestamp_resolution() {
        for (tsresol, ticks, seconds) in [
            (0x8A, 1024 * 3 + 512, 3.5), // 2^-10
            (9, 1_500_000_000, 1.5),     // 10^-9
            (3, 2500, 2.5),              // 10^-3
        ] {
            let raw = cat(&[&shb(), &idb(&option(9, &[tsresol])), &epb(ticks, b"x")]);
            assert_eq!(read_bytes(&raw).0[0].ts, seconds, "tsresol {tsresol:#x}");
        }
    }

    #[test]
    fn pcapng_time_offset() {
        let raw = cat(&[
            &shb(),
            &idb(&option(14, &1000i64.to_le_bytes())),
            &epb(2_000_000, b"x"),
        ]);
        assert_eq!(read_bytes(&raw).0[0].ts, 1002.0);
    }

    #[test]
    fn pcapng_sections_of_both_byte_orders() {
        // Interface ids restart with each section; the second section is big-endian.
        let raw = cat(&[
            &shb(),
            &idb_e(1, &[], false, 0),
            &idb_e(113, &[], false, 0),
            &epb_e(1_000_000, b"a", 1, &[], false),
            &shb_e(true),
            &idb_e(101, &[], true, 0),
            &epb_e(2_000_000, b"b", 0, &[], true),
        ]);
        let got: Vec<(u32, Vec<u8>, f64)> = read_bytes(&raw)
            .0
            .into_iter()
            .map(|r| (r.linktype, r.data, r.ts))
            .collect();
        assert_eq!(got, [(113, b"a".to_vec(), 1.0), (101, b"b".to_vec(), 2.0)]);
    }

    #[test]
    fn pcapng_simple_and_obsolete_packet_blocks_and_unknown_blocks() {
        let spb = block(SPB, &cat(&[&9u32.to_le_bytes(), b"simple!!!"]));
        let mut old = u16s(false, &[0, 0]);
        old.extend(u32s(false, &[0, 7_000_000, 3, 60]));
        old.extend_from_slice(b"old");
        let custom = block(0x0BAD, b"\x00\x00\x7e\x9d whatever");
        let raw = cat(&[
            &shb(),
            &idb_e(1, &[], false, 5),
            &custom,
            &spb,
            &block(PB, &old),
            &block(NRB, &[0; 8]),
        ]);
        let (records, warnings) = read_bytes(&raw);
        assert!(warnings.is_empty());
        assert_eq!(records.len(), 2);
        // The SPB's data is cut to the interface's snaplen; it keeps the last timestamp.
        assert_eq!(
            (&records[0].data[..], records[0].orig_len),
            (&b"simpl"[..], 9)
        );
        assert_eq!(records[0].ts, 0.0);
        let old = &records[1];
        assert_eq!(
            (&old.data[..], old.orig_len, old.ts, old.index),
            (&b"old"[..], 60, 7.0, 2)
        );
    }

    #[test]
    fn pcapng_packet_on_undefined_interface_is_skipped_with_warning() {
        let raw = cat(&[
            &shb(),
            &idb(&[]),
            &epb_e(1, b"bad", 3, &[], false),
            &epb(2, b"good"),
        ]);
        let (records, warnings) = read_bytes(&raw);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].data, b"good");
        assert_eq!(
            warnings,
            ["record 1 at byte 48: packet block names an undefined interface; skipped"]
        );
    }

    #[test]
    fn large_file_streams_across_chunks() {
        // Records straddle the 1 MiB chunk boundaries; each one's bytes encode its number.
        let payloads: Vec<Vec<u8>> = (0..4000u32)
            .map(|i| i.to_le_bytes().repeat(200 + i as usize % 700))
            .collect();
        let records: Vec<PcapRec> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| rec(1000 + i as u32, i as u32, p))
            .collect();
        let mut raw = pcap_header(false, false, 0, 1);
        raw.extend(pcap_records(false, &records));
        assert!(raw.len() > 3 * CHUNK);
        let mut reader = CaptureReader::new(IoCursor::new(raw.clone()), "big").unwrap();
        let mut progress = Vec::new();
        let mut seen = Vec::new();
        while let Some(r) = reader.next_record() {
            seen.push(r.data.to_vec());
            progress.push(reader.bytes_read());
        }
        assert_eq!(seen, payloads);
        assert!(progress.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(progress.last().copied(), Some(raw.len() as u64));
    }

    #[test]
    fn largest_records_fit() {
        let big = vec![7u8; MAX_CAPLEN as usize];
        let raw = pcap(&[rec(T0, 0, &big), rec(T0, 1, b"after")]);
        let (records, warnings) = read_bytes(&raw);
        assert!(warnings.is_empty());
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].data.len(), MAX_CAPLEN as usize);

        let body = vec![1u8; MAX_BLOCK as usize - 12];
        let raw = cat(&[
            &shb(),
            &idb(&[]),
            &block(NRB, &body),
            &epb(3_000_000, b"after"),
        ]);
        let (records, warnings) = read_bytes(&raw);
        assert!(warnings.is_empty());
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].data, b"after");
    }

    #[test]
    fn pcapng_block_larger_than_a_chunk() {
        let raw = cat(&[
            &shb(),
            &idb(&[]),
            &block(NRB, &vec![1; CHUNK * 2]),
            &epb(3_000_000, b"after"),
        ]);
        let (records, _) = read_bytes(&raw);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].data, b"after");
    }

    // -- bad input -------------------------------------------------------------------

    fn error_of(raw: &[u8]) -> String {
        let message = CaptureReader::new(IoCursor::new(raw.to_vec()), "f.pcap")
            .err()
            .expect("an error");
        assert!(!message.is_empty() && !message.contains('\n'));
        message
    }

    #[test]
    fn missing_file_and_directory() {
        let dir = TempDir::new("errors");
        let missing = dir.0.join("nope.pcap").to_string_lossy().into_owned();
        assert_eq!(
            open_path(&missing).err(),
            Some(format!("no such file: {missing}"))
        );
        let path = dir.0.to_string_lossy().into_owned();
        assert_eq!(
            open_path(&path).err(),
            Some(format!("{path} is a directory, not a capture file"))
        );
        let empty = dir.write("e.pcap", b"");
        assert_eq!(
            open_path(&empty).err(),
            Some(format!("{empty} is empty (0 bytes), not a capture file"))
        );
        assert_eq!(
            open(&empty).err(),
            Some(format!("{empty} is empty (0 bytes), not a capture file"))
        );
        assert_eq!(
            open(&missing).err(),
            Some(format!("no such file: {missing}"))
        );
    }

    #[test]
    fn not_a_capture() {
        assert_eq!(
            error_of(b""),
            "f.pcap is empty (0 bytes), not a capture file"
        );
        assert_eq!(
            error_of(&junk(1, 4096)[..]).split(" (").next(),
            Some("f.pcap is not a capture file")
        );
        assert!(error_of(&junk(1, 4096)).contains("unknown magic 0x"));
        assert_eq!(
            error_of(b"\x1f"),
            "f.pcap is not a capture file (unknown magic 0x1f; expected pcap or pcapng)"
        );
        let mut gz = b"\x1f\x8b\x08\x00".to_vec();
        gz.extend([0; 40]);
        assert_eq!(
            error_of(&gz),
            "f.pcap is gzip-compressed; decompress it first"
        );
        assert_eq!(
            error_of(&pcap(&[])[..10]),
            "f.pcap is too short for a pcap file header (10 of 24 bytes)"
        );
        let mut bad_bom = shb();
        bad_bom[8..12].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(
            error_of(&bad_bom),
            "f.pcap is not a valid pcapng file (damaged section header)"
        );
        assert_eq!(
            error_of(&shb()[..12]),
            "f.pcap is not a valid pcapng file (damaged section header)"
        );
    }

    #[test]
    fn real_capture_cut_in_the_middle_of_a_record() {
        let raw = std::fs::read(capture("sv_community-id-ipv6.pcap")).unwrap();
        // Recorded from pcapfile.py: record 40 starts at byte 11036 and is 3726 bytes.
        for (cut, expected) in [
            (
                11066,
                "record 40 at byte 11036: file ends in the middle of the record (30 of 3726 \
                 bytes); stopped there",
            ),
            (
                11045,
                "record 40 at byte 11036: file ends in the middle of the record (9 of 16 \
                 bytes); stopped there",
            ),
        ] {
            let (records, warnings) = read_bytes(&raw[..cut]);
            assert_eq!(records.len(), 39);
            assert_eq!(warnings, [expected]);
        }
    }

    #[test]
    fn pcapng_cut_in_the_middle_of_a_block() {
        let raw = std::fs::read(capture("cs_http_ip4and6.pcapng")).unwrap();
        let (records, warnings) = read_bytes(&raw[..raw.len() - 50]);
        assert_eq!(records.len(), 19);
        assert_eq!(
            warnings,
            [
                "record 20 at byte 3304: file ends in the middle of the record (70 of 120 \
              bytes); stopped there"
            ]
        );
    }

    fn six_good() -> Vec<Vec<u8>> {
        (0..6u8).map(|i| vec![i; 60 + i as usize]).collect()
    }

    fn good_records(data: &[Vec<u8>]) -> Vec<PcapRec<'_>> {
        data.iter()
            .enumerate()
            .map(|(i, d)| rec(T0 + i as u32, 1000 * i as u32, d))
            .collect()
    }

    #[test]
    fn junk_between_records_is_skipped() {
        let data = six_good();
        let good = good_records(&data);
        for bad in [vec![0xFF; 3], vec![0; 7], junk(2, 301)] {
            let head = pcap(&good[..3]);
            let raw = cat(&[&head, &bad, &pcap_records(false, &good[3..])]);
            let (records, warnings) = read_bytes(&raw);
            let got: Vec<Vec<u8>> = records.into_iter().map(|r| r.data).collect();
            assert_eq!(got, data);
            assert_eq!(
                warnings,
                [format!(
                    "record 4 at byte {}: damaged record header; skipped {} bytes and \
                     resynchronised",
                    head.len(),
                    bad.len()
                )]
            );
        }
    }

    #[test]
    fn implausible_record_header_is_skipped() {
        // Record 2 claims a microsecond count of a full second, more captured bytes than
        // libpcap's 256 KiB maximum, or more captured bytes than the packet had: it is
        // skipped with its data.
        let x = [b'x'; 20];
        let records: Vec<PcapRec> = (0..4).map(|i| rec(T0 + i, 0, &x)).collect();
        for (field, value) in [(1, 1_000_000u32), (2, 300_000), (3, 5)] {
            let mut raw = pcap(&records);
            let second = 24 + 36;
            raw[second + 4 * field..second + 4 * field + 4].copy_from_slice(&value.to_le_bytes());
            let (got, warnings) = read_bytes(&raw);
            let ts: Vec<f64> = got.iter().map(|r| r.ts).collect();
            assert_eq!(ts, [f64::from(T0), f64::from(T0 + 2), f64::from(T0 + 3)]);
            assert_eq!(
                warnings,
                [
                    "record 2 at byte 60: damaged record header; skipped 36 bytes and \
                  resynchronised"
                ]
            );
        }
    }

    #[test]
    fn record_longer_than_the_header_snaplen_is_read() {
        let (a, b) = ([b'a'; 100], [b'b'; 30]);
        let mut raw = pcap_header(false, false, 64, 1);
        raw.extend(pcap_records(false, &[rec(T0, 0, &a), rec(T0 + 1, 0, &b)]));
        let (records, warnings) = read_bytes(&raw);
        assert_eq!(records.len(), 2);
        assert_eq!((records[0].data.len(), records[1].data.len()), (100, 30));
        assert!(warnings.is_empty());
    }

    #[test]
    fn junk_to_the_end_stops_with_a_warning() {
        let raw = cat(&[&pcap(&[rec(T0, 0, b"abc")]), &[0xFF; 100]]);
        let (records, warnings) = read_bytes(&raw);
        assert_eq!(records.len(), 1);
        assert_eq!(
            warnings,
            [
                "record 2 at byte 43: damaged record header; no valid record in the remaining \
              100 bytes; stopped there"
            ]
        );
    }

    #[test]
    fn resync_lands_on_the_last_record_when_it_ends_the_file() {
        let raw = cat(&[
            &pcap(&[rec(T0, 0, b"abc")]),
            &[0xEE; 5],
            &pcap_records(false, &[rec(T0 + 1, 0, b"last")]),
        ]);
        let (records, warnings) = read_bytes(&raw);
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].data, b"last");
        assert_eq!(
            warnings,
            ["record 2 at byte 43: damaged record header; skipped 5 bytes and resynchronised"]
        );
    }

    #[test]
    fn junk_across_a_chunk_boundary() {
        let data: Vec<Vec<u8>> = (0..2200).map(|i| vec![(i % 251) as u8; 1000]).collect();
        let records: Vec<PcapRec> = data
            .iter()
            .enumerate()
            .map(|(i, d)| rec(T0, i as u32, d))
            .collect();
        let head = pcap(&records[..1030]);
        assert!(head.len() < CHUNK && CHUNK < head.len() + 3000);
        let raw = cat(&[&head, &[0x99; 3000], &pcap_records(false, &records[1030..])]);
        let (got, warnings) = read_bytes(&raw);
        assert_eq!(got.into_iter().map(|r| r.data).collect::<Vec<_>>(), data);
        assert_eq!(
            warnings,
            [format!(
                "record 1031 at byte {}: damaged record header; skipped 3000 bytes and \
                 resynchronised",
                head.len()
            )]
        );
    }

    #[test]
    fn pcapng_damaged_block_length_resynchronises() {
        let mut blocks = vec![shb(), idb(&[])];
        for i in 0..4u8 {
            blocks.push(epb(u64::from(i) * 1_000_000, &[b'A' + i; 10]));
        }
        let mut raw = blocks.concat();
        let third: usize = blocks[..4].iter().map(Vec::len).sum();
        raw[third + 4..third + 8].copy_from_slice(&0xFFFFu32.to_le_bytes());
        let (records, warnings) = read_bytes(&raw);
        let got: Vec<Vec<u8>> = records.into_iter().map(|r| r.data).collect();
        assert_eq!(got, [vec![b'A'; 10], vec![b'B'; 10], vec![b'D'; 10]]);
        assert_eq!(
            warnings,
            [format!(
                "record 3 at byte {third}: damaged record header; skipped {} bytes and \
                 resynchronised",
                blocks[4].len()
            )]
        );
    }

    // -- streaming sources -----------------------------------------------------------

    /// A source that hands out at most a few bytes per read, as a pipe may, then fails
    /// with EIO after `fail_at` bytes if asked to.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        step: usize,
        fail_at: Option<usize>,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.fail_at.is_some_and(|at| self.pos >= at) {
                return Err(std::io::Error::from_raw_os_error(5));
            }
            self.step = self.step % 7 + 1;
            let mut n = self.step.min(buf.len()).min(self.data.len() - self.pos);
            if let Some(at) = self.fail_at {
                n = n.min(at - self.pos);
            }
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn trickle(data: Vec<u8>, fail_at: Option<usize>) -> Trickle {
        Trickle {
            data,
            pos: 0,
            step: 0,
            fail_at,
        }
    }

    #[test]
    fn short_reads_give_the_same_records_and_warnings() {
        for name in [
            CORRUPT,
            "cs_http_ip4and6.pcapng",
            "zeek_ldap_modify-request.pcapng",
        ] {
            let raw = std::fs::read(capture(name)).unwrap();
            let mut reader = CaptureReader::new(trickle(raw.clone(), None), "pipe").unwrap();
            let got = drain(&mut reader);
            let (expected, warnings) = read_bytes(&raw);
            assert_eq!(got, expected, "{name}");
            assert_eq!(reader.warnings(), warnings, "{name}");
            assert_eq!(reader.bytes_read(), raw.len() as u64);
        }
    }

    #[test]
    fn read_error_ends_reading_with_a_warning() {
        let raw = std::fs::read(capture("zeek_http_get-gzip.pcap")).unwrap();
        let offsets = pcap_offsets(&raw, 5);
        let mut reader = CaptureReader::new(trickle(raw.clone(), Some(offsets[5])), "dev").unwrap();
        assert_eq!(drain(&mut reader).len(), 5);
        assert_eq!(
            reader.warnings(),
            [format!(
                "read error after byte {}: Input/output error; stopped there",
                offsets[5]
            )]
        );
        let err = CaptureReader::new(trickle(raw, Some(10)), "dev").err();
        assert_eq!(err.as_deref(), Some("cannot read dev: Input/output error"));
    }

    // -- linear resync, flat memory --------------------------------------------------

    const FIFTY_MIB: usize = 50 << 20;

    /// Zeros after a pcap header are valid empty records (16-byte headers of zeros), as
    /// pcapfile.py reads them: 3.3 million of them, in linear time and flat memory.
    #[test]
    fn pcap_header_then_50_mib_of_zeros_streams_flat() {
        let dir = TempDir::new("zeros");
        let mut raw = pcap_header(false, false, 65535, 1);
        raw.resize(24 + FIFTY_MIB, 0);
        let path = dir.write("zeros.pcap", &raw);
        drop(raw);
        let start = Instant::now();
        let mut reader = open_path(&path).unwrap();
        let mut count = 0u64;
        while let Some(r) = reader.next_record() {
            assert!(r.data.is_empty() && r.ts == 0.0);
            count += 1;
        }
        assert!(start.elapsed() < Duration::from_secs(120));
        assert_eq!(count, (FIFTY_MIB / PCAP_REC_HDR) as u64);
        assert!(reader.warnings().is_empty());
        assert_eq!(reader.bytes_read(), 24 + FIFTY_MIB as u64);
        assert!(
            reader.cursor.win.data.len() <= CHUNK + 64,
            "memory stays flat"
        );
    }

    /// The resync scan over 50 MiB without a plausible record (zeros are no pcapng
    /// block; 0xFF is no pcap record header) is linear: quadratic rescanning would take
    /// hours, linear takes seconds unoptimised.
    #[test]
    fn resync_over_50_mib_without_a_record_is_linear_and_flat() {
        let dir = TempDir::new("resync");
        let ng = cat(&[&shb(), &idb(&[]), &epb(1, b"one")]);
        let classic = pcap(&[rec(T0, 0, b"one")]);
        for (name, head, fill) in [("z.pcapng", ng, 0u8), ("f.pcap", classic, 0xFF)] {
            let at = head.len();
            let mut raw = head;
            raw.resize(at + FIFTY_MIB, fill);
            let path = dir.write(name, &raw);
            drop(raw);
            let start = Instant::now();
            let mut reader = open_path(&path).unwrap();
            assert!(reader.next_record().is_some());
            assert!(reader.next_record().is_none());
            assert!(start.elapsed() < Duration::from_secs(120), "{name}");
            assert_eq!(
                reader.warnings(),
                [format!(
                    "record 2 at byte {at}: damaged record header; no valid record in the \
                     remaining {FIFTY_MIB} bytes; stopped there"
                )]
            );
            assert!(
                reader.cursor.win.data.len() <= CHUNK + 64,
                "memory stays flat"
            );
        }
    }

    // -- no panics -------------------------------------------------------------------

    /// Read everything, decoding each record as the engine will; the record count is
    /// bounded by the input size, so a loop that never ends would show here.
    fn read_and_decode(raw: Vec<u8>) {
        let limit = raw.len() as u64 + 1;
        let Ok(mut reader) = CaptureReader::new(IoCursor::new(raw), "fuzz") else {
            return;
        };
        let mut n = 0u64;
        while let Some(r) = reader.next_record() {
            let _ = crate::decode::decode_segment(
                r.linktype, r.data, r.orig_len, r.ts, r.index, r.comments,
            );
            n += 1;
            assert!(n <= limit);
        }
        let _ = reader.warnings();
        let _ = reader.bytes_read();
    }

    fn real_capture_bytes() -> Vec<Vec<u8>> {
        [
            "cs_http_ip4and6.pcapng",
            "zeek_vlan-collisions.pcap",
            "zeek_redis_attr.pcap",
        ]
        .iter()
        .map(|n| std::fs::read(capture(n)).unwrap())
        .collect()
    }

    fn headers() -> Vec<Vec<u8>> {
        vec![
            pcap_header(false, false, 65535, 1),
            pcap_header(true, true, 0, 276),
            cat(&[&shb(), &idb(&option(9, &[9]))]),
            cat(&[
                &shb_e(true),
                &idb_e(113, &option_e(9, &[0xFF], true), true, 0),
            ]),
            Vec::new(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_bytes_never_panic(
            head in 0usize..5,
            tail in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            read_and_decode(cat(&[&headers()[head], &tail]));
        }

        #[test]
        fn mutated_real_captures_never_panic(
            which in 0usize..3,
            edits in proptest::collection::vec((any::<u32>(), any::<u8>(), 0u8..4), 1..12),
            cut in any::<u32>(),
        ) {
            let mut raw = real_capture_bytes().swap_remove(which);
            for (at, value, kind) in edits {
                let at = at as usize % raw.len().max(1);
                match kind {
                    0 => raw[at] = value,
                    1 => raw.insert(at, value),
                    2 => { raw.drain(at..(at + usize::from(value)).min(raw.len())); }
                    _ => raw.splice(at..at, std::iter::repeat_n(value, 5)).for_each(drop),
                }
                if raw.is_empty() { break; }
            }
            if cut % 4 == 0 {
                raw.truncate(cut as usize % (raw.len() + 1));
            }
            read_and_decode(raw);
        }
    }

    #[test]
    fn captures_dir_exists() {
        assert!(Path::new(CAPTURES).is_dir(), "{CAPTURES}");
    }
}
