"""The Python runtime's writer: an asyncio StreamWriter in a child process.

Run as `python -m tcptrace.backpressure.run_python '<json options>'`. It connects from
127.0.0.2 to the reader, writes the stream chunk by chunk, awaiting `writer.drain()` after
each write unless told to ignore backpressure, and reports on stdout, one JSON object a
line, with `t` in seconds since the epoch (the capture's clock):

  {"type": "hello", "runtime": "python", "version": ..., "high_water_mark": ..., ...}
  {"type": "connected", "local": "127.0.0.2:P", "peer": "127.0.0.1:Q"}
  {"type": "event", "kind": "write_false"|"drain", "app_buffer": n, ...}
  {"type": "sample", "app_buffer": n}                   every `sample_ms`
  {"type": "done", "bytes": n, "digest": sha256 hex}

`pause_writing()` (the transport's buffer passed the high-water mark, so `drain()` blocks)
is asyncio's analogue of Node's `write()` returning false; `resume_writing()` (the buffer
fell to the low-water mark) is its 'drain'. A separate process keeps the writer's memory
(its RSS) apart from the capture's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import sys
import time

from tcptrace.backpressure.stream import chunk_sizes, make_chunk


def emit(message: str, /, **fields) -> None:
    # Positional-only: the "error" message has a field named `message` of its own.
    sys.stdout.write(json.dumps({"type": message, "t": time.time(), **fields}) + "\n")
    sys.stdout.flush()


async def write_all(opts: dict) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if opts.get("sndbuf"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, opts["sndbuf"])
    sock.bind((opts["bind"], 0))
    sock.setblocking(False)
    await loop.sock_connect(sock, (opts["host"], opts["port"]))
    _, writer = await asyncio.open_connection(sock=sock)
    transport = writer.transport
    low, high = transport.get_write_buffer_limits()
    local, peer = sock.getsockname(), sock.getpeername()
    emit("connected", local=f"{local[0]}:{local[1]}", peer=f"{peer[0]}:{peer[1]}",
         sndbuf=sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
         high_water_mark=high, low_water_mark=low)

    protocol = transport.get_protocol()
    pause_writing, resume_writing = protocol.pause_writing, protocol.resume_writing

    def on_pause() -> None:
        emit("event", kind="write_false", app_buffer=transport.get_write_buffer_size(),
             detail="pause_writing(): buffer above the high-water mark, drain() blocks")
        pause_writing()

    def on_resume() -> None:
        emit("event", kind="drain", app_buffer=transport.get_write_buffer_size(),
             detail="resume_writing(): buffer at the low-water mark, drain() returns")
        resume_writing()

    # This one transport's flow-control callbacks, wrapped (asyncio has no hook for them).
    protocol.pause_writing = on_pause  # type: ignore[method-assign]  # wraps one instance's
    protocol.resume_writing = on_resume  # type: ignore[method-assign]  # wraps one instance's

    async def sample() -> None:
        while True:
            emit("sample", app_buffer=transport.get_write_buffer_size())
            await asyncio.sleep(opts["sample_ms"] / 1000)

    sampler = asyncio.create_task(sample())
    digest, written = hashlib.sha256(), 0
    seed = opts["seed"].encode()
    for index, size in chunk_sizes(opts["bytes"], opts["chunk"]):
        data = make_chunk(seed, index, size)     # a fresh chunk, like a real producer's
        digest.update(data)
        writer.write(data)
        written += size
        if opts["ignore"]:
            await asyncio.sleep(0)               # let the loop run; never wait for room
        else:
            await writer.drain()
    emit("written", bytes=written, app_buffer=transport.get_write_buffer_size())
    while transport.get_write_buffer_size():     # everything handed to the kernel
        await asyncio.sleep(0.005)
    emit("flushed", app_buffer=0)
    writer.close()                               # FIN after the kernel's queue
    await writer.wait_closed()
    sampler.cancel()
    emit("done", bytes=written, digest=digest.hexdigest())


def main(argv: list[str]) -> int:
    opts = json.loads(argv[0])
    emit("hello", runtime="python", version=sys.version.split()[0], pid_rss_source="/proc")
    try:
        asyncio.run(write_all(opts))
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        emit("error", message=f"{type(e).__name__}: {e}")
        return 1
    return 0


def start(opts: dict, sndbuf: int | None):
    """Start this writer in a child process (the same interpreter as tcptrace)."""
    import subprocess

    argv = [sys.executable, "-m", "tcptrace.backpressure.run_python",
            json.dumps({**opts, "sndbuf": sndbuf})]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
