"""The ladder rows: relative numbers and times, pcapng comments, and the notes."""

from __future__ import annotations

from tcptrace.annotate import relative_views
from tcptrace.engine import analyse_segments

from segments import C, S, connection, handshake, seg


def annotate(conn):
    """The ladder rows of a hand-built connection: the engine's steps, phrased."""
    steps, initial, _ = analyse_segments(conn)
    return relative_views(conn, initial, steps)


def notes(*segments):
    return [row.note for row in annotate(connection(*segments))]


def test_rows_carry_relative_numbers_tags_and_comments():
    rows = annotate(connection(seg(100.0, "c", "S", C, mss=65495, wscale=7),
                               seg(100.25, "s", "SA", S, C + 1, comments=("accepted",))))
    assert [(r.t, r.sender, r.flags, r.seq, r.ack) for r in rows] == [
        (0.0, "client", ["SYN"], 0, 0), (0.25, "server", ["SYN", "ACK"], 0, 1)]
    assert rows[1].comments == ("accepted",) and "accepted" not in rows[1].note
    assert rows[0].segment.seq == C


def test_handshake_data_and_four_segment_close():
    assert notes(seg(0, "c", "S", C, mss=65495, wscale=7),
                 seg(0.0001, "s", "SA", S, C + 1, mss=65495, wscale=7),
                 seg(0.0002, "c", "A", C + 1, S + 1),
                 seg(0.010, "c", "PA", C + 1, S + 1, length=5),
                 seg(0.0101, "s", "A", S + 1, C + 6),
                 seg(0.020, "c", "FA", C + 6, S + 1),
                 seg(0.061, "s", "A", S + 1, C + 7),
                 seg(0.070, "s", "FA", S + 1, C + 7),
                 seg(0.0701, "c", "A", C + 7, S + 2)) == [
        "client opens: SYN (ISN chosen, MSS 65495, wscale 7)",
        "server accepts: SYN+ACK (MSS 65495, wscale 7)",
        "client completes the handshake: ACK",
        "client sends 5 bytes",
        "server ACKs 5 bytes",
        "client has finished sending: FIN (client enters FIN-WAIT-1; server CLOSE-WAIT)",
        "server ACKs the client's FIN: delayed ACK (41 ms after the FIN; "
        "client enters FIN-WAIT-2)",
        "server closes too: FIN (server enters LAST-ACK; "
        "client TIME-WAIT for 2*MSL, 60 s on Linux)",
        "client ACKs the server's FIN (server enters CLOSED: its socket is gone)"]


def test_three_segment_close_mentions_linux_fin_wait_2():
    assert notes(*handshake(), seg(0.01, "s", "FA", S + 1, C + 1),
                 seg(0.0101, "c", "FA", C + 1, S + 2))[-1] == (
        "client's FIN rides on the ACK of the server's FIN (3-segment close; client enters "
        "LAST-ACK; server TIME-WAIT for 60 s, via FIN-WAIT-2 for µs on Linux)")


def test_fin_on_data_half_close_and_retransmitted_fin():
    assert notes(*handshake(), seg(0.01, "c", "FPA", C + 1, S + 1, length=5))[-1] == (
        "client's FIN rides on the last data segment (5 bytes; client enters FIN-WAIT-1; "
        "server CLOSE-WAIT)")
    assert notes(*handshake(), seg(0.01, "c", "FA", C + 1, S + 1),
                 seg(0.02, "s", "PA", S + 1, C + 2, length=9),
                 seg(0.22, "s", "PA", S + 1, C + 2, length=9),
                 seg(0.23, "c", "A", C + 2, S + 10),
                 seg(0.24, "c", "FA", C + 1, S + 10))[-4:] == [
        "server ACKs the client's FIN and sends 9 bytes (half-close: CLOSE-WAIT can still "
        "send; client enters FIN-WAIT-2)",
        "server retransmits 9 bytes (seq already sent)",
        "client ACKs 9 bytes (FIN-WAIT-2 still receives)",
        "retransmission of client's FIN (seq already sent)"]


def test_simultaneous_close():
    assert notes(*handshake(), seg(0.010, "c", "FA", C + 1, S + 1),
                 seg(0.0101, "s", "FA", S + 1, C + 1))[-1] == (
        "FINs crossed: simultaneous close (server enters CLOSING; client CLOSING)")


def test_resets():
    rows = annotate(connection(seg(0, "c", "S", C), seg(0.0001, "s", "RA", 0, C + 1, win=0)))
    assert rows[1].note == "RST in reply to SYN: nothing listens on port 80 (connection refused)"
    assert rows[0].server_state == "CLOSED"
    assert notes(*handshake(), seg(0.01, "c", "RA", C + 1, S + 1))[-1] == (
        "RST from client: abortive close — any unsent or unread data is discarded, "
        "no TIME-WAIT on either side")
    # The same RST without ACK, answering the server's data: no connection for it.
    assert notes(*handshake(), seg(0.01, "s", "PA", S + 1, C + 1, length=6),
                 seg(0.02, "c", "R", C + 1))[-1] == (
        "RST from client, without ACK: the reply of a host with no connection for the "
        "server's segment (RFC 9293: client lost it, or a middlebox sent the RST), or an "
        "abort by a stack that omits the ACK; no TIME-WAIT on either side")
    assert notes(*handshake(), seg(0.01, "s", "RA", S + 1, C + 1),
                 seg(0.0101, "c", "PA", C + 1, S + 1, length=4),
                 seg(0.0102, "s", "R", S + 1))[-2:] == [
        "client's 4 bytes crossed the RST in flight: client's socket is already gone",
        "RST from server's kernel: no socket for that segment any more, nothing changes"]


def test_time_wait_assassination_and_abandoned_attempt():
    assert notes(*handshake(), seg(0.010, "c", "FA", C + 1, S + 1),
                 seg(0.011, "s", "FA", S + 1, C + 2), seg(0.012, "c", "A", C + 2, S + 2),
                 seg(1.0, "s", "R", S + 2))[-1] == (
        "RST ends client's TIME-WAIT early (Linux default net.ipv4.tcp_rfc1337=0)")
    assert notes(seg(0, "c", "S", C), seg(0.5, "c", "R", C + 1))[-1] == (
        "RST from client: it abandons its connection attempt")


def test_zero_window_persist_probe_and_window_update():
    assert notes(*handshake(), seg(0.010, "c", "PA", C + 1, S + 1, length=1000),
                 seg(0.011, "s", "A", S + 1, C + 1001, win=0),
                 seg(0.220, "c", "A", C + 1000, S + 1),
                 seg(0.500, "s", "A", S + 1, C + 1001, win=4096))[-3:] == [
        "zero window: server's receive buffer is full, client must stop sending",
        "persist probe (zero-window probe): 0-byte ACK at SND.UNA-1"
        " — Wireshark shows TCP Keep-Alive",
        "window update: server can receive again (win 4096)"]


def test_mid_connection_start_is_said_on_the_first_row():
    assert notes(seg(0, "s", "FA", 7000, 3000))[0] == (
        "capture starts mid-connection, both assumed ESTABLISHED; server has finished "
        "sending: FIN (server enters FIN-WAIT-1; client CLOSE-WAIT)")


def test_empty_connection():
    assert annotate(connection()) == []
