"""The workshop library in captures/: every file replays, and closes as the scenario in
its name says. A file is named close-MODE[-by-server][-node][-pending-BYTES].pcapng after
the command that recorded it; the expected verdict comes from the mode, the closer and
the runtime alone."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from conftest import PROJECT_CAPTURES

NAME = re.compile(r"close-(?P<mode>[a-z-]+?)(?P<server>-by-server)?(?P<node>-node)?"
                  r"(-pending-(?P<pending>\d+))?(?P<ipv6>-ipv6)?\.pcapng")
FILES = sorted(p.name for p in PROJECT_CAPTURES.glob("*.pcap*"))
FIN_MODES = {"end", "close", "half-close"}
# The modes of live/ending_modes.py and live/vanish.py: those ending with a FIN close as
# `end` does; the others as they are listed.
ENDING_FIN_MODES = {"kill", "linger", "linger-in-time", "unsent", "tw-reuse", "tw-reuse-port"}
ENDING_EXPECTED = {
    "vanish": {"close": "open", "first_closer": None, "rst_from": None},
    "vanish-keepalive": {"close": "rst", "first_closer": "client", "rst_from": "client",
                         "time_wait": None},
    "vanish-return": {"close": "rst", "first_closer": "server", "rst_from": "server",
                      "time_wait": None},
}
ADDRESSES = {(False, False): ("127.0.0.2:", "127.0.0.1:"), (False, True): ("[::2]:", "[::1]:"),
             (True, False): ("192.0.2.2:", "192.0.2.1:"),
             (True, True): ("[2001:db8::2]:", "[2001:db8::1]:")}
RST_MODES = {"reset", "unread"}
RST_MODES |= {"keepalive-race"}     # the closer's FIN, the peer's request, its RST


def expected(m: re.Match) -> dict:
    """What the scenario must end with, whatever the timing of a given recording."""
    mode = m["mode"]
    closer = "server" if m["server"] else "client"
    other = "client" if closer == "server" else "server"
    if mode in ENDING_EXPECTED:
        return ENDING_EXPECTED[mode]
    if mode in ENDING_FIN_MODES:
        mode = "end"
    if mode == "kill-unread":
        mode = "unread"
    if mode == "simultaneous":
        return {"close": "fin", "simultaneous": True, "rst_from": None, "time_wait": "both",
                "final": {"client": "TIME-WAIT", "server": "TIME-WAIT"}}
    # Node's socket.destroy() closes the descriptor: a FIN, unlike the Python mode.
    if mode in FIN_MODES or (mode == "destroy" and m["node"]):
        return {"close": "fin", "first_closer": closer, "rst_from": None,
                "simultaneous": False, "time_wait": closer,
                "final": {closer: "TIME-WAIT", other: "CLOSED"}}
    assert mode in RST_MODES | {"destroy"}, mode
    return {"close": "rst", "first_closer": closer, "rst_from": closer,
            "simultaneous": False, "time_wait": None,
            "final": {"client": "CLOSED", "server": "CLOSED"}}


def args_of(m: re.Match) -> str:
    return (f"--mode {m['mode']}" + (" --closer server" if m["server"] else "")
            + (" --runtime node" if m["node"] else "")
            + (f" --pending {m['pending']}" if m["pending"] else "")
            + (" --ipv6" if m["ipv6"] else ""))


def command(name: str) -> str:
    """The command that recorded `name`, as README.md and record.sh must spell it."""
    m = NAME.fullmatch(name)
    assert m, f"{name}: not a close-MODE[-by-server][-node][-pending-BYTES].pcapng name"
    return f"tcptrace close {args_of(m)} --save captures/{name}"


def test_the_library_has_every_mode():
    from tcptrace.live.close_modes import MODES

    assert {NAME.fullmatch(n)["mode"] for n in FILES} == set(MODES)


@pytest.mark.parametrize("name", FILES)
def test_capture_closes_as_its_scenario_says(replay, name):
    code, out, err = replay(PROJECT_CAPTURES / name, "--json")
    assert (code, err) == (0, "")
    conn, *later = json.loads(out)["connections"]
    m = NAME.fullmatch(name)
    # tw-reuse*: a second connection on the very same 4-tuple; every other file has one.
    assert len(later) == m["mode"].startswith("tw-reuse")
    verdict = conn["verdict"]
    want = expected(m)
    assert {k: verdict[k] for k in want} == want
    # Recorded by tcptrace itself: client 127.0.0.2, server 127.0.0.1 (the --ipv6 and
    # vanished-host addresses below), every segment explained in a pcapng comment.
    client, server = ADDRESSES[(m["mode"].startswith("vanish"), bool(m["ipv6"]))]
    for c in (conn, *later):
        assert c["client"].startswith(client) and c["server"].startswith(server)
        assert all(p.get("comments") for p in c["packets"])


@pytest.mark.parametrize("name", [n for n in FILES if re.match(r"close-end-pending-", n)])
def test_end_delivers_every_pending_byte(replay, name):
    pending = int(NAME.fullmatch(name)["pending"])
    _, out, _ = replay(PROJECT_CAPTURES / name, "--json")
    [conn] = json.loads(out)["connections"]
    acked = max(p["ack"] for p in conn["packets"] if p["from"] == "server")
    assert acked > pending          # the server's kernel has them all, and the FIN


@pytest.mark.parametrize("name", FILES)
def test_readme_and_record_script_give_the_exact_command(name):
    readme = (PROJECT_CAPTURES / "README.md").read_text()
    script = (PROJECT_CAPTURES / "record.sh").read_text()
    assert f"`{command(name)}`" in readme
    args = args_of(NAME.fullmatch(name))
    recorded = [" ".join(line.split()[2:]) for line in script.splitlines()
                if line.startswith(f"record {name.removesuffix('.pcapng')} ")]
    assert recorded == [args]


@pytest.mark.parametrize("name", FILES)
def test_tshark_sees_the_comments(tshark, name):
    out = subprocess.run([tshark, "-r", PROJECT_CAPTURES / name, "-T", "fields",
                          "-e", "frame.comment"], capture_output=True, text=True).stdout
    assert out.splitlines() and all(line.strip() for line in out.splitlines())
