"""Both sides' states after each segment, as RFC 9293 and Linux have them.

Convention (the engine's observer, engine/src/observer.rs): a state changes on the row
of the segment that causes it, sent or received; the receiver of a FIN is CLOSE-WAIT
from the FIN's row on (Linux: ESTABLISHED -> CLOSE_WAIT when the FIN is processed,
before any ACK leaves).

Through the engine's Python face: `analyse_segments` for the steps and the verdict of a
connection whose client is known, `group_segments` for what each side sent, counted as
the summary counts it.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from tcptrace.engine import Sent, Step, analyse_segments, group_segments, tag_names
from tcptrace.model import Verdict

from segments import CLIENT, C, S, connection, handshake, seg

EST, SS, SR = "ESTABLISHED", "SYN-SENT", "SYN-RECEIVED"
FW1, FW2, CW, CLOSING = "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING"
LA, TW, CLOSED = "LAST-ACK", "TIME-WAIT", "CLOSED"


class Run(NamedTuple):
    verdict: Verdict
    client: Sent
    server: Sent


def run(*segments) -> tuple[Run, list[Step]]:
    conn = connection(*segments)
    steps, _, verdict = analyse_segments(conn)
    [grouped] = group_segments(segments)
    assert (grouped.conn.client_ip, grouped.conn.client_port) == CLIENT
    return Run(verdict, grouped.client, grouped.server), steps


def states(steps):
    return [(s.client_state, s.server_state) for s in steps]


def tags(step):
    return tag_names(step.tags)


# -- handshake -------------------------------------------------------------------------

def test_handshake_states_and_relative_numbers():
    obs, steps = run(*handshake())
    assert states(steps) == [(SS, SR), (EST, SR), (EST, EST)]
    assert [(s.seq, s.ack) for s in steps] == [(0, 0), (0, 1), (1, 1)]
    assert [tags(s) for s in steps] == [[], [], []]      # nothing assumed
    assert (obs.verdict.close, obs.verdict.conn_state) == ("open", "S1")


def test_syn_receiver_is_unknown_until_it_answers():
    obs, steps = run(seg(0, "c", "S", C))
    assert states(steps) == [(SS, "?")]
    assert obs.verdict.final == {"client": SS, "server": "?"}


def test_refused_syn_nothing_listens():
    obs, steps = run(seg(0, "c", "S", C), seg(0.0001, "s", "RA", 0, C + 1, win=0))
    # No listener: the server side is CLOSED from the SYN on, not LISTEN.
    assert states(steps) == [(SS, CLOSED), (CLOSED, CLOSED)]
    assert (obs.verdict.close, obs.verdict.rst_from) == ("refused", "server")
    assert tags(steps[1]) == []         # window 0 on a RST is not a zero window
    assert obs.server.zero_windows == 0


def test_refused_syn_retried_each_time():
    obs, steps = run(seg(0, "c", "S", C), seg(0.0001, "s", "RA", 0, C + 1, win=0),
                     seg(0.5, "c", "S", C), seg(0.5001, "s", "RA", 0, C + 1, win=0))
    assert states(steps) == [(SS, CLOSED), (CLOSED, CLOSED)] * 2
    assert tags(steps[2]) == ["retransmission"]


def test_rst_without_ack_does_not_reset_syn_sent():
    # RFC 9293 3.10.7.3: in SYN-SENT a RST counts only if it ACKs the SYN.
    obs, steps = run(seg(0, "c", "S", C), seg(0.0001, "s", "R", 0))
    assert states(steps)[1] == (SS, CLOSED)
    assert tags(steps[1]) == ["out-of-window"]


def test_capture_starting_at_the_syn_ack():
    obs, steps = run(seg(0, "s", "SA", S, C + 1), seg(0.0001, "c", "A", C + 1, S + 1))
    assert states(steps) == [(EST, SR), (EST, EST)]
    assert tags(steps[0]) == ["mid-connection"]


# -- graceful close ----------------------------------------------------------------------

def test_four_segment_close_with_delayed_ack():
    obs, steps = run(*handshake(),
                     seg(0.010, "c", "FA", C + 1, S + 1),
                     seg(0.051, "s", "A", S + 1, C + 2),        # delayed ACK, 41 ms
                     seg(0.060, "s", "FA", S + 1, C + 2),
                     seg(0.0601, "c", "A", C + 2, S + 2))
    assert states(steps[3:]) == [(FW1, CW), (FW2, CW), (TW, LA), (TW, CLOSED)]
    assert tags(steps[4]) == ["ack-of-fin", "delayed-ack"]
    assert steps[4].delay == pytest.approx(0.041)
    assert tags(steps[6]) == ["ack-of-fin"]
    assert (obs.verdict.close, obs.verdict.first_closer) == ("fin", "client")


def test_three_segment_close_fin_rides_on_the_ack():
    obs, steps = run(*handshake(),
                     seg(0.010, "c", "FA", C + 1, S + 1),
                     seg(0.0101, "s", "FA", S + 1, C + 2),
                     seg(0.0102, "c", "A", C + 2, S + 2))
    # FIN-WAIT-1 + FIN+ACK that ACKs its FIN -> TIME-WAIT (RFC 9293).
    assert states(steps[3:]) == [(FW1, CW), (TW, LA), (TW, CLOSED)]
    assert tags(steps[4]) == ["ack-of-fin"]
    assert not obs.verdict.simultaneous


def test_fin_on_the_last_data_segment():
    obs, steps = run(*handshake(),
                     seg(0.010, "c", "FPA", C + 1, S + 1, length=5),
                     seg(0.0101, "s", "A", S + 1, C + 7))
    assert states(steps[3:]) == [(FW1, CW), (FW2, CW)]
    assert (steps[4].ack, steps[4].acked) == (7, 6)     # 5 bytes + the FIN
    assert obs.client.bytes == 5


def test_half_close_the_passive_side_keeps_sending():
    obs, steps = run(*handshake(),
                     seg(0.010, "c", "FA", C + 1, S + 1),
                     seg(0.011, "s", "A", S + 1, C + 2),
                     seg(0.020, "s", "PA", S + 1, C + 2, length=100),
                     seg(0.021, "c", "A", C + 2, S + 101),
                     seg(0.030, "s", "PA", S + 101, C + 2, length=100),
                     seg(0.031, "c", "A", C + 2, S + 201),
                     seg(0.040, "s", "FA", S + 201, C + 2),
                     seg(0.041, "c", "A", C + 2, S + 202))
    assert states(steps[3:]) == [(FW1, CW), (FW2, CW), (FW2, CW), (FW2, CW), (FW2, CW),
                                 (FW2, CW), (TW, LA), (TW, CLOSED)]
    assert obs.server.bytes == 200


def test_simultaneous_close_both_pass_closing_and_end_in_time_wait():
    segments = [*handshake(),
                seg(0.010, "c", "FA", C + 1, S + 1),
                seg(0.0101, "s", "FA", S + 1, C + 1),   # does not ACK the client's FIN
                seg(0.0102, "c", "A", C + 2, S + 2),
                seg(0.0103, "s", "A", S + 2, C + 2)]
    obs, steps = run(*segments)
    # The server's FIN shows it had not received the client's: on the client's FIN row
    # the server was still ESTABLISHED (the row is corrected once that is known).
    assert states(steps[3:]) == [(FW1, EST), (CLOSING, CLOSING), (CLOSING, TW), (TW, TW)]
    assert tags(steps[4]) == ["simultaneous-close"]
    v = obs.verdict
    assert (v.close, v.simultaneous, v.time_wait, v.final) == (
        "fin", True, "both", {"client": TW, "server": TW})


def test_fin_receipt_undone_when_the_peer_data_crossed_it():
    obs, steps = run(*handshake(),
                     seg(0.010, "c", "FA", C + 1, S + 1),
                     seg(0.0101, "s", "PA", S + 1, C + 1, length=50),   # sent before the FIN came
                     seg(0.0102, "c", "A", C + 2, S + 51),
                     seg(0.0103, "s", "A", S + 51, C + 2))
    assert states(steps[3:]) == [(FW1, EST), (FW1, CW), (FW1, CW), (FW2, CW)]
    assert not obs.verdict.simultaneous


def test_retransmitted_fin_changes_state_once():
    obs, steps = run(*handshake(),
                     seg(0.010, "c", "FA", C + 1, S + 1),
                     seg(0.220, "c", "FA", C + 1, S + 1),
                     seg(0.221, "s", "A", S + 1, C + 2))
    assert states(steps[3:]) == [(FW1, CW), (FW1, CW), (FW2, CW)]
    assert tags(steps[4]) == ["retransmission"]
    assert obs.client.retransmissions == 1


def test_fin_beyond_a_gap_is_received_when_the_gap_is_filled():
    obs, steps = run(*handshake(),
                     seg(0.010, "c", "PA", C + 1, S + 1, length=10),
                     # C+11..C+20 is not in the capture (yet)
                     seg(0.012, "c", "FA", C + 21, S + 1),
                     seg(0.050, "c", "PA", C + 11, S + 1, length=10))
    assert states(steps[3:]) == [(EST, EST), (FW1, EST), (FW1, CW)]
    assert tags(steps[4]) == ["out-of-order"]
    # It fills the gap: bytes seen late (out of order), not sent again (issue 14).
    assert tags(steps[5]) == ["out-of-order"]


def test_fin_beyond_a_gap_is_received_when_the_receiver_acks_it():
    obs, steps = run(*handshake(),
                     seg(0.012, "c", "FA", C + 11, S + 1),   # the capture missed 10 bytes
                     seg(0.013, "s", "A", S + 1, C + 12))
    assert states(steps[3:]) == [(FW1, EST), (FW2, CW)]


# -- abortive close ----------------------------------------------------------------------

def test_rst_in_established_closes_both_without_time_wait():
    obs, steps = run(*handshake(), seg(0.010, "c", "RA", C + 1, S + 1, win=0))
    assert states(steps[3:]) == [(CLOSED, CLOSED)]
    v = obs.verdict
    assert (v.close, v.rst_from, v.first_closer, v.time_wait) == ("rst", "client", "client", None)
    assert tags(steps[3]) == []


def test_rst_after_half_close():
    obs, steps = run(*handshake(),
                     seg(0.010, "c", "FA", C + 1, S + 1),
                     seg(0.011, "s", "A", S + 1, C + 2),
                     seg(0.020, "s", "PA", S + 1, C + 2, length=30),
                     seg(0.0201, "c", "R", C + 2))     # Linux: data after close -> RST
    assert states(steps[3:]) == [(FW1, CW), (FW2, CW), (FW2, CW), (CLOSED, CLOSED)]
    assert (obs.verdict.close, obs.verdict.rst_from) == ("rst", "client")


def test_segments_after_an_abort_change_nothing():
    obs, steps = run(*handshake(),
                     seg(0.010, "s", "RA", S + 1, C + 1, win=0),
                     seg(0.0101, "c", "PA", C + 1, S + 1, length=20),   # crossed the RST
                     seg(0.0102, "s", "R", S + 1))                      # no socket: RST
    assert states(steps[3:]) == [(CLOSED, CLOSED)] * 3
    assert tags(steps[4]) == ["after-close"]
    assert (obs.verdict.close, obs.verdict.rst_from) == ("rst", "server")


def test_rst_far_outside_the_window_is_ignored():
    obs, steps = run(*handshake(), seg(0.010, "c", "RA", C + 1 + 10_000_000, S + 1))
    assert states(steps[3:]) == [(CLOSED, EST)]
    assert tags(steps[3]) == ["out-of-window"]


def test_rst_at_rcv_nxt_ends_time_wait_and_elsewhere_is_ignored():
    close = [*handshake(),
             seg(0.010, "c", "FA", C + 1, S + 1), seg(0.011, "s", "FA", S + 1, C + 2),
             seg(0.012, "c", "A", C + 2, S + 2)]
    _, steps = run(*close, seg(1.0, "s", "R", S + 2))
    assert states(steps[-2:]) == [(TW, CLOSED), (CLOSED, CLOSED)]
    _, steps = run(*close, seg(1.0, "s", "R", S + 900))
    assert states(steps[-1:]) == [(TW, CLOSED)]
    assert tags(steps[-1]) == ["out-of-window"]


# -- capture boundaries ------------------------------------------------------------------

def test_mid_connection_start_assumes_established():
    obs, steps = run(seg(0, "s", "PA", 7000, 3000, length=10),
                     seg(0.001, "c", "A", 3000, 7010),
                     seg(0.002, "c", "FA", 3000, 7010))
    assert states(steps) == [(EST, EST), (EST, EST), (FW1, CW)]
    assert tags(steps[0]) == ["mid-connection"]
    assert [(s.seq, s.ack) for s in steps] == [(0, 0), (0, 10), (0, 10)]


def test_connection_still_open_at_the_end_stays_as_it_is():
    obs, steps = run(*handshake(), seg(0.010, "c", "PA", C + 1, S + 1, length=5))
    assert obs.verdict.final == {"client": EST, "server": EST}
    assert (obs.verdict.close, obs.verdict.first_closer) == ("open", None)


def test_sequence_numbers_wrap_around():
    isn = 2**32 - 3
    obs, steps = run(*handshake(c_isn=isn),
                     seg(0.010, "c", "PA", isn + 1, S + 1, length=10),
                     seg(0.011, "s", "A", S + 1, isn + 11))
    assert [(s.seq, s.ack) for s in steps[3:]] == [(1, 1), (1, 11)]
    assert tags(steps[3]) == [] and obs.client.bytes == 10


# -- windows, probes and counts ---------------------------------------------------------

def test_window_scaling_needs_both_syns_and_never_applies_to_a_syn():
    _, steps = run(*handshake(wscale=7), seg(0.01, "s", "A", S + 1, C + 1, win=512))
    assert [s.win for s in steps] == [65535, 65535, 65535 << 7, 512 << 7]
    one_sided = [seg(0, "c", "S", C, wscale=7), seg(0.0001, "s", "SA", S, C + 1),
                 seg(0.0002, "c", "A", C + 1, S + 1, win=512)]
    _, steps = run(*one_sided)
    assert steps[2].win == 512


def test_persist_probe_at_snd_una_minus_1_while_the_peer_window_is_zero():
    obs, steps = run(*handshake(),
                     seg(0.010, "c", "PA", C + 1, S + 1, length=1000),
                     seg(0.011, "s", "A", S + 1, C + 1001, win=0),
                     seg(0.220, "c", "A", C + 1000, S + 1),       # Linux: SND.UNA - 1
                     seg(0.221, "s", "A", S + 1, C + 1001, win=0),
                     seg(0.500, "s", "A", S + 1, C + 1001, win=4096))
    assert [tags(s) for s in steps[4:]] == [["zero-window"], ["window-probe"],
                                            ["zero-window"], ["window-update"]]
    assert obs.server.zero_windows == 2 and obs.client.retransmissions == 0


def test_one_byte_probe_at_snd_nxt_is_a_window_probe():
    _, steps = run(*handshake(),
                   seg(0.011, "s", "A", S + 1, C + 1, win=0),
                   seg(0.220, "c", "A", C + 1, S + 1, length=1))
    assert tags(steps[4]) == ["window-probe"]


def test_keep_alive_is_not_a_retransmission():
    obs, steps = run(*handshake(), seg(7200, "c", "A", C, S + 1))   # SND.NXT - 1
    assert tags(steps[3]) == ["keep-alive"]
    assert obs.client.retransmissions == 0


def test_duplicate_ack_and_window_full():
    obs, steps = run(seg(0, "c", "S", C, win=65535, wscale=0),
                     seg(0.0001, "s", "SA", S, C + 1, win=2000, wscale=0),
                     seg(0.0002, "c", "A", C + 1, S + 1),
                     seg(0.010, "c", "PA", C + 1, S + 1, length=2000),
                     seg(0.011, "s", "A", S + 1, C + 1001, win=2000),
                     seg(0.012, "s", "A", S + 1, C + 1001, win=2000))
    assert tags(steps[3]) == ["window-full"]
    assert tags(steps[5]) == ["duplicate-ack"]


def test_connection_facts():
    segments = [*handshake(),
                seg(0.010, "c", "PA", C + 1, S + 1, length=5),
                seg(0.011, "s", "PA", S + 1, C + 6, length=7, win=0),
                seg(0.012, "c", "FA", C + 6, S + 8)]
    obs, _ = run(*segments)
    assert (obs.client.packets, obs.server.packets) == (4, 2)
    assert (obs.client.bytes, obs.server.bytes) == (5, 7)
    assert obs.server.zero_windows == 1
    assert obs.verdict.first_closer == "client"
    assert obs.verdict.history == "ShADdwF"


def test_simultaneous_open_synacks_are_not_retransmissions():
    # RFC 9293 figure 8: both send SYN, both answer with SYN+ACK on their own ISN.
    obs, steps = run(
        seg(0.0, "c", "S", C), seg(0.0001, "s", "S", S),
        seg(0.0002, "c", "SA", C, S + 1), seg(0.0003, "s", "SA", S, C + 1),
        # a genuine retransmission of the client's SYN+ACK is still called one
        seg(0.2, "c", "SA", C, S + 1))
    assert ["retransmission" in tag_names(st.tags) for st in steps] == \
        [False, False, False, False, True]
    assert (obs.client.retransmissions, obs.server.retransmissions) == (1, 0)
