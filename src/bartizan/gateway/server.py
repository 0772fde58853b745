"""Run the gateway under uvicorn: JSON logs, graceful shutdown that drains in-flight streams.

Logging is configured here, for the `bartizan` logger only, when the server starts (never at import). A
log line carries ids, verdicts, finding ids and timings; the gateway never passes prompt text to a logger.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Sequence
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

from bartizan.gateway.config import GatewayConfig
from bartizan.home import home_dir

_STD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _STD and not k.startswith("_")})
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_logging(config: GatewayConfig, log_dir: Path | None = None) -> None:
    """JSON (or plain) lines on stderr and, when `log_dir` is given, in a rotating ``gateway.log`` there."""
    logger = logging.getLogger("bartizan")
    fmt = JsonFormatter() if config.log_json else logging.Formatter("%(levelname)s %(name)s %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_dir is not None:
        log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        handlers.append(RotatingFileHandler(log_dir / "gateway.log", maxBytes=10_000_000, backupCount=5))
    for h in handlers:
        h.setFormatter(fmt)
    logger.handlers[:] = handlers
    logger.setLevel(config.log_level.upper())
    logger.propagate = False


def serve(config: GatewayConfig, *, demo: Any | None = None, graceful_s: int = 30, notes: Sequence[str] = ()) -> None:
    """Build the gateway (policies, models and rate limiter load now) and serve until SIGINT/SIGTERM.

    On a signal uvicorn stops accepting connections and waits up to `graceful_s` for in-flight requests,
    streams included; the app's lifespan then flushes the audit queue and closes the upstream pools."""
    import uvicorn

    from bartizan.gateway.app import Gateway

    configure_logging(config, home_dir(create=True) / "logs")
    gateway = Gateway(config, demo=demo)
    log = logging.getLogger("bartizan.gateway")
    log.info(
        "starting",
        extra={
            "host": config.host,
            "port": config.port,
            "tenants": sorted(gateway.tenants),
            "audit": (config.audit.url or "sqlite://").split("://", 1)[0],
            "rate_limits": "redis" if config.redis_url else "per-process",
        },
    )
    for note in notes:
        log.info(note)
    uvicorn.run(
        gateway.app(),
        host=config.host,
        port=config.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=graceful_s,
    )
