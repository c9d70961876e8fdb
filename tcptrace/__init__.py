"""tcptrace: what TCP really does when a connection is closed, on the wire and in the kernel."""

__version__ = "0.1.0"
