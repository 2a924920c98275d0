"""An httpx ``Auth`` that gives outgoing requests a service token, renewed before it expires.

Needs the ``http`` extra (httpx).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from datetime import timedelta
from http import HTTPStatus

import httpx
from pydantic import SecretStr

from aegis.auth._claims import text_collection
from aegis.auth._tokens import TokenService
from aegis.core.errors import ExternalServiceError

TokenFetcher = Callable[[], Awaitable[tuple[str, float]]]
"""Obtains a new token: returns ``(token, seconds it lives)``."""


class ServiceTokenAuth(httpx.Auth):
    """Add ``Authorization: Bearer <service token>`` to every request of an httpx client.

    The token is obtained on first use, cached, and renewed ``renew_before`` its expiry;
    concurrent requests share one renewal. A 401 answer renews the token once and retries.
    Make one with :meth:`client_credentials` (from a token route) or :meth:`self_signed`
    (signed with this service's own key).

    Args:
        fetch: obtains a new token.
        renew_before: how long before expiry the token is renewed.
        clock: a monotonic clock in seconds (tests move it).

    Example:
        >>> auth = ServiceTokenAuth.client_credentials(
        ...     "http://users/oauth/token", "billing-x1", secret, audience="users"
        ... )
        >>> async with httpx.AsyncClient(auth=auth) as client:
        ...     await client.get("http://users/users/7")
    """

    requires_response_body = False

    def __init__(
        self,
        fetch: TokenFetcher,
        *,
        renew_before: timedelta = timedelta(seconds=30),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._renew_before = renew_before.total_seconds()
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0
        """How many tokens were obtained (for tests and metrics)."""

    @classmethod
    def client_credentials(
        cls,
        token_url: str,
        client_id: str,
        client_secret: str | SecretStr,
        *,
        audience: str,
        scopes: Iterable[str] = (),
        client: httpx.AsyncClient | None = None,
        renew_before: timedelta = timedelta(seconds=30),
    ) -> ServiceTokenAuth:
        """Obtain tokens from an OAuth 2 token route (``ServiceAccounts.token_route``).

        ``client`` fetches the tokens (never the client this auth is attached to); by
        default a new one with a 5-second timeout.
        """
        wanted = tuple(text_collection(scopes, "scopes"))
        secret = SecretStr(client_secret) if isinstance(client_secret, str) else client_secret
        fetcher = client or httpx.AsyncClient(timeout=5.0)
        form = {"grant_type": "client_credentials", "audience": audience}
        if wanted:
            form["scope"] = " ".join(wanted)

        async def fetch() -> tuple[str, float]:
            response = await fetcher.post(
                token_url, data=form, auth=(client_id, secret.get_secret_value())
            )
            if response.status_code != HTTPStatus.OK:
                raise ExternalServiceError(
                    f"the token route answered {response.status_code}",
                    details={"url": token_url, "status": response.status_code},
                )
            body = response.json()
            return str(body["access_token"]), float(body["expires_in"])

        return cls(fetch, renew_before=renew_before)

    @classmethod
    def self_signed(
        cls,
        tokens: TokenService,
        service: str,
        *,
        audience: str,
        scopes: Iterable[str] = (),
        expires_in: timedelta = timedelta(minutes=5),
        renew_before: timedelta = timedelta(seconds=30),
    ) -> ServiceTokenAuth:
        """Sign the service's own tokens with ``tokens``' key (the callee trusts its JWKS)."""
        wanted = tuple(text_collection(scopes, "scopes"))

        async def fetch() -> tuple[str, float]:
            token = tokens.issue_service_token(
                service, audience=audience, scopes=wanted, expires_in=expires_in
            )
            return token, expires_in.total_seconds()

        return cls(fetch, renew_before=renew_before)

    async def token(self, *, renew: bool = False) -> str:
        """Return a token valid for at least ``renew_before``, obtaining one if needed."""
        stale = self._token
        async with self._lock:
            fresh = self._token is not None and self._clock() < self._renew_at
            if fresh and not (renew and self._token == stale):
                return str(self._token)
            token, lifetime = await self._fetch()
            self.fetches += 1
            self._token = token
            self._renew_at = self._clock() + max(lifetime - self._renew_before, 0.0)
            return token

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Send ``request`` with the token; on 401 renew once and send it again."""
        request.headers["Authorization"] = f"Bearer {await self.token()}"
        response = yield request
        if response.status_code == HTTPStatus.UNAUTHORIZED:
            request.headers["Authorization"] = f"Bearer {await self.token(renew=True)}"
            yield request
