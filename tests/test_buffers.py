"""`tcptrace buffers` prints what sysctl and getsockopt say on this machine."""

import io
import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from tcptrace.buffers import gather_buffers, ints, set_and_read
from tcptrace.render.buffers import render_buffers
from tcptrace.render.jsonout import buffers_json

from conftest import require


@pytest.fixture(scope="module")
def report():
    return gather_buffers()


def sysctl_file(name):
    return Path("/proc/sys", name.replace(".", "/")).read_text().strip()


@pytest.mark.parametrize("name,layer,label", [
    ("net.ipv4.tcp_wmem", "send", "net.ipv4.tcp_wmem"),
    ("net.core.wmem_max", "send", "net.core.wmem_max"),
    ("net.ipv4.tcp_rmem", "receive", "net.ipv4.tcp_rmem"),
    ("net.core.rmem_max", "receive", "net.core.rmem_max"),
    ("net.ipv4.tcp_moderate_rcvbuf", "receive", "net.ipv4.tcp_moderate_rcvbuf"),
])
def test_sysctl_values_match_proc_sys(report, name, layer, label):
    value = report.layer(layer).value(label)
    assert (value if isinstance(value, list) else [value]) == ints(sysctl_file(name))


def test_sysctl_values_match_the_sysctl_command(report):
    require(None if shutil.which("sysctl") else "sysctl(8) is not installed")
    out = subprocess.run(["sysctl", "-n", "net.ipv4.tcp_rmem"], capture_output=True, text=True)
    assert report.layer("receive").value("net.ipv4.tcp_rmem") == ints(out.stdout)


def test_fresh_socket_matches_getsockopt_and_tcp_mem_defaults(report):
    with socket.socket() as s:
        snd = s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        rcv = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    assert report.layer("send").value("SO_SNDBUF, fresh socket") == snd
    assert report.layer("receive").value("SO_RCVBUF, fresh socket") == rcv
    # a fresh socket starts at the middle value of tcp_wmem / tcp_rmem
    assert snd == ints(sysctl_file("net.ipv4.tcp_wmem"))[1]
    assert rcv == ints(sysctl_file("net.ipv4.tcp_rmem"))[1]


def test_linux_doubles_so_sndbuf_and_clamps_to_wmem_max(report):
    assert set_and_read(socket.SO_SNDBUF, 65536) == 131072
    assert set_and_read(socket.SO_RCVBUF, 65536) == 131072
    assert report.layer("send").value("setsockopt(SO_SNDBUF, 65536)") == 131072
    wmem_max = int(sysctl_file("net.core.wmem_max"))
    assert report.layer("send").value(f"setsockopt(SO_SNDBUF, {1 << 30})") == 2 * wmem_max


def test_application_layers_come_from_the_runtimes(report):
    aio = report.layer("app-asyncio")
    assert aio.value("write high-water mark") == 64 * 1024     # asyncio's documented default
    assert aio.value("write low-water mark") == 16 * 1024
    node = report.layer("app-node")
    if shutil.which("node"):
        out = subprocess.run(["node", "-p", "new (require('net').Socket)().writableHighWaterMark"],
                             capture_output=True, text=True)
        assert node.available and node.value("writableHighWaterMark") == int(out.stdout)
    else:
        assert not node.available


def test_wire_layer_mtu_and_mss(report):
    wire = report.layer("wire")
    assert wire.value("lo MTU") == int(Path("/sys/class/net/lo/mtu").read_text())
    assert 0 < wire.value("MSS in use (snd_mss)") <= wire.value("advertised MSS (advmss)")
    assert wire.value("advertised MSS (advmss)") < min(wire.value("lo MTU"), 65535)


def test_render_and_json(report):
    out = io.StringIO()
    render_buffers(report, Console(file=out, width=140, color_system=None))
    text = out.getvalue()
    assert "tcp_rmem" in text and "backpressure:" in text and "tune:" in text
    doc = json.loads(json.dumps(buffers_json(report)))
    assert doc["schema"] == "tcptrace/1" and doc["command"] == "buffers"
    assert [layer["key"] for layer in doc["layers"]] == ["app-asyncio", "app-node", "send",
                                                          "receive", "wire"]
