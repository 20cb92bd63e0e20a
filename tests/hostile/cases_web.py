"""`afford web` refuses a bad address or limit with one line and exit 2, before serving (issue 15, item 4). The
server's own answers are tested in tests/test_web.py."""

from __future__ import annotations

import socket
from pathlib import Path

from hostile.harness import Case

_HELD: list[socket.socket] = []  # sockets kept open for the run of a row (closed when the process ends)


def _port_in_use(tmp: Path) -> list[str]:
    """Hold a listening socket on a free loopback port and give its number to the command."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    _HELD.append(sock)
    return ["--port", str(sock.getsockname()[1])]


CASES = [
    Case("web-port-too-big", ["web", "--port", "70000"], 2, r"--port 70000: give a port from 0 to 65535"),
    Case("web-port-negative", ["web", "--port", "-1"], 2, r"--port -1"),
    Case("web-port-in-use", ["web"], 2, r"cannot listen on 127\.0\.0\.1:\d+", setup=_port_in_use),
    Case("web-trace-seconds-zero", ["web", "--trace-seconds", "0"], 2, r"--trace-seconds 0: give seconds"),
    Case("web-trace-seconds-nan", ["web", "--trace-seconds", "nan"], 2, r"--trace-seconds nan"),
    Case("web-max-body-zero", ["web", "--max-body", "0"], 2, r"--max-body 0: give a number of bytes"),
]
