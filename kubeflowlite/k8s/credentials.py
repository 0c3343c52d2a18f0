"""Bearer tokens that change: where a client gets its token, and when it gets a new one.

A kubeconfig user may hold a fixed token, a token file (the in-cluster service
account's is rotated by the kubelet), or an `exec` credential plugin: EKS, GKE and
OIDC logins print a short-lived token and its expiry. One `TokenSource` per cluster
configuration serves both our REST client (kube.Kube) and the copy handed to kopf
(operator.connection_info), so they refresh alike:

- ahead of expiry: a token is renewed once 80 % of its life has passed (at most a
  minute before it expires), so requests never carry an expired token;
- on refusal: a 401 makes the client get a new token and send the request again
  once; kopf does the same through its login handler (it re-logs in on a 401, and
  at the `expiration` we give it, which is our refresh time).

The plugin runs through the `kubernetes` package's ExecProvider (the same code that
reads the kubeconfig), in a worker thread when called from the event loop. Only
token-issuing plugins are supported; a plugin that returns a client certificate is
refused with a clear error.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kubeflowlite.api.times import parse_time

MAX_AHEAD = timedelta(minutes=1)
"""A token is renewed at most this long before it expires ..."""
AHEAD_FRACTION = 0.2
"""... and once this fraction of its life is left."""
TOKEN_FILE_REREAD = 60.0
"""Seconds between reads of a token file (the kubelet rotates projected tokens well before expiry)."""


class CredentialError(Exception):
    """The credential plugin failed or gave no token."""


@dataclass(frozen=True)
class ExecPlugin:
    """A kubeconfig user's `exec` stanza (kept as JSON, so configurations stay hashable)."""

    config_json: str
    cwd: str | None = None
    """The kubeconfig's directory: a relative command is found from there, as kubectl does."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, cwd: str | None) -> ExecPlugin:
        return cls(config_json=json.dumps(dict(config), sort_keys=True), cwd=cwd)

    def run(self) -> tuple[str, datetime | None]:
        """Run the plugin: its token and, if it says, when the token expires (aware UTC)."""
        from kubernetes.config.exec_provider import ExecProvider
        from kubernetes.config.kube_config import ConfigNode

        config = json.loads(self.config_json)
        try:
            status = ExecProvider(ConfigNode("exec", config), self.cwd).run()
        except Exception as error:  # the library raises ConfigException, OSError, ...
            raise CredentialError(
                f"the exec credential plugin {config.get('command')!r} failed: {error}"
            ) from error
        token = status.get("token")
        if not token:
            raise CredentialError(
                f"the exec credential plugin {config.get('command')!r} returned no token "
                "(client certificates from exec plugins are not supported)"
            )
        expires = status.get("expirationTimestamp")
        return str(token), parse_time(str(expires)) if expires else None


@dataclass(frozen=True)
class Token:
    value: str
    obtained: datetime
    expires: datetime | None = None

    @property
    def renew_at(self) -> datetime | None:
        """When to get a new one (None: never, a token without expiry)."""
        if self.expires is None:
            return None
        ahead = min(MAX_AHEAD, (self.expires - self.obtained) * AHEAD_FRACTION)
        return self.expires - ahead


def _utcnow() -> datetime:
    return datetime.now(UTC)


class TokenSource:
    """The current bearer token of one cluster configuration; renewed ahead of expiry or on demand.

    Thread-safe: concurrent callers run the plugin once. `token()` may block (it may run
    the plugin): from async code, call it through asyncio.to_thread when `due()`.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        token_file: str | None = None,
        exec_plugin: ExecPlugin | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._fixed = token
        self._file = token_file
        self._plugin = exec_plugin
        self._clock = clock
        self._lock = threading.Lock()
        self._current: Token | None = None
        self._file_read_at = 0.0
        self.renewals = 0
        """How many times a token was obtained (plugin runs, file reads); for tests and logs."""

    @property
    def changes(self) -> bool:
        """Whether the token can change at all (a token file or a plugin)."""
        return self._plugin is not None or self._file is not None

    def due(self) -> bool:
        """True if the next token() would obtain a new token (cheap; never blocks)."""
        current = self._current
        if self._plugin is not None:
            return current is None or (current.renew_at is not None and self._clock() >= current.renew_at)
        if self._file is not None:
            return current is None or time.monotonic() - self._file_read_at > TOKEN_FILE_REREAD
        return False

    def cached(self) -> Token | None:
        return self._current if self._current is not None else self._fixed_token()

    def token(self) -> Token | None:
        """The token to send now (obtaining a new one first if due)."""
        if not self.due():
            return self.cached()
        with self._lock:
            if self.due():
                self._obtain()
        return self.cached()

    def renew(self, refused: Token | None) -> Token | None:
        """A new token after the server refused `refused` (a no-op if another caller renewed it already)."""
        if not self.changes:
            return self.cached()
        with self._lock:
            if self._current is None or refused is None or self._current.value == refused.value:
                self._obtain()
        return self.cached()

    def _fixed_token(self) -> Token | None:
        return Token(self._fixed, obtained=self._clock()) if self._fixed else None

    def _obtain(self) -> None:
        now = self._clock()
        if self._plugin is not None:
            value, expires = self._plugin.run()
            self._current = Token(value, obtained=now, expires=expires)
        elif self._file is not None:
            with open(self._file, encoding="utf-8") as handle:
                value = handle.read().strip()
            self._file_read_at = time.monotonic()
            self._current = Token(value, obtained=now) if value else None
        self.renewals += 1


@functools.lru_cache(maxsize=16)
def token_source(token: str | None, token_file: str | None, exec_plugin: ExecPlugin | None) -> TokenSource:
    """The one TokenSource of a cluster configuration's credentials (shared by our client and kopf's)."""
    return TokenSource(token=token, token_file=token_file, exec_plugin=exec_plugin)
