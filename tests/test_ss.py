"""`ss` parsing on output recorded from real runs on loopback (tests/data/ss)."""

from pathlib import Path

from tcptrace.annotate import describe_recv_q
from tcptrace.live.ss import parse_line, parse_output, ss_command, state_of

DATA = Path(__file__).parent / "data" / "ss"


def load(name):
    return parse_output((DATA / f"{name}.txt").read_text())


def test_established_pair_and_listener():
    lines = load("established")
    assert [s.state for s in lines] == ["LISTEN", "ESTABLISHED", "ESTABLISHED"]
    client = next(s for s in lines if s.local.startswith("127.0.0.2:"))
    server_side = next(s for s in lines if s.peer == client.local)
    assert server_side.recv_q == 5            # the 5 bytes the server has not read
    assert client.shutdown == "<->"
    assert client.info["wscale"] == "10,10"


def test_half_close_states_and_shutdown_markers():
    lines = load("fin-wait-2_close-wait")
    client = next(s for s in lines if s.local.startswith("127.0.0.2:"))
    assert client.state == "FIN-WAIT-2" and client.shutdown == "<--"
    server = next(s for s in lines if s.peer == client.local)
    assert server.state == "CLOSE-WAIT" and server.shutdown == "-->"
    assert server.recv_q == 6                 # 5 unread bytes + the unread FIN counts as 1


def test_time_wait_timer_and_vanished_peer():
    lines = load("time-wait")
    client = next(s for s in lines if s.state == "TIME-WAIT")
    assert client.timer == ("timewait", "59sec", 0)
    assert state_of(lines, client.local, client.peer) == "TIME-WAIT"
    assert state_of(lines, client.peer, client.local) == "CLOSED"


def test_rst_leaves_only_the_listener():
    lines = load("after-rst")
    assert [s.state for s in lines] == ["LISTEN"]
    assert state_of(lines, "127.0.0.2:1", "127.0.0.1:43117") == "CLOSED"


def test_persist_timer_and_socket_memory():
    lines = load("zero-window-persist")
    sender = next(s for s in lines if s.local.startswith("127.0.0.2:"))
    assert sender.timer[0] == "persist"
    assert sender.skmem["w"] > 0 and sender.skmem["tb"] >= sender.send_q // 2
    assert 0 < int(sender.info["notsent"]) <= sender.send_q   # queued, never sent
    receiver = next(s for s in lines if s.peer == sender.local)
    assert receiver.skmem["rb"] == 8192       # SO_RCVBUF 4096, doubled by Linux


def test_unparseable_lines_are_skipped():
    assert parse_line("") is None
    assert parse_line("Netid State Recv-Q Send-Q") is None
    assert parse_output("garbage\n\n") == []


def test_command_filters_both_ports_in_the_kernel():
    cmd = ss_command([80, 4242])
    assert cmd[:2] == ["ss", "-H"] and "state" in cmd and "all" in cmd
    assert cmd[-1] == "( sport = :80 or dport = :80 or sport = :4242 or dport = :4242 )"


def test_a_pending_fin_is_named_in_recv_q():
    close_wait = next(s for s in load("fin-wait-2_close-wait") if s.state == "CLOSE-WAIT")
    # Recorded with 5 unread bytes + the FIN: 6 is data and FIN; 1 alone is the FIN.
    assert describe_recv_q(close_wait.to_json()) == "Recv-Q 6"
    assert describe_recv_q({"state": "CLOSE-WAIT", "recv_q": 1}) == "Recv-Q 1 (the FIN, not data)"
    assert describe_recv_q({"state": "ESTABLISHED", "recv_q": 1}) == "Recv-Q 1"
