"""What the supervisor and a child say over their socket pair before the child runs.

The supervisor sends a length-prefixed pickle of ``(Settings, index)``; the pair is
private to the two processes, so pickling (which keeps every field's type) is safe.
"""

from __future__ import annotations

import pickle
import socket
import struct

from framework.config import Settings

__all__ = ["receive_settings", "send_settings"]

_LEN = struct.Struct(">I")


def send_settings(sock: socket.socket, settings: Settings, index: int) -> None:
    """Supervisor side: hand the child its settings."""
    blob = pickle.dumps((settings, index), protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_LEN.pack(len(blob)) + blob)


def receive_settings(sock: socket.socket) -> tuple[Settings, int]:
    """Child side: the settings the supervisor sent (blocks until they arrive)."""
    size = _LEN.unpack(_recv_exactly(sock, _LEN.size))[0]
    settings, index = pickle.loads(_recv_exactly(sock, size))
    if not isinstance(settings, Settings) or not isinstance(index, int):
        raise TypeError("the supervisor sent something other than (Settings, index)")
    return settings, index


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("the supervisor closed the connection before sending settings")
        buf += chunk
    return bytes(buf)
