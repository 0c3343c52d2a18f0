"""The operator's log: one line per event a person should read, no traceback for a dropped connection.

An apiserver restart or a network blip is routine for an operator: kopf retries its
watches and our reconciles are retried by the work queue. So a lost connection is a
one-line WARNING (what failed, that it will retry), while an unexpected error keeps
its traceback at ERROR.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from kubeflowlite.k8s import kube

RETRYABLE = (kube.ApiError, OSError, asyncio.TimeoutError, aiohttp.ClientError)
"""Errors a retry fixes: API answers, and connections refused, reset or dropped."""

_KOPF_RETRY = "failed; will retry"


class _KopfRetriesAreWarnings(logging.Filter):
    """kopf logs each failed watch request it will retry at ERROR: make it a WARNING, without traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and _KOPF_RETRY in record.getMessage():
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


def configure(level: str) -> None:
    """Log to stderr at `level` (kopf's own chatter only from WARNING unless debugging)."""
    logging.basicConfig(
        level=getattr(logging, level.upper()), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if level.lower() != "debug":
        logging.getLogger("kopf").setLevel(logging.WARNING)
    retry_filter = _KopfRetriesAreWarnings()
    for handler in logging.getLogger().handlers:
        handler.addFilter(retry_filter)


def is_retryable(error: BaseException) -> bool:
    return isinstance(error, RETRYABLE)
