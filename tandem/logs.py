"""Structured (JSON-lines) logging, quiet unless asked otherwise."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tandem.settings import Settings

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # Anything passed through `extra=` becomes a field of its own.
        entry.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def serve_logging(settings: Settings) -> dict:
    """A Serve deployment's `logging_config`: JSON lines at the settings' level, each with its request id, and
    from INFO on one access line per request in each replica that handles it."""
    return {"encoding": "JSON", "log_level": settings.log_level, "enable_access_log": True}


def configure_logging(level: str = "WARNING") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries that pin their own loggers at DEBUG (bm25s does, on import) still stop at the handler.
    handler.setLevel(level.upper())
    # Per-file bars of Hugging Face loads and saves say nothing about progress; our own bars stay.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
