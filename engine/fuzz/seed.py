#!/usr/bin/env python3
"""Seed the fuzz corpora (corpus/ is not committed: run this before fuzzing).

corpus/capture: the capture files themselves (shared real-world captures and the
project's own), as the `capture` target reads them.
corpus/decode: up to 64 distinct frames per capture, each in the `decode` target's
layout (src/decode.rs): link-type byte, mode byte, [original length], frame.
corpus/segments needs no seed: every input is a valid recipe.

Usage: fuzz/seed.py [capture files...]  (default: ../shared/captures-real/*.pcap*
and ../captures/*.pcapng, relative to engine/)
"""

import glob
import hashlib
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# decode.rs's LINKTYPES, in order.
LINKTYPES = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276]
PER_FILE = 64


def pcap_frames(data):
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return
    linktype = struct.unpack(e + "I", data[20:24])[0] & 0xFFFF
    p = 24
    while p + 16 <= len(data):
        _, _, incl, orig = struct.unpack(e + "IIII", data[p:p + 16])
        if incl > 262144 or p + 16 + incl > len(data):
            return
        yield linktype, data[p + 16:p + 16 + incl], orig
        p += 16 + incl


def pcapng_frames(data):
    p, e, linktypes = 0, "<", []
    while p + 12 <= len(data):
        btype = struct.unpack(e + "I", data[p:p + 4])[0]
        if btype == 0x0A0D0D0A:
            bom = data[p + 8:p + 12]
            e = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            linktypes = []
        btype, blen = struct.unpack(e + "II", data[p:p + 8])
        if blen < 12 or p + blen > len(data):
            return
        body = data[p + 8:p + blen - 4]
        if btype == 1:
            linktypes.append(struct.unpack(e + "H", body[:2])[0])
        elif btype == 6 and len(body) >= 20:
            iface, _, _, incl, orig = struct.unpack(e + "IIIII", body[:20])
            if iface < len(linktypes):
                yield linktypes[iface], body[20:20 + incl], orig
        elif btype == 3 and len(body) >= 4 and linktypes:
            orig = struct.unpack(e + "I", body[:4])[0]
            yield linktypes[0], body[4:], orig
        p += blen


def decode_input(linktype, frame, orig):
    head = bytes([LINKTYPES.index(linktype)]) if linktype in LINKTYPES else (
        b"\xf0" + struct.pack(">I", linktype))
    if orig == len(frame):
        return head + b"\x00" + frame
    return head + b"\x02" + struct.pack(">I", orig) + frame


def main(paths):
    if not paths:
        engine = os.path.dirname(HERE)
        project = os.path.dirname(engine)
        paths = sorted(glob.glob(os.path.join(project, "..", "shared", "captures-real", "*.pcap*"))
                       + glob.glob(os.path.join(project, "captures", "*.pcapng")))
    out = {name: os.path.join(HERE, "corpus", name) for name in ("capture", "decode", "segments")}
    for d in out.values():
        os.makedirs(d, exist_ok=True)
    frames = 0
    for path in paths:
        shutil.copy(path, os.path.join(out["capture"], os.path.basename(path)))
        with open(path, "rb") as f:
            data = f.read()
        reader = pcapng_frames if data[:4] == b"\x0a\x0d\x0d\x0a" else pcap_frames
        seen = set()
        for linktype, frame, orig in reader(data):
            item = decode_input(linktype, frame, orig)
            digest = hashlib.sha1(item).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            with open(os.path.join(out["decode"], digest), "wb") as f:
                f.write(item)
            frames += 1
            if len(seen) >= PER_FILE:
                break
    print(f"seeded {len(paths)} captures, {frames} frames into {os.path.join(HERE, 'corpus')}")


if __name__ == "__main__":
    main(sys.argv[1:])
