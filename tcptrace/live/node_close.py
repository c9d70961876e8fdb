"""The Node.js runtime of `tcptrace close`: tcptrace/node/close.js makes the closing calls.

Python connects and accepts (so both ports are known to the capture before the SYN), then
passes both descriptors to Node and closes its own: from then on Node holds the only
references (`ss -p` mid-run lists node alone as the owner of both sockets), so every FIN
or RST on the wire follows from a Node call. The two processes talk in JSON lines (see the
script's header); at each `step` Python asks `ss` where the sockets are before letting
Node go on.

An fd-wrapped socket gets a real TCP handle, so `resetAndDestroy()` works on it (checked:
it sends an RST and the peer reads ECONNRESET); Node never has to listen or connect.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
from importlib import resources

from tcptrace.errors import TcptraceError
from tcptrace.live.loopback import Stage
from tcptrace.model import TcpState

# What close.js calls in each mode, for the ladder's header.
NODE_CALLS = {
    "end": "closer socket.end(): FIN once Node's write queue has drained",
    "destroy": "closer socket.destroy(): closes the descriptor (FIN, unless data is unread)",
    "close": "closer socket.destroy() with nothing unread (Node has no plain close())",
    "reset": "closer socket.resetAndDestroy(): SO_LINGER {on, 0}, an RST",
    "unread": "closer socket.destroy() on a socket paused before data arrived",
    "half-close": "closer socket.end() with allowHalfOpen; the peer keeps writing",
    "simultaneous": "socket.end() on both sockets at the same moment (two threads)",
}
NODE_MODES = tuple(NODE_CALLS)   # the modes close.js knows
SILENCE = 10.0        # seconds without a line from node before we give up on it
STEP_TIMEOUT = 1.0    # how long a step waits for the expected states


def script_path() -> str:
    return str(resources.files("tcptrace") / "node" / "close.js")


def run_node_scenario(stage: Stage, mode: str, closer: str, pending: int) -> dict:
    """Drive `mode` with Node's net module on the stage's two sockets (not yet connected).

    Records Node's calls and events and the `ss` snapshots through `stage.rec`; returns
    {"written", "delivered"}: bytes the closer queued at the close call, and how many of
    them the peer application read.
    """
    if mode not in NODE_MODES:
        raise TcptraceError(f"--runtime node has no mode {mode!r} "
                            f"(one of: {', '.join(NODE_MODES)})")
    if closer == "both":    # simultaneous: the client's end() is simply the one timed first
        closer = "client"
    if closer not in ("client", "server"):
        raise TcptraceError(f"--closer must be client or server, not {closer!r}")
    node = shutil.which("node")
    if node is None:
        raise TcptraceError("node (Node.js) was not found on PATH: install Node.js or use "
                            "--runtime python")
    stage.connect()
    stage.rec.wait_for("handshake done", client=TcpState.ESTABLISHED,
                       server=TcpState.ESTABLISHED)
    client, server = stage.pair
    fds = (client.detach(), server.detach())
    opts = {"client_fd": fds[0], "server_fd": fds[1], "mode": mode, "closer": closer,
            "pending": pending}
    try:
        # A session of its own: Ctrl-C reaches only us, and we stop node (below).
        proc = subprocess.Popen([node, script_path(), json.dumps(opts)], pass_fds=fds,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
    finally:
        for fd in fds:
            os.close(fd)   # the child has its own copies; the sockets live while it runs
    try:
        counts = _converse(stage, proc, mode)
        assert proc.stdin is not None       # stdin=PIPE
        proc.stdin.close()
        try:
            proc.wait(SILENCE)
        except subprocess.TimeoutExpired:
            raise TcptraceError(f"node did not exit after --mode {mode} was done") from None
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        raise TcptraceError(f"node failed in --mode {mode}: {_last_line(proc)}")
    return counts


def _converse(stage: Stage, proc: subprocess.Popen[str], mode: str) -> dict:
    assert proc.stdin is not None       # stdin=PIPE
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=SILENCE)
        except queue.Empty:
            raise TcptraceError(f"node sent nothing for {SILENCE:g} s in --mode {mode}; "
                                "stopped it") from None
        if line is None:
            proc.wait()
            raise TcptraceError(f"node exited before --mode {mode} was done: {_last_line(proc)}")
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            raise TcptraceError(f"node printed something that is not JSON: "
                                f"{line.strip()[:80]}") from None
        if msg["type"] == "event":
            stage.rec.event(msg["side"], msg["what"], t=msg["t"])
        elif msg["type"] == "step":
            _await_step(stage, msg)
            try:
                proc.stdin.write("ok\n")
                proc.stdin.flush()
            except BrokenPipeError:
                proc.wait()
                raise TcptraceError(f"node exited in the middle of --mode {mode}: "
                                    f"{_last_line(proc)}") from None
        elif msg["type"] == "done":
            return msg["bytes"]


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _last_line(proc: subprocess.Popen) -> str:
    err = proc.stderr.read().strip().splitlines() if proc.stderr else []
    return err[-1] if err else f"exit status {proc.returncode}"


def _await_step(stage: Stage, step: dict) -> None:
    """Snapshot once `ss` shows what the step expects: states (a name or a list of
    acceptable names: a simultaneous close may end either way) and, with `recv_q`, data
    queued in that side's receive queue."""
    stage.rec.wait_for(step["after"], timeout=STEP_TIMEOUT, recv_q=step.get("recv_q"),
                       **step.get("expect", {}))
