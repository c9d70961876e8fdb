"""The Node.js runtime's writer: tcptrace/node/backpressure.js in a child process.

The script reports `socket.write()`'s real return values, `writableLength`,
`writableHighWaterMark` and 'drain' events as JSON lines (see the script's header). Node
has no API for SO_SNDBUF on a TCP socket, so with `--sndbuf` tcptrace creates, sizes,
binds and connects the socket itself and hands the connected descriptor to Node.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from importlib import resources

from tcptrace.errors import TcptraceError


def script_path() -> str:
    return str(resources.files("tcptrace") / "node" / "backpressure.js")


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        raise TcptraceError("--runtime node needs Node.js: `node` was not found on PATH")
    return node


def start(opts: dict, sndbuf: int | None) -> subprocess.Popen:
    """Start the Node writer; `opts` as for the Python writer (host, port, bind, bytes...)."""
    node = node_binary()
    if not sndbuf:
        return _popen([node, script_path(), json.dumps(opts)], ())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        sock.bind((opts["bind"], 0))
        sock.connect((opts["host"], opts["port"]))
        fd = sock.fileno()
        return _popen([node, script_path(), json.dumps({**opts, "fd": fd})], (fd,))
    finally:
        sock.close()   # the child holds its own copy of the descriptor


def _popen(argv: list[str], pass_fds) -> subprocess.Popen:
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, pass_fds=pass_fds)
