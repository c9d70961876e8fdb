"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class TcptraceError(Exception):
    """A problem the user can act on; str(error) is the whole message, one line."""

    exit_code = 2


class NeedPrivilege(TcptraceError):
    """Capturing on lo needs CAP_NET_RAW (and tracefs needs root)."""

    exit_code = 77
