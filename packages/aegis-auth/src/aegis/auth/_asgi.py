"""Pure ASGI authentication middleware for HTTP and WebSocket connections."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from starlette.authentication import AuthCredentials, UnauthenticatedUser
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from aegis.auth._errors import AuthenticationError, InvalidTokenError, TokenMissingError
from aegis.auth._principal import PRINCIPAL, Principal
from aegis.auth._tokens import TokenService
from aegis.core import context
from aegis.core.errors import DEFAULT_PROBLEM_TYPE_BASE, AegisError
from aegis.core.paths import PathMatcher
from aegis.core.web import error_response

_LOGGER = logging.getLogger("aegis.auth")
_WS_POLICY_VIOLATION = 1008  # RFC 6455 section 7.4.1
_AUTHORIZATION = b"authorization"
_AUTHORIZATION_LENGTH = len(_AUTHORIZATION)
_BEARER = b"bearer"
_BEARER_PREFIX = b"Bearer "
_BEARER_PREFIX_LENGTH = len(_BEARER_PREFIX)
_CONNECTIONS = frozenset({"http", "websocket"})


class AuthMiddleware:
    """Authenticate every HTTP request and WebSocket with a bearer token.

    Reads ``Authorization: Bearer <token>`` (the scheme in any case), or, when ``cookie`` is
    set and no header came, that cookie; verifies it with ``tokens``; then sets
    ``scope["user"]`` (``request.user``, a :class:`~aegis.auth.Principal`), ``scope["auth"]``
    (Starlette ``AuthCredentials`` with the scopes), :func:`~aegis.auth.current_principal`,
    and :data:`aegis.core.context.user_id` / ``tenant_id`` for the request.

    A request without a valid token answers 401 ``application/problem+json`` with a stable
    ``code`` and ``reason`` and an RFC 6750 ``WWW-Authenticate: Bearer`` challenge; what went
    wrong in detail is logged (``aegis.auth`` logger), never the token. Two ``Authorization``
    headers are refused. A WebSocket with a bad token is closed with 1008 before it is
    accepted (the client sees the handshake refused with 403). Paths in ``public_paths`` pass
    without a token, written in the one path language of :mod:`aegis.core.paths`: exact
    paths, prefixes ending in ``*`` (``/docs*``), or one method on a path or prefix
    (``"POST /users"``: sign-up is public while ``GET /users`` is not).

    Args:
        app: the ASGI application.
        tokens: the service that verifies access tokens.
        public_paths: paths that need no token.
        cookie: a cookie to read the token from (use ``SameSite`` cookies and CSRF
            protection: a browser sends cookies with cross-site requests).
        realm: the ``realm`` of the challenge.
        type_base: prefix of the problem ``type`` URI.

    Example:
        >>> app.add_middleware(AuthMiddleware, tokens=tokens, public_paths=["/health", JWKS_PATH])

    Raises:
        ConfigurationError: a public path pattern is malformed.

    .. versionchanged:: 0.1
        ``public_paths`` takes :class:`~aegis.core.paths.PathMatcher` patterns: a method may
        go with a prefix (``"GET /docs*"``); a malformed pattern raises
        ``ConfigurationError`` (it raised ``ValueError``).

    .. versionchanged:: 0.1
        Public paths and refused requests set an unauthenticated ``scope["user"]`` and clear
        the principal and context values instead of leaving them as they were.
    """

    def __init__(
        self,
        app: ASGIApp,
        tokens: TokenService,
        *,
        public_paths: Iterable[str] = (),
        cookie: str | None = None,
        realm: str | None = None,
        type_base: str = DEFAULT_PROBLEM_TYPE_BASE,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self._public = PathMatcher(public_paths)
        self._cookie = cookie
        self._realm = realm
        self._type_base = type_base

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in _CONNECTIONS:
            await self.app(scope, receive, send)
            return
        principal: Principal | None = None
        refused: AegisError | None = None
        if not self._public.matches(scope.get("method"), scope["path"]):
            tokens = self.tokens
            try:
                credentials = self._credentials(scope)
                principal = tokens.verify_nowait(credentials)
                if principal is None:
                    principal = await tokens.verify(credentials)
            except AegisError as exc:  # an AuthenticationError, or a JWKS origin that is down
                refused = exc
        # Every request sets all it owns, to its own value or to None, and resets it with the
        # tokens: the server may run it in a context that still holds an earlier request's
        # principal (see aegis.core.context).
        if principal is None:
            scope["user"] = UnauthenticatedUser()
            scope["auth"] = AuthCredentials()
            subject = tenant = None
        else:
            scope["user"] = principal
            scope["auth"] = principal.credentials
            subject, tenant = principal.subject, principal.tenant
        # What aegis.core.context.request_scope(user_id=..., tenant_id=...) does, spelled out:
        # on this path of every request the block's generality was a measurable share of the
        # middleware's cost (benchmarks/auth_verify.py; figures in benchmarks/RESULTS.md).
        user_token = context.user_id.set(subject)
        tenant_token = context.tenant_id.set(tenant)
        principal_token = PRINCIPAL.set(principal)
        try:
            if refused is None:
                await self.app(scope, receive, send)
            else:
                await self._reject(refused, scope, receive, send)
        finally:
            PRINCIPAL.reset(principal_token)
            context.tenant_id.reset(tenant_token)
            context.user_id.reset(user_token)

    def _credentials(self, scope: Scope) -> bytes:
        """Return the token bytes; :meth:`TokenService.verify` checks their size and form."""
        found: bytes | None = None
        for name, value in scope["headers"]:
            # ASGI servers lowercase header names; the length test keeps .lower() off the rest.
            if name == _AUTHORIZATION or (
                len(name) == _AUTHORIZATION_LENGTH and name.lower() == _AUTHORIZATION
            ):
                if found is not None:
                    raise InvalidTokenError(
                        "malformed", "Send one Authorization header, not several."
                    )
                found = value
        if found is not None:
            if found.startswith(_BEARER_PREFIX):  # the usual spelling: one copy, no .lower()
                return found[_BEARER_PREFIX_LENGTH:].strip(b" ")
            scheme, _, credentials = found.partition(b" ")
            if scheme.lower() != _BEARER:
                raise TokenMissingError("This resource needs a bearer token (scheme Bearer).")
            return credentials.strip(b" ")
        if self._cookie is not None:
            for name, value in scope["headers"]:
                if name.lower() == b"cookie":
                    token = cookie_parser(value.decode("latin-1")).get(self._cookie)
                    if token:
                        return token.encode("latin-1")
        raise TokenMissingError

    async def _reject(self, exc: AegisError, scope: Scope, receive: Receive, send: Send) -> None:
        if isinstance(exc, AuthenticationError):
            exc.realm = self._realm
        _LOGGER.debug(
            "%s %s refused: %s", scope.get("method", "WEBSOCKET"), scope["path"], exc.code
        )
        if scope["type"] == "websocket":
            await receive()  # websocket.connect; then refuse the handshake
            await send(
                {"type": "websocket.close", "code": _WS_POLICY_VIOLATION, "reason": exc.code}
            )
            return
        await error_response(exc, scope, type_base=self._type_base)(scope, receive, send)
