"""One side of a small TCP exchange for tests/data/shapes/record.sh, run inside a
network namespace: `peer.py server ADDR PORT` accepts one connection, reads the
request to EOF and closes; `peer.py client ADDR PORT` sends a request, reads the reply,
then shuts its sending side first (a graceful close the client starts) and reads to EOF.
The server replies before the client's FIN, so both directions carry data.
`peer.py server-first ADDR PORT` and `peer.py client-last ADDR PORT` are the same
exchange closed the other way: the server shuts its side after the reply, and the client
closes once it has read to EOF, after its ACK of the server's FIN has left on its own."""

from __future__ import annotations

import socket
import sys
import time

REQUEST = b"GET /shapes HTTP/1.0\r\n\r\n"
REPLY = b"HTTP/1.0 200 OK\r\ncontent-length: 6\r\n\r\nshapes"


def _accept(addr: str, port: int) -> socket.socket:
    """Listen on ADDR:PORT, say so, accept one connection, read its request and reply."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as ls:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((addr, port))
        ls.listen(1)
        print("ready", flush=True)
        conn, _ = ls.accept()
    conn.recv(4096)
    conn.sendall(REPLY)
    return conn


def server(addr: str, port: int) -> None:
    with _accept(addr, port) as conn:
        while conn.recv(4096):              # to the client's FIN
            pass
        time.sleep(0.05)                    # the FIN's ACK leaves on its own first
        conn.shutdown(socket.SHUT_WR)


def client(addr: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.create_connection((addr, port), timeout=10) as c:
        assert family == c.family
        c.sendall(REQUEST)
        got = b""
        while len(got) < len(REPLY):
            got += c.recv(4096)
        time.sleep(0.05)
        c.shutdown(socket.SHUT_WR)
        while c.recv(4096):
            pass


def server_first(addr: str, port: int) -> None:
    with _accept(addr, port) as conn:
        time.sleep(0.05)                    # the reply's ACK first: the FIN on its own
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(4096):              # to the client's FIN
            pass


def client_last(addr: str, port: int) -> None:
    with socket.create_connection((addr, port), timeout=10) as c:
        c.sendall(REQUEST)
        while c.recv(4096):                 # the reply, then the server's FIN
            pass
        time.sleep(0.3)                     # the FIN's ACK leaves on its own first
        c.shutdown(socket.SHUT_WR)


ROLES = {"server": server, "client": client, "server-first": server_first,
         "client-last": client_last}

if __name__ == "__main__":
    role, host, port_text = sys.argv[1:4]
    ROLES[role](host, int(port_text))
