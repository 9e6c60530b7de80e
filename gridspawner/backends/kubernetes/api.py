"""Thin I/O: one Kubernetes API call as raw JSON, retried with bounded backoff.

The generated client's models are skipped on purpose (``_preload_content=False``): the
builders produce dicts, the watches keep dicts, and deserialising 500 nodes into models
would cost more than everything else together.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Any, Awaitable, Callable

import aiohttp

#: statuses worth another try: throttled, or the API server (or its proxy) had a bad moment
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class ApiError(Exception):
    """An API answer outside 2xx, with what the server said."""

    def __init__(self, status: int, reason: str = "", body: Any = None, retry_after: float | None = None):
        self.status = status
        self.reason = reason
        self.body = body
        self.retry_after = retry_after
        message = body.get("message") if isinstance(body, dict) else None
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")

    @property
    def message(self) -> str:
        if isinstance(self.body, dict) and self.body.get("message"):
            return str(self.body["message"])
        return self.reason or str(self.status)


def _retry_after(headers) -> float | None:
    try:
        value = headers.get("Retry-After")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


async def read_json(response) -> Any:
    """Read an aiohttp response as JSON; raise ApiError for a status outside 2xx."""
    try:
        raw = await response.read()
    finally:
        response.release()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")[:500]
    if not 200 <= response.status <= 299:
        raise ApiError(response.status, response.reason or "", body, _retry_after(response.headers))
    return body


def is_transient(error: BaseException) -> bool:
    if isinstance(error, ApiError):
        return error.status in RETRY_STATUSES
    return isinstance(error, (asyncio.TimeoutError, aiohttp.ClientError, ConnectionError))


def backoff_delay(attempt: int, base: float = 0.2, cap: float = 5.0) -> float:
    """Exponential backoff with full jitter (attempt counts from 0)."""
    return random.uniform(base / 2, min(cap, base * (2**attempt)))


async def call(
    fn: Callable[..., Awaitable[Any]],
    *args: Any,
    retries: int = 5,
    timeout: float = 30.0,
    log: logging.Logger | logging.LoggerAdapter | None = None,
    what: str = "",
    **kwargs: Any,
) -> Any:
    """``fn(*args, **kwargs)`` (a generated client method) as JSON, retrying transient
    failures (429, 5xx, timeouts, dropped connections) at most ``retries`` times.

    A create that failed transiently may have been applied anyway: callers of create
    treat 409 AlreadyExists by comparing the launch id annotation.
    """
    attempt = 0
    while True:
        try:
            response = await fn(*args, _preload_content=False, _request_timeout=timeout, **kwargs)
            return await read_json(response)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - classified just below
            if not is_transient(e) or attempt >= retries:
                raise
            delay = backoff_delay(attempt)
            if isinstance(e, ApiError) and e.retry_after:
                delay = min(max(delay, e.retry_after), 10.0)
            if log is not None:
                log.warning("Kubernetes API %s failed (%s); retry %d/%d in %.1f s", what or getattr(fn, "__name__", "call"), e, attempt + 1, retries, delay)
            await asyncio.sleep(delay)
            attempt += 1
