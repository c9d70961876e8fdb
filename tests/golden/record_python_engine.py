"""Record the Python engine's output as golden files, before the Rust port replaces it.

Run once, at the commit that still has the Python engine (observer.py, zeek.py,
connections.py, summary.py, pcapfile.py, decode.py):

    .venv/bin/python tests/golden/record_python_engine.py

For every capture in captures/, every real capture in ../shared/captures-real/ and a few
synthetic files (bench/synth.py, by seed), it writes tests/golden/NAME.json with:
the reader's warnings; every connection of `replay`'s listing (endpoints, VLAN stack,
roles, packet count, verdict) with every step the observer produced (both states after
the segment, tags, relative numbers, the annotation); and every `summary` record.
The Rust engine must reproduce these exactly (tests/test_golden.py), except where
issue 9 renamed a verdict word ("open" for an unanswered SYN, "half-open").
This script is kept for the record; it cannot run once the Python engine is gone.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tcptrace import replay as rp  # noqa: E402
from tcptrace.bench import synth  # noqa: E402
from tcptrace.errors import TcptraceError  # noqa: E402
from tcptrace.model import format_endpoint  # noqa: E402
from tcptrace.observer import ConnectionObserver  # noqa: E402
from tcptrace.annotate import relative_views  # noqa: E402
from tcptrace.summary import Summariser  # noqa: E402
from tcptrace.verdict import classify  # noqa: E402

OUT = Path(__file__).resolve().parent
SYNTH = [(1, 300), (2, 300), (7, 600)]


def verdict_dict(v) -> dict:
    return {"close": v.close, "first_closer": v.first_closer, "rst_from": v.rst_from,
            "simultaneous": v.simultaneous, "time_wait": v.time_wait, "final": v.final,
            "conn_state": v.conn_state, "history": v.history}


def steps_of(conn) -> tuple[list, list]:
    observer = ConnectionObserver.for_connection(conn)
    steps = [observer.feed(seg) for seg in conn.segments]
    views = relative_views(conn, observer, steps)
    rows = []
    for st, view in zip(steps, views):
        rows.append([st.segment.frame, round(st.t - steps[0].t, 6), st.sender, st.flags,
                     st.seq, st.ack, st.length, st.win, st.client_state, st.server_state,
                     view.tags, st.acked, round(st.delay, 6), view.note])
    return rows, list(observer.initial)


def record(path: Path, name: str) -> None:
    doc: dict = {"file": name}
    try:
        listing = rp.list_connections(path)
    except TcptraceError as e:
        doc["error"] = str(e)
        (OUT / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
        return
    doc["warnings"] = listing.warnings
    conns, _ = rp.load_all(path)
    out = []
    for row, conn in zip(listing.rows, conns):
        rows, initial = steps_of(conn)
        full = classify(conn)
        out.append({"stream": row.index, "client": conn.client, "server": conn.server,
                    "vlan": list(conn.vlan), "roles_guessed": conn.roles_guessed,
                    "packets": row.packets, "verdict": verdict_dict(row.verdict),
                    "verdict_full": verdict_dict(full), "initial": initial,
                    "steps": rows})
    doc["connections"] = out
    run = Summariser(path, jobs=1)
    summaries = []
    for s in run:
        c = s.conn
        summaries.append({"client": format_endpoint(c.client_ip, c.client_port),
                          "server": format_endpoint(c.server_ip, c.server_port),
                          "vlan": list(c.vlan), "roles_guessed": c.roles_guessed,
                          "first": s.first, "last": s.last,
                          "verdict": verdict_dict(s.verdict),
                          "client_sent": list(s.client), "server_sent": list(s.server)})
    doc["summary"] = summaries
    doc["summary_warnings"] = run.warnings
    text = json.dumps(doc, separators=(",", ":"))
    # One connection and one step per line: diffs stay readable.
    text = text.replace('{"stream"', '\n{"stream"').replace(',[', ',\n[')
    (OUT / f"{name}.json").write_text(text + "\n")


def main() -> None:
    for p in sorted((ROOT / "captures").glob("*.pcap*")):
        record(p, p.name)
    for p in sorted((ROOT.parent / "shared" / "captures-real").glob("*.pcap*")):
        record(p, p.name)
    with tempfile.TemporaryDirectory() as d:
        for seed, n in SYNTH:
            pcap = Path(d) / f"synth-seed{seed}-{n}.pcap"
            synth.generate(pcap, n, seed)
            record(pcap, pcap.name)


if __name__ == "__main__":
    main()
