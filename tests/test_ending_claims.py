"""The claims about connections nobody closed on purpose: judged from real runs (live),
then on those runs with a fact changed, so the verdict is seen to follow the data."""

from __future__ import annotations

import copy
import shutil

import pytest

from tcptrace import ending_claims as ec
from tcptrace.claims import judge
from tcptrace.live.close_run import run_close
from tcptrace.model import FIN, RST

from conftest import require


@pytest.fixture(scope="module")
def runs():
    require(None if shutil.which("nft") else "nft (nftables) is not installed")
    keys = {k for ks in ec.REQUIRED_RUNS.values() for k in ks}
    return {k: run_close(k.mode, closer=k.closer, runtime=k.runtime) for k in keys}


def verdicts(runs) -> dict[str, str]:
    return {c.claim: c.verdict for c in judge(runs) if c.claim in ec.REQUIRED_RUNS}


@pytest.mark.live
def test_the_runs_on_this_machine(live, runs):
    got = {c.claim: c for c in judge(runs)}
    assert {k: got[k].verdict for k in ec.REQUIRED_RUNS} == {
        ec.KILL_SENDS_RST: "partly",        # a FIN; an RST only with data unread
        ec.CRASH_SENDS_RST: "false",        # silence; an RST only from the rebooted host
        ec.TIME_WAIT_BLOCKS: "partly",      # only a bind() without SO_REUSEADDR
        ec.KEEPALIVE_QUICK: "false",        # 7200 + 9 x 75 s by default
    }
    assert any("TCP_ABORT_ON_CLOSE" in e for e in got[ec.KILL_SENDS_RST].evidence)
    assert any("NO_SOCKET" in e for e in got[ec.CRASH_SENDS_RST].evidence)
    assert any("EADDRINUSE" in e for e in got[ec.TIME_WAIT_BLOCKS].evidence)
    assert any("tcp_tw_reuse 0: EADDRNOTAVAIL" in e for e in got[ec.TIME_WAIT_BLOCKS].evidence)
    assert any("7,875 s" in e or "tcp_keepalive_time" in e
               for e in got[ec.KEEPALIVE_QUICK].evidence)


def _changed(runs, key, **facts):
    out = dict(runs)
    out[key] = copy.copy(runs[key])
    out[key].facts = {**runs[key].facts, **facts}
    return out


@pytest.mark.live
def test_verdicts_follow_the_facts(live, runs):
    # A kernel that reset on every kill: the plain kill's FIN turned into an RST.
    plain = copy.copy(runs[ec.PY_KILL])
    plain.connection = copy.deepcopy(plain.connection)
    for s in plain.connection.segments:
        if s.flags & FIN and plain.connection.side_of(s) == "client":
            s.flags = (s.flags & ~FIN) | RST
    assert verdicts({**runs, ec.PY_KILL: plain})[ec.KILL_SENDS_RST] == "true"
    # connect() refused on the TIME-WAIT 4-tuple in both runs: the claim holds.
    failed = [{**a, "result": "EADDRNOTAVAIL"} for a in runs[ec.PY_TW_REUSE_PORT].facts["attempts"]]
    blocked = _changed(_changed(_changed(runs, ec.PY_TW_REUSE, connect="EADDRNOTAVAIL"),
                                ec.PY_TW_REUSE_SERVER, connect="EADDRNOTAVAIL"),
                       ec.PY_TW_REUSE_PORT, attempts=failed)
    assert verdicts(blocked)[ec.TIME_WAIT_BLOCKS] == "true"
    # Nothing refused anywhere (bind and every connect() allowed): false.
    free = _changed(_changed(runs, ec.PY_TW_REUSE, bind_without_reuseaddr="ok"),
                    ec.PY_TW_REUSE_PORT, attempts=[{**a, "result": "ok"} for a in failed])
    assert verdicts(free)[ec.TIME_WAIT_BLOCKS] == "false"
    # Defaults tuned down to seconds: keepalive would notice quickly.
    quick = _changed(runs, ec.PY_KEEPALIVE, default_detection_s=20)
    assert verdicts(quick)[ec.KEEPALIVE_QUICK] == "true"
    # A host that still spoke while "down" (a segment from the server during the outage).
    gone = copy.copy(runs[ec.PY_VANISH])
    gone.connection = copy.deepcopy(gone.connection)
    off = next(e.t for e in gone.events if e.what.startswith("the host loses power"))
    last = gone.connection.segments[-1]
    gone.connection.segments.append(copy.copy(last))
    spoke = gone.connection.segments[-1]
    spoke.src, spoke.sport, spoke.dst, spoke.dport = last.dst, last.dport, last.src, last.sport
    spoke.t = max(off, last.t) + 0.001
    spoke.flags = RST
    assert verdicts({**runs, ec.PY_VANISH: gone})[ec.CRASH_SENDS_RST] == "true"
