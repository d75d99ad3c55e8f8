"""The collector's port must be its own: an app pointed at a port another program
holds would send its spans there, and the person would wait for them in vain."""

from __future__ import annotations

import socket

__all__ = ["PortTaken", "check_port_free"]


class PortTaken(RuntimeError):
    """The port is another program's; the message says how to pick another."""

    def __init__(self, port: int, how: str) -> None:
        other = 4400 if port != 4400 else 4401
        super().__init__(
            f"port {port} is taken by another program (another collector?): stop it,"
            f" or give the collector another port: {how.format(port=other)}"
        )


def check_port_free(host: str, port: int, how: str) -> None:
    """:class:`PortTaken` unless ``host:port`` can be listened on; ``how`` says how
    to choose another port, with ``{port}`` for a free-looking one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        # As the server will: a port whose last connections wait out TIME_WAIT is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise PortTaken(port, how) from None
