"""The scenario's reader and helpers on plain loopback sockets (no root, no capture)."""

import hashlib
import socket
import threading

from tcptrace.backpressure import scenario
from tcptrace.backpressure.result import BackpressureOptions
from tcptrace.backpressure.stream import DEFAULT_SEED
from tcptrace.buffers import read_sysctl


def test_a_reader_timeout_keeps_the_bytes_already_read():
    run = scenario.Run(BackpressureOptions(pause=0, timeout=0.3))
    data = bytes(range(256)) * 40
    with socket.create_server(("127.0.0.1", 0)) as listener:
        reader = threading.Thread(target=run._read, args=(listener,))
        reader.start()
        with socket.create_connection(listener.getsockname()) as client:
            client.sendall(data)          # ...and never closes: the reader times out
            reader.join(10)
    info = run.raw.reader
    assert run.reader_done.is_set()
    assert info["error"].startswith("TimeoutError") and "eof" not in info
    assert info["bytes"] == len(data)
    assert info["digest"] == hashlib.sha256(data).hexdigest()


def test_a_clean_eof_is_recorded():
    run = scenario.Run(BackpressureOptions(pause=0, timeout=5))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        reader = threading.Thread(target=run._read, args=(listener,))
        reader.start()
        with socket.create_connection(listener.getsockname()) as client:
            client.sendall(b"x" * 1000)
        reader.join(10)
    info = run.raw.reader
    assert info["bytes"] == 1000 and "eof" in info and "error" not in info


def test_sysctls_and_seed_have_one_source():
    assert not hasattr(scenario, "read_sysctls")
    assert scenario.read_sysctl is read_sysctl
    assert BackpressureOptions().seed == DEFAULT_SEED
