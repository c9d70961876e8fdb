"""Grouping segments into connections: keys, roles, port reuse, VLANs, lingering; real
captures. The engine's one grouping, shared by replay and summary: hand-built segments
through `group_segments`, captures through `Scan`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcptrace.engine import Scan, group_segments
from tcptrace.model import ACK, FIN, RST, SYN, Connection, Segment

from segments import segment as seg

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "captures-real"


def group_connections(segments: list[Segment], linger: float = 60.0) -> list[Connection]:
    """The connections, each with its segments, in order of first appearance."""
    done = group_segments(segments, linger)
    assert sorted(s.stream for s in done) == list(range(len(done)))
    return [s.conn for s in sorted(done, key=lambda s: s.stream)]


def read_connections(path: Path) -> tuple[list[Connection], list[str]]:
    """A capture's connections with their segments, in order of first appearance."""
    scan = Scan(path, keep="all")
    conns = [s.conn for s in sorted(scan, key=lambda s: s.stream)]
    return conns, scan.warnings

# TCP connections per file: the README table's "TCP streams" column, except that a
# VLAN-aware reader sees the three copies in zeek_vlan-collisions.pcap as 3 (README).
README_STREAMS = {
    "cs_tcp_teardown.pcapng": 1, "cs_nowebaccess2.pcapng": 1,
    "cs_tcp_zerowindowrecovery.pcapng": 1, "cs_tcp_zerowindowdead.pcapng": 1,
    "cs_http_ip4and6.pcapng": 2, "lw_200722_tcp_anon.pcapng": 2, "lw_simple_http_sll2.pcap": 2,
    "zeek_http_get-gzip.pcap": 1, "zeek_tcp_fin_retransmission.pcap": 1,
    "zeek_http_206_example_b.pcap": 2, "zeek_http-vlan-0.pcap": 1, "zeek_vlan-collisions.pcap": 3,
    "zeek_tls_irc-starttls.pcap": 1, "zeek_tcp_truncated-header.pcap": 1, "zeek_nmap-vsn.pcap": 17,
    "zeek_ftp_ipv6-violation.pcap": 1, "zeek_redis_attr.pcap": 4,
    "zeek_ldap_modify-request.pcapng": 1, "zeek_http_get-to-ssh-server.pcap": 1,
    "sv_community-id-ipv6.pcap": 2, "sv_mqtt-limit-2.pcap": 1, "sv_tcp-empty-sack_tcp-opt.pcap": 1,
    "sv_smtp-to-comma_corrupt.pcap": 1, "tcpreplay_test.pcap": 7, "tcpdump_pptp.pcap": 1,
}


C, S = "10.0.0.1:40000", "10.0.0.2:80"


def handshake_and_close(c=C, s=S, isn=100, vlan=()):
    return [seg(c, s, SYN, isn, vlan=vlan), seg(s, c, SYN | ACK, 900, isn + 1, vlan=vlan),
            seg(c, s, ACK, isn + 1, 901, vlan=vlan), seg(c, s, FIN | ACK, isn + 1, 901, vlan=vlan),
            seg(s, c, FIN | ACK, 901, isn + 2, vlan=vlan), seg(c, s, ACK, isn + 2, 902, vlan=vlan)]


# -- keys and roles ----------------------------------------------------------------------

def test_key_is_the_same_both_ways_and_includes_the_vlan_stack():
    [conn] = group_connections([seg(C, S), seg(S, C)])
    assert len(conn.segments) == 2
    # The same direction again on another VLAN stack is another connection.
    assert [len(c.segments) for c in group_connections([seg(C, S), seg(C, S, vlan=(5,))])] \
        == [1, 1]


def test_loopback_halves_stay_one_connection():
    a, b = "127.0.0.1:50000", "127.0.0.1:8000"
    [conn] = group_connections(handshake_and_close(a, b))
    assert (conn.client, conn.server, len(conn.segments)) == (a, b, 6)
    assert {conn.side_of(s) for s in conn.segments} == {"client", "server"}


def test_two_loopback_connections_to_one_server_port():
    segs = handshake_and_close("127.0.0.1:50000", "127.0.0.1:8000")
    segs += handshake_and_close("127.0.0.1:50001", "127.0.0.1:8000")
    assert [c.client for c in group_connections(segs)] == ["127.0.0.1:50000", "127.0.0.1:50001"]


def test_client_is_the_syn_sender_even_if_the_syn_ack_comes_first():
    segs = [seg(S, C, SYN | ACK, 900, 101), seg(C, S, SYN, 100)]
    [conn] = group_connections(segs)
    assert (conn.client, conn.server, conn.roles_guessed) == (C, S, None)


def test_syn_ack_alone_makes_its_receiver_the_client():
    [conn] = group_connections([seg("10.0.0.2:5000", "10.0.0.1:3000", SYN | ACK)])
    assert (conn.client, conn.server, conn.roles_guessed) == ("10.0.0.1:3000", "10.0.0.2:5000",
                                                              None)


def test_no_syn_guesses_the_lower_port_is_the_server():
    [conn] = group_connections([seg(S, C, FIN | ACK), seg(C, S)])
    assert (conn.client, conn.server) == (C, S)
    assert conn.roles_guessed == "no SYN seen: guessed server = 10.0.0.2:80, the lower port"


def test_no_syn_and_equal_ports():
    [conn] = group_connections([seg("10.0.0.1:7000", "10.0.0.2:7000")])
    assert conn.server == "10.0.0.2:7000" and "equal" in conn.roles_guessed


def test_ipv6_endpoints_are_bracketed():
    [conn] = group_connections([seg("2001:db8::1:40000", "2001:db8::2:443", SYN)])
    assert (conn.client, conn.server) == ("[2001:db8::1]:40000", "[2001:db8::2]:443")


# -- port reuse --------------------------------------------------------------------------

def test_new_syn_after_a_finished_connection_starts_a_new_one():
    conns = group_connections(handshake_and_close(isn=100) + handshake_and_close(isn=5000))
    assert [(len(c.segments), c.segments[0].seq) for c in conns] == [(6, 100), (6, 5000)]


def test_new_syn_after_rst_starts_a_new_one():
    segs = [seg(C, S, SYN, 100), seg(S, C, RST | ACK, 0, 101), seg(C, S, SYN, 7000)]
    assert [len(c.segments) for c in group_connections(segs)] == [2, 1]


def test_retransmitted_syn_after_rst_stays_in_the_connection():
    segs = [seg(C, S, SYN, 100), seg(S, C, RST | ACK, 0, 101), seg(C, S, SYN, 100)]
    assert [len(c.segments) for c in group_connections(segs)] == [3]


def test_syn_on_an_open_connection_does_not_split_it():
    segs = handshake_and_close()[:3] + [seg(C, S, SYN, 9999)]
    assert len(group_connections(segs)) == 1


def test_syn_from_the_side_that_did_not_close_does_not_split():
    # Only the server has sent its FIN: the client's socket is still open (CLOSE-WAIT),
    # so its SYN is a stray on the old connection, not a new one.
    segs = handshake_and_close()[:3] + [seg(S, C, FIN | ACK, 901, 101), seg(C, S, SYN, 9999)]
    assert len(group_connections(segs)) == 1


# -- VLANs -------------------------------------------------------------------------------

def test_copies_on_different_vlan_stacks_are_different_connections():
    segs = []
    for a, b, c in zip(*(handshake_and_close(vlan=v) for v in [(), (42,), (10, 20)]), strict=True):
        segs += [a, b, c]
    conns = group_connections(segs)
    assert [(c.vlan, len(c.segments)) for c in conns] == [((), 6), ((42,), 6), ((10, 20), 6)]


def test_reverse_direction_on_another_vlan_joins_the_connection():
    segs = [seg(C, S, SYN, vlan=(81,)), seg(S, C, SYN | ACK, vlan=(80,)),
            seg(C, S, ACK, vlan=(81,)), seg(S, C, ACK, vlan=(80,))]
    [conn] = group_connections(segs)
    assert (conn.vlan, conn.client, len(conn.segments)) == ((81,), C, 4)


def test_reverse_direction_on_a_third_vlan_after_replies_is_separate():
    segs = [seg(C, S, SYN, vlan=(1,)), seg(S, C, SYN | ACK, vlan=(2,)), seg(S, C, ACK, vlan=(3,))]
    assert [len(c.segments) for c in group_connections(segs)] == [2, 1]


# -- real captures -----------------------------------------------------------------------

def test_readme_table_covers_every_capture():
    assert sorted(README_STREAMS) == sorted(p.name for p in CAPTURES.glob("*.pcap*"))


@pytest.mark.parametrize("name", sorted(README_STREAMS))
def test_connection_count(name):
    conns, _ = read_connections(CAPTURES / name)
    assert len(conns) == README_STREAMS[name]
    for conn in conns:
        syns = [s for s in conn.segments if s.flags & (SYN | ACK) == SYN]
        if syns:
            assert conn.client == syns[0].src_endpoint and conn.roles_guessed is None


def first_closer(conn) -> str:
    return conn.side_of(next(s for s in conn.segments if s.flags & FIN))


def test_vlan_collisions_are_three_client_first_closes():
    conns, _ = read_connections(CAPTURES / "zeek_vlan-collisions.pcap")
    assert [c.vlan for c in conns] == [(), (42,), (10, 20)]
    assert len({(c.client, c.server) for c in conns}) == 1
    assert [first_closer(c) for c in conns] == ["client"] * 3


def test_ldap_directions_on_two_vlans_are_one_connection():
    [conn], _ = read_connections(CAPTURES / "zeek_ldap_modify-request.pcapng")
    assert len(conn.segments) == 17 and conn.server_port == 389
    assert {s.vlan for s in conn.segments} == {(80,), (81,)}
    assert first_closer(conn) == "client"
    assert conn.side_of(next(s for s in conn.segments if s.flags & RST)) == "server"


def test_corrupt_capture_yields_the_whole_session_and_a_warning():
    [conn], warnings = read_connections(CAPTURES / "sv_smtp-to-comma_corrupt.pcap")
    assert len(warnings) == 1 and "resynchronised" in warnings[0]
    assert len(conn.segments) == 199
    assert {conn.side_of(s) for s in conn.segments if s.flags & FIN} == {"client", "server"}


def test_mid_connection_capture_guesses_the_http_server():
    [conn], _ = read_connections(CAPTURES / "cs_tcp_teardown.pcapng")
    assert conn.server_port == 80 and "no SYN seen" in conn.roles_guessed
    assert first_closer(conn) == "server"       # README: the port-80 side sends the first FIN


def test_refused_connection_with_syn_retransmissions_is_one():
    [conn], _ = read_connections(CAPTURES / "cs_nowebaccess2.pcapng")
    flags = [s.flags for s in conn.segments]
    assert flags.count(SYN) == 3 and flags.count(RST | ACK) == 3


def test_bsd_loopback_redis_connections():
    conns, _ = read_connections(CAPTURES / "zeek_redis_attr.pcap")
    refused = [c for c in conns if c.server_ip == "::1"]
    assert len(refused) == 2 and all(c.server == "[::1]:6379" for c in refused)
    assert all([s.flags for s in c.segments] == [SYN, RST | ACK] for c in refused)
    assert all(first_closer(c) == "server" for c in conns if c.server_ip == "127.0.0.1")


def test_a_new_syn_from_a_side_that_already_sent_its_fin_is_a_new_connection():
    # Handshake, the client's FIN and its ACK, then the client's SYN with a fresh ISN:
    # a socket that closed cannot open again, so this is a new connection on the tuple.
    segs = [seg(C, S, SYN, 100, t=0), seg(S, C, SYN | ACK, 500, 101, t=1),
            seg(C, S, ACK, 101, 501, t=2), seg(C, S, FIN | ACK, 101, 501, t=3),
            seg(S, C, ACK, 501, 102, t=4),
            seg(C, S, SYN, 9000, t=5), seg(S, C, SYN | ACK, 7000, 9001, t=6),
            seg(C, S, ACK, 9001, 7001, t=7)]
    conns = group_connections(segs)
    assert [len(c.segments) for c in conns] == [5, 3]
    # The same SYN retransmitted (same ISN) is not a new connection.
    again = group_connections(segs[:5] + [seg(C, S, SYN, 100, t=5)])
    assert len(again) == 1


# -- lingering: one rule for replay and summary --------------------------------------------

def closed(t: float, isn: int = 100) -> list[Segment]:
    """A whole connection, handshake to last ACK, from capture time t."""
    return [seg(C, S, SYN, isn, t=t), seg(S, C, SYN | ACK, 900, isn + 1, t=t + 0.001),
            seg(C, S, ACK, isn + 1, 901, t=t + 0.002),
            seg(C, S, FIN | ACK, isn + 1, 901, t=t + 0.003),
            seg(S, C, FIN | ACK, 901, isn + 2, t=t + 0.004),
            seg(C, S, ACK, isn + 2, 902, t=t + 0.005)]


def test_a_segment_after_the_linger_time_starts_a_new_connection():
    stray = seg(S, C, RST, 902, t=500.0)
    # Within the linger time it belongs to the connection at rest ...
    assert [len(c.segments) for c in group_connections(closed(0) + [stray], linger=600)] \
        == [7]
    # ... after it, that connection is done with and the stray starts its own.
    conns = group_connections(closed(0) + [stray], linger=60)
    assert [len(c.segments) for c in conns] == [6, 1]
    assert conns[1].segments == [stray]


def test_a_connection_not_at_rest_is_never_split_by_a_pause():
    # Still ESTABLISHED: a keep-alive two hours later is the same connection.
    keep_alive = [*closed(0)[:3], seg(C, S, ACK, 100, 901, t=7200.0)]
    assert [len(c.segments) for c in group_connections(keep_alive)] == [4]
    # The server in LAST-ACK (its FIN never ACKed): its retransmitted FIN 100 s later
    # is the same connection too.
    last_ack = [*closed(0)[:5], seg(S, C, FIN | ACK, 901, 102, t=100.0)]
    assert [len(c.segments) for c in group_connections(last_ack)] == [6]


def test_a_connection_at_rest_is_counted_once_with_every_segment():
    # Many connections on other ports, each closed: each is done with once, with all
    # its segments, and stream numbers follow first appearance.
    segs = []
    for i in range(1500):          # more than one housekeeping round of records
        port = 10000 + i
        segs += [seg(f"10.0.0.1:{port}", S, SYN, 100, t=i),
                 seg(S, f"10.0.0.1:{port}", RST | ACK, 0, 101, t=i + 0.001)]
    conns = group_connections(segs)
    assert [c.client_port for c in conns] == [10000 + i for i in range(1500)]
    assert all(len(c.segments) == 2 for c in conns)
