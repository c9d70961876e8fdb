"""Re-record named golden files from the Rust engine, in the layout the Python engine's
recorder wrote (record_python_engine.py), for a change that makes the engine *more*
correct on a capture. Say in the commit why, with the independent evidence (tshark).

    .venv/bin/python tests/golden/rerecord.py NAME.pcap [NAME.pcapng ...]

Re-recorded so far (issue 14):
- tcpdump_pptp.pcap: every server frame is in the file twice, ~100 µs apart, with the
  same IPv4 ID and TCP checksum (tshark -e ip.id -e tcp.checksum): capture duplicates,
  which the old engine (and tshark) called retransmissions and duplicate ACKs.
- cs_tcp_zerowindowrecovery.pcapng: the capture starts with five client ACKs of
  8,760 bytes of server data it does not hold (tshark: "ACKed segment that wasn't
  captured"); the engine now infers that data, tagged `inferred`.
- sv_tcp-empty-sack_tcp-opt.pcap, zeek_tcp_fin_retransmission.pcap: a bare RST (no
  ACK, tshark -e tcp.flags.ack) on a synchronized connection was worded "abortive
  close"; it is the reply of a host with no connection for the segment (RFC 9293
  3.10.7.1), or an abort by a stack that omits the ACK (Linux's carries it). Only that
  row's note changed. close-vanish-return{,-ipv6}.pcapng were recorded again with that
  wording in their comments (their rows, timings and ports are the new recording's).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from tcptrace import replay as rp  # noqa: E402
from tcptrace.engine import Scan  # noqa: E402
from tcptrace.model import format_endpoint  # noqa: E402

from conftest import PROJECT_CAPTURES, SHARED_CAPTURES  # noqa: E402

OUT = Path(__file__).resolve().parent


def verdict_dict(v) -> dict:  # type: ignore[no-untyped-def]
    return {"close": v.close, "first_closer": v.first_closer, "rst_from": v.rst_from,
            "simultaneous": v.simultaneous, "time_wait": v.time_wait, "final": v.final,
            "conn_state": v.conn_state, "history": v.history}


def record(name: str) -> None:
    path = PROJECT_CAPTURES / name
    path = path if path.exists() else SHARED_CAPTURES / name
    doc: dict = {"file": name}
    listing = rp.list_connections(path)
    doc["warnings"] = listing.warnings
    rows = {r.index: r for r in listing.rows}
    out = []
    for s in Scan(path, keep="all"):
        row = rows[s.stream]
        views, _ = rp.analyse(s)
        steps = [[v.segment.frame, round(v.t, 6), v.sender, st.flags, st.seq, st.ack,
                  st.length, st.win, st.client_state, st.server_state, v.tags, st.acked,
                  round(st.delay, 6), v.note] for v, st in zip(views, s.steps, strict=True)]
        out.append({"stream": s.stream, "client": row.conn.client, "server": row.conn.server,
                    "vlan": list(row.conn.vlan), "roles_guessed": row.conn.roles_guessed,
                    "packets": row.packets, "verdict": verdict_dict(row.verdict),
                    "verdict_full": verdict_dict(s.verdict), "initial": list(s.initial),
                    "steps": steps})
    doc["connections"] = sorted(out, key=lambda c: c["stream"])
    scan = Scan(path)
    doc["summary"] = [{"client": format_endpoint(s.conn.client_ip, s.conn.client_port),
                       "server": format_endpoint(s.conn.server_ip, s.conn.server_port),
                       "vlan": list(s.conn.vlan), "roles_guessed": s.conn.roles_guessed,
                       "first": s.first, "last": s.last, "verdict": verdict_dict(s.verdict),
                       "client_sent": list(s.client)[:4], "server_sent": list(s.server)[:4]}
                      for s in scan]
    doc["summary_warnings"] = scan.warnings
    text = json.dumps(doc, separators=(",", ":"))
    text = text.replace('{"stream"', '\n{"stream"').replace(',[', ',\n[')
    (OUT / f"{name}.json").write_text(text + "\n")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        record(arg)
