"""Serve any ASGI app over real loopback HTTP from a background thread, for tests.

`serve_app(app)` binds 127.0.0.1 on a free port chosen by the kernel (the socket is bound before uvicorn starts,
so there is no race with other tests picking the same port), runs `uvicorn.Server` in a daemon thread with the
app's lifespan, waits until it accepts connections, yields the base URL (``http://127.0.0.1:<port>``, no trailing
slash) and shuts the server down on exit: graceful first, forced if open streams keep it alive past the grace
period. Import it as ``from serve_util import serve_app`` (pytest puts each test folder on ``sys.path``).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp


class ServerStartError(RuntimeError):
    """The server thread died or did not accept connections in time."""


@contextmanager
def serve_app(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    start_timeout_s: float = 10.0,
    grace_s: float = 2.0,
    lifespan: str = "auto",
) -> Iterator[str]:
    """Run `app` on a free loopback port for the duration of the block; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan=lifespan,  # type: ignore[arg-type]
        access_log=False,
        timeout_graceful_shutdown=int(max(1, grace_s)),
    )
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        _wait_started(server, thread, host, port, start_timeout_s, failure)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(grace_s + 1.0)
        if thread.is_alive():
            server.force_exit = True
            thread.join(5.0)
        sock.close()


def _wait_started(
    server: uvicorn.Server,
    thread: threading.Thread,
    host: str,
    port: int,
    timeout_s: float,
    failure: list[BaseException],
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not thread.is_alive():
            cause = failure[0] if failure else None
            raise ServerStartError(f"server on port {port} stopped during start-up") from cause
        if server.started:
            try:
                with socket.create_connection((host, port), timeout=1.0):
                    return
            except OSError:
                pass
        time.sleep(0.01)
    raise ServerStartError(f"server on port {port} did not start within {timeout_s} s")
