"""Publish public keys as a JWKS, and verify another service's tokens by fetching its JWKS."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aegis.auth._keys import JWTKey, KeySet
from aegis.auth._metrics import AuthMetrics
from aegis.core.errors import ConfigurationError, ExternalServiceError
from aegis.core.utils.lazy import extra_required

if TYPE_CHECKING:
    import httpx
    from prometheus_client import CollectorRegistry

JWKS_PATH = "/.well-known/jwks.json"
"""Where services publish their keys (RFC 8414 names the ``jwks_uri``; this is the habit)."""

_LOGGER = logging.getLogger("aegis.auth")
_MAX_JWKS_BYTES = 256 * 1024  # a JWKS holds a few keys; anything larger is not one


def jwks_route(keys: KeySet, *, path: str = JWKS_PATH, max_age: int = 300) -> Route:
    """Return a Starlette/FastAPI route serving the public keys of ``keys`` as a JWKS.

    The document is built per request, so added and retired keys show at once; HMAC secrets
    are never in it. ``Cache-Control: max-age`` lets verifiers cache it.

    Example:
        >>> app = Starlette(routes=[jwks_route(keys)])
    """

    async def jwks(request: Request) -> Response:
        return JSONResponse(keys.jwks(), headers={"Cache-Control": f"public, max-age={max_age}"})

    return Route(path, jwks, methods=["GET"], name="jwks")


class JWKSClient:
    """The public keys another service publishes, fetched from its JWKS URL and cached.

    Keys are cached for ``cache_ttl``. A ``kid`` not in the cache triggers a refresh, at most
    once per ``min_refresh_interval`` (so tokens with made-up key ids cannot make this service
    hammer the other one); concurrent callers share one fetch. When a refresh fails, the keys
    already known keep working and the failure is logged.

    Needs the ``http`` extra (httpx) unless you pass your own ``client``.

    Args:
        url: the JWKS URL, e.g. ``https://users.internal/.well-known/jwks.json``.
        client: an ``httpx.AsyncClient`` to fetch with (its owner closes it); by default one
            with ``timeout`` is made and closed by :meth:`aclose`.
        cache_ttl: how long fetched keys are trusted before the next refresh.
        min_refresh_interval: the least time between two fetches.
        timeout: seconds for the whole fetch, when this client makes its own httpx client.
        clock: a monotonic clock in seconds (tests move it).
        metrics_registry: Prometheus registry for ``aegis_auth_jwks_fetches_total`` (the
            default registry when ``None``).

    Example:
        >>> verifier = TokenService(
        ...     KeySet(),
        ...     issuer="users",
        ...     audience="policies",
        ...     jwks=JWKSClient("http://users/.well-known/jwks.json"),
        ... )
    """

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient | None = None,
        cache_ttl: timedelta = timedelta(minutes=5),
        min_refresh_interval: timedelta = timedelta(seconds=30),
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        if client is None:
            with extra_required("JWKSClient", {"httpx": "aegis-auth[http]"}):
                import httpx  # optional dependency

            client = httpx.AsyncClient(timeout=timeout)
            self._owns_client = True
        else:
            self._owns_client = False
        self.url = url
        self._client = client
        self._ttl = cache_ttl.total_seconds()
        self._min_interval = min_refresh_interval.total_seconds()
        self._clock = clock
        self._keys: dict[str, JWTKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._serving_stale = False
        self._lock = asyncio.Lock()
        self.fetches = 0
        """How many times the JWKS was fetched (for tests and metrics)."""
        self._fetch_results = AuthMetrics.for_registry(metrics_registry).jwks_fetches

    def cached(self, kid: str) -> JWTKey | None:
        """Return the cached key ``kid`` while the cache is fresh (or the origin is down)."""
        if self._fetched_at is None:
            return None
        if self._serving_stale or self._clock() - self._fetched_at < self._ttl:
            return self._keys.get(kid)
        return None

    async def get_key(self, kid: str) -> JWTKey | None:
        """Return the key ``kid``, refreshing the JWKS when it is unknown or stale.

        Raises:
            ExternalServiceError: the JWKS could not be fetched and ``kid`` is not known.
        """
        key = self.cached(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self.cached(kid)
            if key is not None:  # another task refreshed while this one waited
                return key
            now = self._clock()
            if self._attempted_at is not None and now - self._attempted_at < self._min_interval:
                return self._keys.get(kid)
            self._attempted_at = now
            try:
                self._keys = await self._fetch()
            except ExternalServiceError:
                self._serving_stale = self._fetched_at is not None
                if kid not in self._keys:
                    raise
                return self._keys[kid]
            self._fetched_at, self._serving_stale = now, False
            return self._keys.get(kid)

    async def _fetch(self) -> dict[str, JWTKey]:
        self.fetches += 1
        try:
            response = await self._client.get(self.url, headers={"Accept": "application/json"})
            response.raise_for_status()
            if len(response.content) > _MAX_JWKS_BYTES:
                raise ValueError(f"larger than {_MAX_JWKS_BYTES} bytes")
            document: Any = response.json()
        except Exception as exc:  # any failure to fetch means "origin unavailable"
            self._fetch_results.labels("error").inc()
            _LOGGER.warning("JWKS fetch from %s failed: %s", self.url, type(exc).__name__)
            raise ExternalServiceError(
                f"the signing keys at {self.url} could not be fetched",
                details={"url": self.url},
            ) from exc
        self._fetch_results.labels("ok").inc()
        entries = document.get("keys") if isinstance(document, dict) else None
        keys: dict[str, JWTKey] = {}
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                key = JWTKey.from_jwk(entry)
            except ConfigurationError as exc:
                _LOGGER.warning("JWKS %s: key skipped: %s", self.url, exc.message)
                continue
            keys[key.kid] = key
        return keys

    async def aclose(self) -> None:
        """Close the HTTP client, when this object made it."""
        if self._owns_client:
            await self._client.aclose()
