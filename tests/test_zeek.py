"""Zeek conn_state and history, derived by hand from Zeek's definitions
(main.zeek conn_state(); TCPSessionAdapter.cc update_history()):

  s h a d f r = SYN, SYN+ACK, pure ACK (no data, no SYN/FIN/RST), payload (no SYN/FIN/RST),
  FIN, RST; upper case from the originator (our client). a and d: once per direction.
  f r s h: again only at a different sequence number. t (payload that does not go past
  what was sent) and w (zero window, not on a RST, not after the peer's FIN): at the
  1st, 10th, 100th time.

Through the engine's Python face: a hand-built connection's verdict carries both.
"""

from __future__ import annotations

import pytest

from tcptrace.engine import analyse_segments

from segments import C, S, connection, handshake, seg


def zeek(*segments):
    verdict = analyse_segments(connection(*segments))[2]
    return verdict.history, verdict.conn_state


def with_data():
    return [*handshake(),
            seg(0.010, "c", "PA", C + 1, S + 1, length=5),
            seg(0.011, "s", "A", S + 1, C + 6),
            seg(0.012, "s", "PA", S + 1, C + 6, length=7),
            seg(0.013, "c", "A", C + 6, S + 8)]


def test_client_first_four_way_close_with_data():
    # S h A(handshake ACK) D a d (c's ACK: 'A' already) F (s's ACK: 'a' already) f
    assert zeek(*with_data(),
                seg(0.02, "c", "FA", C + 6, S + 8), seg(0.021, "s", "A", S + 8, C + 7),
                seg(0.03, "s", "FA", S + 8, C + 7), seg(0.031, "c", "A", C + 7, S + 9)
                ) == ("ShADadFf", "SF")


def test_server_first_three_way_close():
    assert zeek(*with_data(),
                seg(0.02, "s", "FA", S + 8, C + 6), seg(0.021, "c", "FA", C + 6, S + 9),
                seg(0.022, "s", "A", S + 9, C + 7)) == ("ShADadfF", "SF")


def test_fin_on_data_gives_only_f():
    # A segment with one of SYN/FIN/RST is lettered by that flag alone.
    assert zeek(*handshake(), seg(0.01, "c", "FPA", C + 1, S + 1, length=5),
                seg(0.02, "s", "FA", S + 1, C + 7), seg(0.03, "c", "A", C + 7, S + 2)
                ) == ("ShAFf", "SF")


def test_refused():
    assert zeek(seg(0, "c", "S", C), seg(0.001, "s", "RA", 0, C + 1, win=0)) == ("Sr", "REJ")


@pytest.mark.parametrize("copies", [1, 3])
def test_unanswered_syn(copies):
    # Retransmitted SYNs share the sequence number: one s.
    assert zeek(*[seg(i, "c", "S", C) for i in range(copies)]) == ("S", "S0")


def test_originator_syn_then_rst():
    assert zeek(seg(0, "c", "S", C), seg(0.5, "c", "R", C + 1)) == ("SR", "RSTOS0")


def test_originator_syn_then_fin():
    assert zeek(seg(0, "c", "S", C), seg(0.5, "c", "F", C + 1)) == ("SF", "SH")


def test_aborts_after_the_handshake():
    assert zeek(*handshake(), seg(0.01, "c", "RA", C + 1, S + 1)) == ("ShAR", "RSTO")
    assert zeek(*handshake(), seg(0.01, "s", "RA", S + 1, C + 1)) == ("ShAr", "RSTR")


def test_half_closes_and_open():
    client_fin = [*handshake(), seg(0.01, "c", "FA", C + 1, S + 1),
                  seg(0.02, "s", "A", S + 1, C + 2)]
    assert zeek(*client_fin) == ("ShAFa", "S2")
    assert zeek(*handshake(), seg(0.01, "s", "FA", S + 1, C + 1)) == ("ShAf", "S3")
    assert zeek(*handshake()) == ("ShA", "S1")


def test_fin_then_rst_then_peer_fin_counts_as_normal_close():
    # Zeek turns the originator's RESET back into CLOSED when the responder's FIN
    # follows its FIN-then-RST (UpdateEstablishedState).
    assert zeek(*handshake(),
                seg(0.01, "c", "FA", C + 1, S + 1), seg(0.011, "s", "A", S + 1, C + 2),
                seg(0.012, "s", "PA", S + 1, C + 2, length=9), seg(0.013, "c", "R", C + 2),
                seg(0.014, "s", "FA", S + 10, C + 2)) == ("ShAFadRf", "SF")


def test_mid_stream_traffic_is_oth_and_flipped_when_the_server_speaks_first():
    assert zeek(seg(0, "c", "PA", 3000, 7000, length=5),
                seg(0.001, "s", "A", 7000, 3005)) == ("Da", "OTH")
    assert zeek(seg(0, "s", "PA", 7000, 3000, length=5),
                seg(0.001, "c", "A", 3000, 7005)) == ("^dA", "OTH")


def test_responder_syn_ack_then_rst_without_a_syn():
    assert zeek(seg(0, "s", "SA", S, C + 1), seg(0.001, "s", "R", S + 1)) == ("^hr", "RSTRH")


def test_zero_windows_are_logarithmic():
    acks = [seg(0.01 + i / 1000, "s", "A", S + 1, C + 1, win=0) for i in range(9)]
    assert zeek(*handshake(), *acks)[0] == "ShAaw"
    tenth = seg(0.1, "s", "A", S + 1, C + 1, win=0)
    assert zeek(*handshake(), *acks, tenth)[0] == "ShAaww"


def test_retransmitted_payload():
    assert zeek(*handshake(), seg(0.01, "c", "PA", C + 1, S + 1, length=5),
                seg(0.3, "c", "PA", C + 1, S + 1, length=5))[0] == "ShADT"


def test_repeated_fin_letter_rules():
    assert zeek(seg(0, "c", "S", C),
                seg(0.1, "c", "FA", C + 1, S + 1),
                seg(0.2, "c", "FA", C + 1, S + 1),                # same FIN again: no letter
                seg(0.3, "c", "FA", C + 1, S + 1, length=4))[0] == "SFF"   # elsewhere: F


def test_inconsistent_and_multi_flag_packets():
    # SYN+FIN from the originator is Q; FIN+RST from the responder is i.
    assert zeek(seg(0, "c", "SF", C), seg(0.1, "s", "FRA", S, C + 2))[0] == "Qi"


def test_rej_when_both_reset_without_data():
    assert zeek(seg(0, "c", "R", C), seg(0.1, "s", "R", S))[1] == "REJ"
    assert zeek(seg(0, "c", "PA", C, S, length=10), seg(0.1, "c", "R", C + 10),
                seg(0.2, "s", "R", S))[1] == "RSTR"
