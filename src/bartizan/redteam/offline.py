"""`OfflineGuard`: under ``--offline``, the harness may talk to the target and the judge host and nothing else.

Two layers, because neither alone is enough:

- `connector()` returns an aiohttp connector that refuses a host:port the guard does not allow before any
  name lookup or connection, so the HTTP targets fail fast with a clear message;
- `active()` is a context manager that, for its duration, installs a process-wide audit hook
  (``socket.getaddrinfo`` and ``socket.connect`` events) refusing every other outgoing INET connection or lookup,
  so that a judge client or a library that does not go through our connector is held to the same rule. Audit hooks
  cannot be removed, so one hook is installed once and consults the guards currently active (none: no effect).

Allowed entries are host names, IP addresses, ``host:port`` or URLs; an entry with a port allows only that port.
Host names are resolved once when the guard becomes active so that connections by IP address can be matched.
Unix-domain sockets are local and not checked. A refused connection raises `OfflineViolation`.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import ClientRequest, ClientTimeout
from aiohttp.connector import Connection
from aiohttp.tracing import Trace


class OfflineViolation(RuntimeError):
    """An outgoing connection or lookup to a host the offline guard does not allow."""


def _parse(entry: str) -> tuple[str, int | None]:
    """``"http://h:1/v1"`` / ``"h:1"`` / ``"h"`` / ``"[::1]:8"`` -> (lower-cased host, port or None)."""
    text = entry.strip()
    parts = urlsplit(text if "://" in text else f"//{text}")
    host = parts.hostname
    if not host:
        raise ValueError(f"not a host, host:port or URL: {entry!r}")
    port = parts.port
    if port is None and "://" in text:
        port = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return host.lower(), port


class OfflineGuard:
    """Allow outgoing connections only to `allowed_hosts` (see the module docstring for the entry forms)."""

    def __init__(self, allowed_hosts: Iterable[str]) -> None:
        self.allowed: tuple[tuple[str, int | None], ...] = tuple(_parse(h) for h in allowed_hosts)
        self._addresses: set[tuple[str, int | None]] = set()
        self._resolve()

    def _resolve(self) -> None:
        """Add the IP addresses of every allowed name (once, before any hook is active)."""
        for host, port in self.allowed:
            self._addresses.add((host, port))
            try:
                infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
            except OSError:
                continue
            for info in infos:
                self._addresses.add((str(info[4][0]).lower(), port))

    def allows(self, host: str, port: int | None = None) -> bool:
        """True when a connection to `host` (name or address) on `port` (None: any allowed port) is allowed."""
        host = host.lower().strip("[]")
        return any(h == host and (p is None or port is None or p == port) for h, p in self._addresses)

    def check(self, host: str, port: int | None = None) -> None:
        """Raise `OfflineViolation` unless `allows(host, port)`."""
        if not self.allows(host, port):
            where = f"{host}:{port}" if port is not None else host
            allowed = ", ".join(f"{h}:{p}" if p is not None else h for h, p in self.allowed) or "nothing"
            raise OfflineViolation(f"offline mode: refusing a connection to {where}; allowed: {allowed}")

    def connector(self, **kwargs: Any) -> GuardedConnector:
        """An aiohttp connector that checks every host against the guard before resolving it."""
        return GuardedConnector(self, **kwargs)

    @contextmanager
    def active(self) -> Iterator[OfflineGuard]:
        """Enforce the guard on every INET socket connect and name lookup in this process for the block's duration."""
        _install_hook()
        with _LOCK:
            _ACTIVE.append(self)
        try:
            yield self
        finally:
            with _LOCK:
                _ACTIVE.remove(self)


class GuardedConnector(aiohttp.TCPConnector):
    """An aiohttp connector that refuses, before resolving or connecting, a host:port the guard does not allow.

    The check is in `connect`, which aiohttp calls for every new connection (redirects included), because its
    resolver is skipped for IP-address URLs.
    """

    def __init__(self, guard: OfflineGuard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.guard = guard

    async def connect(self, req: ClientRequest, traces: list[Trace], timeout: ClientTimeout) -> Connection:
        self.guard.check(req.url.host or "", req.url.port)
        return await super().connect(req, traces, timeout)


_ACTIVE: list[OfflineGuard] = []
_LOCK = threading.Lock()
_HOOKED = False


def _install_hook() -> None:
    global _HOOKED
    with _LOCK:
        if not _HOOKED:
            sys.addaudithook(_audit)
            _HOOKED = True


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """The process-wide audit hook: a no-op unless some guard is active."""
    if not _ACTIVE or event not in ("socket.connect", "socket.getaddrinfo"):
        return
    guards = list(_ACTIVE)
    port: int | None
    if event == "socket.connect":
        address = args[1]
        if not isinstance(address, tuple) or len(address) < 2:
            return  # AF_UNIX and other local sockets
        host, port = str(address[0]), int(address[1])
    else:
        raw_host, raw_port = args[0], args[1]
        if raw_host is None:
            return  # a passive / local lookup
        host = raw_host.decode("idna") if isinstance(raw_host, bytes) else str(raw_host)
        port = raw_port if isinstance(raw_port, int) and raw_port else None
    for guard in guards:
        guard.check(host, port)
