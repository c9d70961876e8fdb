"""Network namespaces of a run's own, anonymous: made with unshare(2), entered with setns(2).

A socket, a capture socket, a thread or a subprocess (`ss`, `ip`, `nft`, node) belongs to
the namespace its creator was in when it was created, and stays there. So the main thread
steps into a namespace (`with ns.entered():`) just long enough to create what must live
there, then steps back. No name in /run/netns: the kernel frees a namespace when its last
socket, thread and descriptor are gone, so nothing outlives the run, not even after a
SIGKILL; `close()` only drops our descriptor.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from tcptrace.errors import NeedPrivilege, TcptraceError

CLONE_NEWNET = 0x40000000
_THIS_THREAD = "/proc/thread-self/ns/net"


def _libc_call(name: str, *args: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        err = ctypes.get_errno()
        if err == 1:    # EPERM
            raise NeedPrivilege(f"a network namespace of the run's own needs CAP_SYS_ADMIN "
                                f"({name}: {os.strerror(err)}): run as root or with sudo")
        raise TcptraceError(f"{name} of a network namespace failed: {os.strerror(err)}")


_OURS: set[int] = set()     # inode numbers of the namespaces made here


def inside_our_namespace() -> bool:
    """Whether the calling thread is in a namespace made by this process (so a sysctl
    written now changes that namespace, never the host's)."""
    return os.stat(_THIS_THREAD).st_ino in _OURS


class NetNamespace:
    """A fresh network namespace with its `lo` up (127.0.0.1 and ::1)."""

    def __init__(self) -> None:
        self._home = os.open(_THIS_THREAD, os.O_RDONLY | os.O_CLOEXEC)
        self.fd = -1
        try:
            _libc_call("unshare", CLONE_NEWNET)
            try:
                self.fd = os.open(_THIS_THREAD, os.O_RDONLY | os.O_CLOEXEC)
                _OURS.add(os.fstat(self.fd).st_ino)
            finally:
                _libc_call("setns", self._home, CLONE_NEWNET)
            self.run("ip", "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    @contextmanager
    def entered(self) -> Iterator[None]:
        """The calling thread inside this namespace for the block, then back home."""
        _libc_call("setns", self.fd, CLONE_NEWNET)
        try:
            yield
        finally:
            _libc_call("setns", self._home, CLONE_NEWNET)

    def run(self, *command: str) -> str:
        """Run a command (`ip`, `nft`, `sysctl`) inside; its output; one-line error."""
        with self.entered():
            try:
                proc = subprocess.run(command, capture_output=True, text=True)
            except FileNotFoundError:
                raise TcptraceError(f"`{command[0]}` was not found: install "
                                    f"{_PACKAGE.get(command[0], command[0])}") from None
        if proc.returncode != 0:
            why = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[0]
            raise TcptraceError(f"{' '.join(command[:4])} failed in the run's namespace: {why}")
        return proc.stdout

    def close(self) -> None:
        for fd in (self.fd, self._home):
            if fd >= 0:
                os.close(fd)
        self.fd = self._home = -1

    def __enter__(self) -> NetNamespace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_PACKAGE = {"ip": "iproute2 (apt-get install iproute2)",
            "nft": "nftables (apt-get install nftables)"}
