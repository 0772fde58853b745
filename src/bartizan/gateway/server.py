"""Run the gateway under uvicorn: JSON logs, graceful shutdown that drains in-flight streams.

Logging is configured here, for the `bartizan` logger only, when the server starts (never at import). A
log line carries ids, verdicts, finding ids and timings; the gateway never passes prompt text to a logger.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from bartizan.gateway.config import GatewayConfig

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


def configure_logging(config: GatewayConfig) -> None:
    logger = logging.getLogger("bartizan")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if config.log_json else logging.Formatter("%(levelname)s %(name)s %(message)s")
    )
    logger.handlers[:] = [handler]
    logger.setLevel(config.log_level.upper())
    logger.propagate = False


def serve(config: GatewayConfig, *, demo: Any | None = None, graceful_s: int = 30) -> None:
    """Build the gateway (policies, models and rate limiter load now) and serve until SIGINT/SIGTERM.

    On a signal uvicorn stops accepting connections and waits up to `graceful_s` for in-flight requests,
    streams included; the app's lifespan then flushes the audit queue and closes the upstream pools."""
    import uvicorn

    from bartizan.gateway.app import Gateway

    configure_logging(config)
    gateway = Gateway(config, demo=demo)
    log = logging.getLogger("bartizan.gateway")
    log.info(
        "starting",
        extra={
            "host": config.host,
            "port": config.port,
            "tenants": sorted(gateway.tenants),
            "audit": config.audit.url.split("://", 1)[0],
            "rate_limits": "redis" if config.redis_url else "per-process",
        },
    )
    uvicorn.run(
        gateway.app(),
        host=config.host,
        port=config.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=graceful_s,
    )
