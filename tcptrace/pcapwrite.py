"""Write captured frames to pcapng, with the ladder's explanations as packet comments.

Wireshark and tshark show each comment as `frame.comment`. A path ending in `.pcap`
gets classic pcap instead, for old tools; that format has no place for comments.
The blocks are packed here with `struct`: nanosecond timestamps and exact bytes, no
scapy import, and nothing to dissect.
"""

from __future__ import annotations

import math
import os
import secrets
import struct
from collections.abc import Iterator

from tcptrace import __version__
from tcptrace.errors import TcptraceError
from tcptrace.live.bpf import SNAPLEN


def write_capture(path: str | os.PathLike, frames: list[tuple[float, bytes]],
                  comments: list[list[str]] | None = None, linktype: int = 1) -> None:
    """Write `frames` ((timestamp, frame bytes), in order) to `path`, all or nothing.

    `comments[i]` are frame i's comments, one pcapng comment option each.
    """
    path = os.fspath(path)
    if comments is not None and len(comments) != len(frames):
        raise ValueError(f"{len(comments)} comment lists for {len(frames)} frames")
    if path.lower().endswith(".pcap"):
        chunks = _pcap(frames, linktype)
    else:
        chunks = _pcapng(frames, comments or [[]] * len(frames), linktype)
    # Write beside the target, then rename: a failure never leaves a half-written file.
    directory, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            for chunk in chunks:
                f.write(chunk)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise TcptraceError(f"cannot write {path}: {e.strerror or e}") from None
        raise


def _split(ts: float, per_second: int) -> tuple[int, int]:
    """(seconds, fraction in 1/per_second units), rounded, from the float's exact value."""
    sec = math.floor(ts)
    frac = round((ts - sec) * per_second)  # ts - sec is exact; ts * 1e9 would not be
    return (sec + 1, 0) if frac == per_second else (sec, frac)


def _pcap(frames, linktype: int) -> Iterator[bytes]:
    # Microsecond magic: the variant every reader understands.
    yield struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, linktype)
    for ts, data in frames:
        yield struct.pack("<IIII", *_split(ts, 10**6), len(data), len(data)) + data


def _pcapng(frames, comments, linktype: int) -> Iterator[bytes]:
    yield _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
                 + _options([(4, f"tcptrace {__version__}".encode())]))   # shb_userappl
    yield _block(1, struct.pack("<HHI", linktype, 0, SNAPLEN)
                 + _options([(9, bytes([9]))]))                          # if_tsresol: ns
    for (ts, data), notes in zip(frames, comments, strict=True):
        sec, ns = _split(ts, 10**9)
        t = sec * 10**9 + ns
        yield _block(6, struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(data), len(data))
                     + _pad(data) + _options([(1, n.encode()) for n in notes]))  # opt_comment


def _block(block_type: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def _options(options: list[tuple[int, bytes]]) -> bytes:
    if not options:
        return b""
    packed = b"".join(struct.pack("<HH", code, len(v)) + _pad(v) for code, v in options)
    return packed + struct.pack("<HH", 0, 0)  # opt_endofopt


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)
