"""A socket guard for the offline tests: put this folder first on PYTHONPATH and every Python process started
with it (the command, its worker processes) records each attempt to reach the network in the JSON-lines file
$CODEDOUBLE_SOCKET_LOG, and the attempt fails as on a machine without a network.

Recorded and refused: an AF_INET/AF_INET6 connect, connect_ex, sendto or sendmsg, `socket.create_connection`, and a
`getaddrinfo` that would ask a resolver (a host name; a numeric address or None is only parsed, so it passes).
Recorded and allowed: bind and listen, so a test can see where `serve --tcp` listens. AF_UNIX sockets (the
socketpairs of asyncio and multiprocessing) are local and pass unrecorded. What a C library does with its own
sockets bypasses this guard; the offline test also runs the commands without a network (`unshare -rn`) for that.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
import sys
import traceback

_LOG = os.environ.get("CODEDOUBLE_SOCKET_LOG")
_INET = {socket.AF_INET, socket.AF_INET6}


def _record(event: str, **fields: object) -> None:
    if _LOG:
        # Where from: the calling frames outside this file, for whoever reads a failing test's log.
        where = [f"{f.filename}:{f.lineno} {f.name}" for f in traceback.extract_stack() if f.filename != __file__][-4:]
        line = json.dumps({"event": event, "pid": os.getpid(), "where": where, **fields}, default=repr)
        with open(_LOG, "a", encoding="utf-8") as log:  # one write per line: worker processes share the file
            log.write(line + "\n")


def _refuse(event: str, **fields: object) -> OSError:
    _record(event, **fields)
    return OSError(errno.ENETUNREACH, f"codedouble's offline test: no network ({event})")


def _numeric(host: object) -> bool:
    if host is None:
        return True
    text = host.decode() if isinstance(host, bytes) else str(host)
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
_sendto, _sendmsg = socket.socket.sendto, socket.socket.sendmsg
_bind, _listen = socket.socket.bind, socket.socket.listen
_getaddrinfo = socket.getaddrinfo


def connect(self: socket.socket, address: object) -> None:
    if self.family in _INET:
        raise _refuse("connect", address=address)
    return _connect(self, address)


def connect_ex(self: socket.socket, address: object) -> int:
    if self.family in _INET:
        _record("connect_ex", address=address)
        return errno.ENETUNREACH
    return _connect_ex(self, address)


def sendto(self: socket.socket, *args: object) -> int:
    if self.family in _INET:
        raise _refuse("sendto", address=args[-1])
    return _sendto(self, *args)  # type: ignore[arg-type]


def sendmsg(self: socket.socket, *args: object) -> int:
    if self.family in _INET and len(args) >= 4 and args[3] is not None:  # to an address: a datagram out
        raise _refuse("sendmsg", address=args[3])
    return _sendmsg(self, *args)  # type: ignore[arg-type]


def bind(self: socket.socket, address: object) -> None:
    if self.family in _INET:
        _record("bind", address=address)
    return _bind(self, address)


def listen(self: socket.socket, *args: int) -> None:
    if self.family in _INET:
        _record("listen", address=self.getsockname())
    return _listen(self, *args)


def create_connection(address: object, *args: object, **kwargs: object) -> socket.socket:
    raise _refuse("create_connection", address=address)


def getaddrinfo(host: object, *args: object, **kwargs: object) -> list:  # type: ignore[type-arg]
    if not _numeric(host):
        _record("getaddrinfo", host=host)
        raise socket.gaierror(socket.EAI_NONAME, "codedouble's offline test: no name lookup")
    return _getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]


socket.socket.connect = connect  # type: ignore[method-assign]
socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
socket.socket.sendto = sendto  # type: ignore[method-assign,assignment]
socket.socket.sendmsg = sendmsg  # type: ignore[method-assign]
socket.socket.bind = bind  # type: ignore[method-assign]
socket.socket.listen = listen  # type: ignore[method-assign]
socket.create_connection = create_connection  # type: ignore[assignment]
socket.getaddrinfo = getaddrinfo
_record("guarded", argv=sys.argv)  # the test checks each process really ran under the guard
