"""logger(): JSON log lines on stderr in hclog's shape (@level, @message,
@timestamp), which the crops host re-logs under the plugin's name and level,
and quotes when the plugin crashes. Never print to stdout before the
handshake line: stdout carries it (the SDK points stdout at stderr after it)."""

from __future__ import annotations

import datetime
import json
import logging
import sys

_LEVELS = {"DEBUG": "debug", "INFO": "info", "WARNING": "warn", "ERROR": "error", "CRITICAL": "error"}


class HclogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "@level": _LEVELS.get(record.levelname, "info"),
            "@message": record.getMessage(),
            "@timestamp": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(),
        }
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            out.update({str(k): v for k, v in extra.items()})
        return json.dumps(out, default=str)


def logger(name: str = "crops_sdk") -> logging.Logger:
    """The logger a plugin should use (JSON lines on stderr)."""
    log = logging.getLogger(name)
    if not any(getattr(h, "_crops", False) for h in log.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(HclogFormatter())
        h._crops = True  # type: ignore[attr-defined]
        log.addHandler(h)
        log.setLevel(logging.DEBUG)
        log.propagate = False
    return log
