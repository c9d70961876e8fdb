"""The bytes a writer sends: a deterministic stream both runtimes can produce chunk by chunk.

Chunk i is SHAKE-256(seed || i as 8 big-endian bytes), cut to its size. Each chunk is a fresh
allocation (a real producer's data), so a writer that ignores backpressure really holds the
queued chunks in its heap; and the reader can check every byte, in order, without being
told what was sent. Node computes the same chunks with crypto's 'shake256'.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

CHUNK = 64 * 1024
DEFAULT_SEED = b"tcptrace-backpressure"


def chunk_sizes(total: int, chunk: int = CHUNK) -> Iterator[tuple[int, int]]:
    index = 0
    while total > 0:
        size = min(chunk, total)
        yield index, size
        total -= size
        index += 1


def make_chunk(seed: bytes, index: int, size: int) -> bytes:
    return hashlib.shake_256(seed + index.to_bytes(8, "big")).digest(size)


def stream_digest(seed: bytes, total: int, chunk: int = CHUNK) -> str:
    """sha256 hex of the whole stream the writer is meant to send."""
    h = hashlib.sha256()
    for index, size in chunk_sizes(total, chunk):
        h.update(make_chunk(seed, index, size))
    return h.hexdigest()
