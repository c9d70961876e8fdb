"""A vanished host: the server lives in a network namespace of the run's own, joined to
the client's namespace by a veth pair, and "loses power": nftables inside its namespace
drops all its traffic, so it sends nothing and hears nothing, as a host without power.

    vanish            the client writes: retransmissions with backoff (the RTO of each
                      from `ss -i`), then ETIMEDOUT from TCP_USER_TIMEOUT
    vanish-keepalive  the client is idle: keepalive probes (SO_KEEPALIVE with short
                      TCP_KEEPIDLE/INTVL/CNT), then ETIMEDOUT
    vanish-return     the host comes back without the connection (its socket discarded
                      without a segment, TCP_REPAIR, as a reboot loses it): the client's
                      next retransmission is answered by an RST

Both namespaces are anonymous (see `netns`): they, the veth pair and the rules vanish
with the run's last socket, also on Ctrl-C, an error or a SIGKILL. The capture is taken
on the client's veth end: what the client's wire saw.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import time
from contextlib import ExitStack

from tcptrace.buffers import read_sysctl
from tcptrace.errors import TcptraceError
from tcptrace.live import close_modes, ending_modes, ss
from tcptrace.live.close_modes import GREETING, Mode, Roles, open_connection
from tcptrace.live.kernel_trace import KernelTrace
from tcptrace.live.loopback import Recorder, Stage
from tcptrace.live.netns import NetNamespace
from tcptrace.model import TcpState, format_endpoint

CLIENT_VETH, SERVER_VETH = "tcptrace-c", "tcptrace-s"
# Documentation prefixes (RFC 5737, RFC 3849): never anyone's real address.
ADDRESSES = {False: ("192.0.2.1", "192.0.2.2", 24), True: ("2001:db8::1", "2001:db8::2", 64)}
USER_TIMEOUT_MS = 3000
KEEPIDLE, KEEPINTVL, KEEPCNT = 1, 1, 3
RETURN_AFTER = 2            # vanish-return: retransmissions before the host is back
POLL = 0.02                 # seconds between `ss` polls while the client waits
TCP_REPAIR = 19             # linux/tcp.h; Python's socket module lacks it
RTO_MIN, RTO_MAX = 0.2, 120.0   # TCP_RTO_MIN and TCP_RTO_MAX (include/net/tcp.h)

# nftables: everything in and out of the server's namespace dropped ("power off").
POWER_OFF = """table inet tcptrace_power {
  chain in { type filter hook input priority 0; policy drop; }
  chain out { type filter hook output priority 0; policy drop; }
}
"""


class VethStage(Stage):
    """The Stage of a vanish run: the client socket in one namespace, the listening
    server in another, the two joined by a veth pair with documentation addresses."""

    def __init__(self, port: int = 0, ipv6: bool = False):
        server_ip, client_ip, prefix = ADDRESSES[ipv6]
        self.server_ip, self.client_ip = server_ip, client_ip
        self.server: socket.socket | None = None
        self._stack = ExitStack()
        try:
            self.client_ns = self._stack.enter_context(NetNamespace())
            self.server_ns = self._stack.enter_context(NetNamespace())
            self._link(prefix)
            family = socket.AF_INET6 if ipv6 else socket.AF_INET
            with self.server_ns.entered():
                self.listener = socket.socket(family, socket.SOCK_STREAM)
            with self.client_ns.entered():
                self.client = socket.socket(family, socket.SOCK_STREAM)
            self.listener.bind((server_ip, port))
            self.listener.listen(1)
            self.client.bind((client_ip, 0))
        except BaseException:
            self.close()
            raise
        self.server_port = self.listener.getsockname()[1]
        self.client_port = self.client.getsockname()[1]
        self.rec = Recorder(client=format_endpoint(client_ip, self.client_port),
                            server=format_endpoint(server_ip, self.server_port),
                            ports=[self.server_port], run_ss=self.run_ss)

    def _link(self, prefix: int) -> None:
        server_ns = f"/proc/{os.getpid()}/fd/{self.server_ns.fd}"
        self.client_ns.run("ip", "link", "add", CLIENT_VETH, "type", "veth", "peer", "name",
                           SERVER_VETH, "netns", server_ns)
        ends = ((self.client_ns, CLIENT_VETH, self.client_ip),
                (self.server_ns, SERVER_VETH, self.server_ip))
        for ns, dev, addr in ends:
            # nodad: an IPv6 address is usable at once, not after duplicate detection
            ns.run("ip", "addr", "add", f"{addr}/{prefix}", "dev", dev,
                   *(["nodad"] if ":" in addr else []))
            ns.run("ip", "link", "set", dev, "up")
        # Each side knows the other's MAC address for good: no ARP or neighbour discovery
        # in the run (measured: the first IPv6 neighbour solicitation on a new veth went
        # unanswered, the SYN waited 1 s, and that 1 s became the kernel's RTT estimate),
        # and a powered-off host's neighbour entry cannot expire mid-run.
        (cns, cdev, _), (sns, sdev, _) = ends
        for ns, dev, peer_ip, peer_ns, peer_dev in ((cns, cdev, self.server_ip, sns, sdev),
                                                    (sns, sdev, self.client_ip, cns, cdev)):
            mac = peer_ns.run("ip", "-br", "link", "show", "dev", peer_dev).split()[2]
            ns.run("ip", "neigh", "replace", peer_ip, "lladdr", mac, "dev", dev,
                   "nud", "permanent")

    def run_ss(self, ports: list[int]) -> list[ss.SocketLine]:
        """`ss` in both namespaces: each side's socket is only visible in its own."""
        lines = []
        for ns in (self.client_ns, self.server_ns):
            with ns.entered():
                lines += ss.run_ss(ports)
        return lines

    def power(self, on: bool) -> None:
        if on:
            self.server_ns.run("nft", "delete", "table", "inet", "tcptrace_power")
        else:
            with self.server_ns.entered():
                _nft(POWER_OFF)

    def __enter__(self) -> VethStage:
        return self

    def close(self) -> None:
        for name in ("client", "server", "listener"):   # those made before any failure
            sock = getattr(self, name, None)
            if sock is not None:
                sock.close()
        self._stack.close()


def _nft(ruleset: str) -> None:
    try:
        proc = subprocess.run(["nft", "-f", "-"], input=ruleset, capture_output=True,
                              text=True)
    except FileNotFoundError:
        raise TcptraceError("`nft` was not found: install nftables "
                            "(apt-get install nftables)") from None
    if proc.returncode != 0:
        raise TcptraceError(f"nft failed: {proc.stderr.strip().splitlines()[:1]}")


def run_vanish_stage(scenario: Mode, port: int, pending: int, closer: str, runtime: str,
                     kernel: bool, ipv6: bool):
    """One vanish run: namespaces, capture on the client's veth, trace, scenario."""
    from tcptrace.live.capture import LoopbackCapture  # imports scapy: only when capturing
    from tcptrace.live.close_run import _NoTrace, finish_run

    if runtime != "python":
        raise TcptraceError(f"--mode {scenario.name} runs in the python runtime only: the "
                            "host vanishes, not a call; Node's sockets would see the same")
    if shutil.which("nft") is None:     # before anything is set up
        raise TcptraceError(f"--mode {scenario.name} needs `nft`: install nftables "
                            "(apt-get install nftables)")
    with VethStage(port, ipv6) as stage, ExitStack() as stack:
        ports = [stage.server_port]
        with stage.client_ns.entered():     # the capture socket belongs where it opens
            cap = stack.enter_context(LoopbackCapture(set(ports), CLIENT_VETH,
                                                      outgoing=True))
        with (KernelTrace(ports) if kernel else _NoTrace()) as trace:
            open_connection(stage)
            counts = scenario.run(Roles(stage, closer), pending)
    run = finish_run(scenario, runtime, closer, pending, stage, cap, trace, counts)
    _unheard(run)
    return run


POWER_OFF_EVENT = "the host loses power"
POWER_ON_EVENT = "the host is back"


def _unheard(run) -> None:
    """The capture is the client's end: the engine infers the server's state from
    segments as if they arrived. What the client sent while the host was down never
    did; those rows get the server's real state (from its kernel: tracepoints and
    `ss`) and say so."""
    off = next((e.t for e in run.events if e.what.startswith(POWER_OFF_EVENT)), None)
    on = next((e.t for e in run.events if e.what.startswith(POWER_ON_EVENT)), float("inf"))
    if off is None:
        return
    for view in run.views:
        seg = view.segment
        if seg is None or view.sender != "client" or seg.t < off:
            continue
        view.server_state = _server_state_at(run, seg.t)
        if seg.t < on:
            view.note += "; dropped by the powered-off host: the server never saw it"


def _server_state_at(run, t: float) -> str:
    """The server's state at `t` by its kernel: the latest tracepoint transition or
    `ss` snapshot before `t`."""
    known = [(x.t, x.new) for x in run.transitions if x.side == "server" and x.t <= t]
    known += [(o.t, o.server) for o in run.observations if o.t <= t]
    return max(known)[1] if known else TcpState.ESTABLISHED


# --- the scenarios -----------------------------------------------------------------------

def _veth(r: Roles) -> VethStage:
    assert isinstance(r.stage, VethStage), "a vanish mode runs on a VethStage"
    return r.stage


def _power_off(r: Roles) -> None:
    r.rec.event("server", f"{POWER_OFF_EVENT}: nftables in its namespace drops every "
                          "packet in and out; its socket is still ESTABLISHED, silent")
    _veth(r).power(on=False)


def _wait_for_error(r: Roles, until_retrans: int | None = None) -> tuple[str, float, list]:
    """Poll the client's socket and `ss` until a socket error (or, with `until_retrans`,
    until that many retransmission timeouts): (error name or "", when, [(timeouts, rto
    ms, retransmissions in all)])."""
    client = r.sock("client")
    client.setblocking(False)
    seen: list[tuple[int, str, str]] = []
    last = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([client], [], [], POLL)
        if ready:
            try:
                client.recv(1)
            except OSError as exc:
                t = time.time()
                return ending_modes.errname(exc), t, seen
        obs = r.rec.snapshot("poll")
        r.rec.observations.pop()    # kept only when something changed (below)
        timer = obs.details.get("client", {}).get("timer", {})
        count = timer.get("retrans", 0)
        if count > last:
            last = count
            if timer.get("name") == "keepalive":
                obs.after = f"keepalive probe {count} unanswered"
            else:
                line = ss.find_socket(_veth(r).run_ss(r.rec.ports), r.rec.client,
                                      r.rec.server)
                rto = line.info.get("rto", "?") if line else "?"
                total = line.info.get("retrans", "/?").partition("/")[2] if line else "?"
                seen.append((count, rto, total))
                obs.after = f"retransmission timeout {count}; ss -i: rto:{rto}ms"
            r.rec.observations.append(obs)
            if until_retrans is not None and count >= until_retrans:
                return "", obs.t, seen
    raise TcptraceError("the client saw no error within 30 s of the host vanishing")


def _retries_model(retries: int, rto_max: float = RTO_MAX) -> float:
    """Seconds until ETIMEDOUT after `retries` retransmissions, as the kernel computes
    it (tcp_model_timeout, net/ipv4/tcp_timer.c): RTO from TCP_RTO_MIN doubling up to
    the largest RTO."""
    thresh = int(rto_max / RTO_MIN).bit_length() - 1       # ilog2(600) = 9
    if retries <= thresh:
        return ((2 << retries) - 1) * RTO_MIN
    return ((2 << thresh) - 1) * RTO_MIN + (retries - thresh) * rto_max


def _rto_max() -> float:
    """The largest RTO: net.ipv4.tcp_rto_max_ms where the kernel has it (6.15 on),
    else TCP_RTO_MAX."""
    try:
        return int(read_sysctl("net.ipv4.tcp_rto_max_ms")) / 1000
    except (OSError, ValueError):
        return RTO_MAX


def _rto_facts(seen: list) -> dict:
    return {"rto_ms": [int(rto) for _, rto, _ in seen if rto.isdigit()]}


def _rto_findings(seen: list) -> list[str]:
    if not seen:
        return ["ss saw no retransmission timer running"]
    out = ["the RTO after each retransmission timeout, from ss -i: " + ", ".join(
        f"#{n} {rto} ms" for n, rto, _ in seen) + " (doubling: exponential backoff)"]
    count, _, total = seen[-1]
    if total.isdigit() and int(total) > count:
        out.append(f"ss -i counts {total} retransmissions in all (retrans:) but {count} "
                   "timeouts: the others were tail loss probes (RFC 8985), sent before "
                   "the first timeout")
    return out


def run_vanish(r: Roles, pending: int) -> dict:
    """The server vanishes; the client writes, retransmits with backoff, and gives up
    after TCP_USER_TIMEOUT with ETIMEDOUT: no FIN, no RST, from either side."""
    client = r.sock("client")
    r.call("client", f"setsockopt(TCP_USER_TIMEOUT, {USER_TIMEOUT_MS} ms)", client.setsockopt,
           socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, USER_TIMEOUT_MS)
    _power_off(r)
    started = time.time()
    r.call("client", f"write({len(GREETING)} bytes) to the vanished host", client.send,
           GREETING)
    error, t, seen = _wait_for_error(r)
    r.rec.event("client", f"read() failed: {error}, {t - started:.2f} s after the write", t=t)
    r.rec.wait_for("the client gave up", client=TcpState.CLOSED, server=TcpState.ESTABLISHED)
    retries = int(read_sysctl("net.ipv4.tcp_retries2"))
    rto_max = _rto_max()
    default = _retries_model(retries, rto_max)
    facts = {"error": error, "error_after_s": round(t - started, 3),
             "user_timeout_ms": USER_TIMEOUT_MS, "tcp_retries2": retries,
             "default_timeout_s": round(default, 1), **_rto_facts(seen)}
    return {"written": 0, "delivered": 0, "facts": facts, "findings": [
        f"the client got {error} {t - started:.2f} s after its write "
        f"(TCP_USER_TIMEOUT {USER_TIMEOUT_MS} ms); the server never knew",
        *_rto_findings(seen),
        f"without TCP_USER_TIMEOUT: net.ipv4.tcp_retries2 = {retries} here, so the kernel "
        f"gives up after about {default:,.1f} s ({default / 60:.1f} min) of retransmissions "
        f"(its model: RTO from {RTO_MIN * 1000:.0f} ms doubling up to {rto_max:g} s)",
    ]}


def run_vanish_keepalive(r: Roles, pending: int) -> dict:
    """The server vanishes while the client is idle: keepalive probes, unanswered, then
    ETIMEDOUT."""
    client = r.sock("client")
    for opt, name, value in ((socket.SOL_SOCKET, "SO_KEEPALIVE", 1),
                             (socket.IPPROTO_TCP, "TCP_KEEPIDLE", KEEPIDLE),
                             (socket.IPPROTO_TCP, "TCP_KEEPINTVL", KEEPINTVL),
                             (socket.IPPROTO_TCP, "TCP_KEEPCNT", KEEPCNT)):
        client.setsockopt(opt, getattr(socket, name), value)
    r.rec.event("client", f"setsockopt: SO_KEEPALIVE on, TCP_KEEPIDLE {KEEPIDLE} s, "
                          f"TCP_KEEPINTVL {KEEPINTVL} s, TCP_KEEPCNT {KEEPCNT}")
    _power_off(r)
    started = time.time()
    r.rec.event("client", "idle: waits in read()")
    error, t, _ = _wait_for_error(r)
    r.rec.event("client", f"read() failed: {error}, {t - started:.2f} s after the host "
                          "vanished", t=t)
    r.rec.wait_for("the client gave up", client=TcpState.CLOSED, server=TcpState.ESTABLISHED)
    idle, intvl, probes = (int(read_sysctl("net.ipv4." + n)) for n in (
        "tcp_keepalive_time", "tcp_keepalive_intvl", "tcp_keepalive_probes"))
    default = idle + intvl * probes
    facts = {"error": error, "error_after_s": round(t - started, 3), "keepidle_s": KEEPIDLE,
             "keepintvl_s": KEEPINTVL, "keepcnt": KEEPCNT, "tcp_keepalive_time": idle,
             "tcp_keepalive_intvl": intvl, "tcp_keepalive_probes": probes,
             "default_detection_s": default}
    return {"written": 0, "delivered": 0, "facts": facts, "findings": [
        f"the client got {error} {t - started:.2f} s after the host vanished (keepalive "
        f"{KEEPIDLE} s idle + {KEEPCNT} probes x {KEEPINTVL} s)",
        f"with this machine's defaults (SO_KEEPALIVE on, nothing else set): "
        f"net.ipv4.tcp_keepalive_time = {idle} s, tcp_keepalive_intvl = {intvl} s, "
        f"tcp_keepalive_probes = {probes}: {default:,} s ({default / 3600:.1f} h) before "
        "a dead peer is noticed; without SO_KEEPALIVE, never (an idle socket sends nothing)",
    ]}


def run_vanish_return(r: Roles, pending: int) -> dict:
    """The server vanishes, the client's write is retransmitted; the host comes back
    without the connection: the next retransmission is answered by an RST."""
    client, server = r.sock("client"), r.sock("server")
    _power_off(r)
    started = time.time()
    r.call("client", f"write({len(GREETING)} bytes) to the vanished host", client.send,
           GREETING)
    _, _, seen = _wait_for_error(r, until_retrans=RETURN_AFTER)
    # TCP_REPAIR: close() then discards the socket without a FIN or RST, as a reboot
    # discards all state (needs CAP_NET_ADMIN).
    server.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    r.call("server", "the host reboots: its socket is discarded without a segment "
                     "(setsockopt(TCP_REPAIR) then close())", server.close)
    _veth(r).power(on=True)
    r.rec.event("server", f"{POWER_ON_EVENT}: nftables rules removed; no socket for the "
                          "old connection")
    client.setblocking(True)
    client.settimeout(30)
    try:
        client.recv(1)
        error = "no error"
    except OSError as exc:
        error = ending_modes.errname(exc)
    t = time.time()
    r.rec.event("client", f"read() failed: {error}, {t - started:.2f} s after the write", t=t)
    r.rec.wait_for("the client got the RST", client=TcpState.CLOSED, server=TcpState.CLOSED)
    facts = {"error": error, "error_after_s": round(t - started, 3), **_rto_facts(seen)}
    return {"written": 0, "delivered": 0, "facts": facts, "findings": [
        f"the client got {error} {t - started:.2f} s after its write: the returned host's "
        "kernel has no socket for the segment and answers with an RST (RFC 9293 3.5.2, "
        "a half-open connection)",
        *_rto_findings(seen),
    ]}


WHERE = ("client and server in two network namespaces of the run's own, joined by a veth "
         "pair; captured on the client's end")

MODES = (
    Mode("vanish", "the server's host loses power (nftables drops all its traffic); the "
         f"client writes and retransmits until TCP_USER_TIMEOUT ({USER_TIMEOUT_MS} ms)",
         "socket.setTimeout() does not do this; TCP_USER_TIMEOUT is not in net",
         run_vanish, closer="server", stage=run_vanish_stage,
         where=WHERE),
    Mode("vanish-keepalive", "the server's host loses power while the client is idle; "
         f"keepalive (idle {KEEPIDLE} s, {KEEPCNT} probes {KEEPINTVL} s apart) notices",
         f"socket.setKeepAlive(true, {KEEPIDLE * 1000}) sets the idle time; net has no "
         "option for the probe interval and count", run_vanish_keepalive, closer="server",
         stage=run_vanish_stage, where=WHERE),
    Mode("vanish-return", "the server's host loses power, then comes back without the "
         "connection; the client's next retransmission meets an RST",
         "the same in Node: the RST surfaces as 'error' ECONNRESET", run_vanish_return,
         closer="server", stage=run_vanish_stage,
         where=WHERE),
)
close_modes.MODES.update((m.name, m) for m in MODES)
