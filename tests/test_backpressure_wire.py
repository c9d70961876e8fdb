"""Flow-control classification of crafted segment sequences (pure): the engine's tags
(engine/src/observer.rs, "Tags") told as a bulk transfer's story."""

from tcptrace.backpressure.wire import PROBE_ONE_BYTE, PROBE_UNA_MINUS_1, classify
from tcptrace.model import ACK, FIN, PSH, SYN, Segment

W, R = ("127.0.0.2", 40000), ("127.0.0.1", 5000)
WRITER, READER = "127.0.0.2:40000", "127.0.0.1:5000"
W_ISN, R_ISN = 1000, 7000


def seg(t, frm, flags, seq, ack, length=0, win=512, wscale=None, frame=0):
    src, dst = (W, R) if frm == "w" else (R, W)
    return Segment(t=t, src=src[0], sport=src[1], dst=dst[0], dport=dst[1], flags=flags,
                   seq=seq, ack=ack, length=length, win=win, wscale=wscale, frame=frame)


def handshake(scale=7, reader_win=65483):
    return [seg(0.0, "w", SYN, W_ISN, 0, win=65495, wscale=scale, frame=1),
            seg(0.001, "r", SYN | ACK, R_ISN, W_ISN + 1, win=reader_win, wscale=scale,
                frame=2),
            seg(0.002, "w", ACK, W_ISN + 1, R_ISN + 1, win=512, frame=3)]


def zero_window_run(probe_len=0, probe_seq_offset=-1):
    """1000 bytes of data fill the reader's 1000-byte window (no scaling), then two
    probes of the given shape, relative to the writer's SND.UNA = SND.NXT."""
    d = W_ISN + 1
    return handshake(scale=0, reader_win=1000) + [
        seg(0.010, "r", ACK, R_ISN + 1, d, win=1000, frame=4),           # window 1000 again
        seg(0.020, "w", ACK | PSH, d, R_ISN + 1, length=1000, frame=5),   # fills it
        seg(0.021, "r", ACK, R_ISN + 1, d + 1000, win=0, frame=6),        # zero window
        seg(0.221, "w", ACK, d + 1000 + probe_seq_offset, R_ISN + 1, length=probe_len,
            frame=7),                                                     # persist probe
        seg(0.221, "r", ACK, R_ISN + 1, d + 1000, win=0, frame=8),        # reply: still 0
        seg(0.621, "w", ACK, d + 1000 + probe_seq_offset, R_ISN + 1, length=probe_len,
            frame=9),                                                     # unanswered probe
        seg(1.000, "r", ACK, R_ISN + 1, d + 1000, win=1000, frame=10),    # window update
        seg(1.001, "w", ACK | PSH, d + 1000, R_ISN + 1, length=500, frame=11),  # resumes
    ]


def kinds(analysis):
    return [(e.kind, e.frame) for e in analysis.events]


def test_zero_window_linux_probes_window_update_and_resumption():
    a = classify(zero_window_run(), WRITER, READER)
    assert kinds(a) == [("window_full", 5), ("zero_window", 6), ("window_probe", 7),
                        ("zero_window", 8), ("window_probe", 9), ("window_update", 10),
                        ("data_resumed", 11)]
    s = a.summary
    assert (s.zero_windows, s.zero_window_episodes, s.window_probes, s.probes_answered) == \
        (2, 1, 2, 1)
    assert s.probe_forms == {PROBE_UNA_MINUS_1: 2}
    assert s.window_updates == 1 and s.window_full == 1 and s.bytes_on_wire == 1500
    probe = a.events[2]
    assert probe.wireshark == "TCP Keep-Alive" and "SND.UNA-1" in probe.detail
    assert "Keep-Alive" in a.notes[7][0] and "TcpExtTCPWinProbe" in a.notes[7][0]
    assert a.window[-1] == (1.000, 1000)


def test_one_byte_probe_at_snd_nxt_is_the_rfc_form_each_time_it_is_repeated():
    # Both probes carry the same next byte: the first one, refused, advances nothing.
    a = classify(zero_window_run(probe_len=1, probe_seq_offset=0), WRITER, READER)
    assert kinds(a) == [("window_full", 5), ("zero_window", 6), ("window_probe", 7),
                        ("zero_window", 8), ("window_probe", 9), ("window_update", 10),
                        ("data_resumed", 11)]
    assert a.summary.probe_forms == {PROBE_ONE_BYTE: 2}
    assert a.events[2].wireshark == "TCP ZeroWindowProbe"
    assert "SND.NXT" in a.events[2].detail
    assert a.summary.bytes_on_wire == 1500       # the probe byte counts once, with the data


def test_one_byte_at_una_minus_1_is_no_probe():
    # Neither shape: Linux probes with 0 bytes there, other stacks with the next byte.
    a = classify(zero_window_run(probe_len=1, probe_seq_offset=-1), WRITER, READER)
    assert a.summary.window_probes == 0 and a.summary.probes_answered == 0
    assert ("window_probe", 7) not in kinds(a) and ("window_probe", 9) not in kinds(a)


def test_keepalive_shape_without_a_zero_window_is_not_a_probe():
    d = W_ISN + 1
    segs = handshake(scale=0) + [
        seg(0.01, "w", ACK | PSH, d, R_ISN + 1, length=100, frame=4),
        seg(0.02, "r", ACK, R_ISN + 1, d + 100, win=5000, frame=5),
        seg(5.00, "w", ACK, d + 99, R_ISN + 1, frame=6),       # a real keep-alive
    ]
    a = classify(segs, WRITER, READER)
    assert a.summary.window_probes == 0 and a.summary.zero_windows == 0


def test_window_scale_applies_to_the_readers_windows_only_after_both_syns():
    d = W_ISN + 1
    segs = handshake(scale=7) + [seg(0.01, "r", ACK, R_ISN + 1, d, win=100, frame=4)]
    assert classify(segs, WRITER, READER).window[-1] == (0.01, 100 << 7)
    no_scale = [handshake()[0], seg(0.001, "r", SYN | ACK, R_ISN, d, win=65483, frame=2),
                seg(0.01, "r", ACK, R_ISN + 1, d, win=100, frame=4)]
    assert classify(no_scale, WRITER, READER).window[-1] == (0.01, 100)


def test_pure_window_update_same_ack_and_fin_with_window_0_is_not_zero_window():
    # A bare ACK with the same ACK and another window is Wireshark's window update; the
    # first compares with the SYN+ACK's 65483 bytes (a SYN's window is never scaled).
    d = W_ISN + 1
    segs = handshake(scale=0) + [
        seg(0.01, "r", ACK, R_ISN + 1, d, win=1000, frame=4),
        seg(0.02, "r", ACK, R_ISN + 1, d, win=3000, frame=5),
        seg(0.03, "r", ACK | FIN, R_ISN + 1, d, win=0, frame=6),
    ]
    a = classify(segs, WRITER, READER)
    assert kinds(a) == [("window_update", 4), ("window_update", 5)]
    assert [e.detail for e in a.events] == ["window 65483 -> 1000 bytes, same ACK",
                                            "window 1000 -> 3000 bytes, same ACK"]
    assert {e.wireshark for e in a.events} == {"TCP Window Update"}
    assert a.summary.zero_windows == 0


def test_other_connections_are_ignored_and_mid_connection_capture_works():
    stranger = Segment(t=0.0, src="127.0.0.9", sport=1, dst="127.0.0.1", dport=5000,
                       flags=ACK, seq=1, ack=1, length=0, win=0)
    segs = [stranger] + zero_window_run()[3:]       # no handshake captured
    a = classify(segs, WRITER, READER)
    assert a.summary.window_probes == 2 and a.summary.zero_window_episodes == 1


def test_a_writer_that_accepted_the_connection():
    d = W_ISN + 1
    segs = [seg(0.0, "r", SYN, R_ISN, 0, win=1000, wscale=0, frame=1),
            seg(0.001, "w", SYN | ACK, W_ISN, R_ISN + 1, win=65483, wscale=0, frame=2),
            seg(0.002, "r", ACK, R_ISN + 1, d, win=1000, frame=3),
            seg(0.020, "w", ACK | PSH, d, R_ISN + 1, length=1000, frame=4),
            seg(0.021, "r", ACK, R_ISN + 1, d + 1000, win=0, frame=5),
            seg(0.221, "w", ACK, d + 999, R_ISN + 1, frame=6),
            seg(1.000, "r", ACK, R_ISN + 1, d + 1000, win=1000, frame=7)]
    a = classify(segs, WRITER, READER)
    assert kinds(a) == [("window_full", 4), ("zero_window", 5), ("window_probe", 6),
                        ("window_update", 7)]
    assert a.in_flight == [(0.002, 0), (0.02, 1000), (0.021, 0), (1.0, 0)]   # not the probe
