"""Service accounts: client id and hashed secret in, a short-lived service token out.

The exchange is OAuth 2 ``client_credentials`` (RFC 6749 section 4.4): a service posts its id,
secret, the audience it wants to call and the scopes it needs to the token route, and receives
an access token with ``sub=service:<name>``.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aegis.auth._claims import text_collection
from aegis.auth._errors import InvalidCredentialsError, PermissionDeniedError
from aegis.auth._passwords import PasswordService
from aegis.auth._tokens import TokenService
from aegis.core.errors import AegisError, ConfigurationError, InvalidInputError
from aegis.core.utils.security import hash_password, token_urlsafe
from aegis.core.web import error_response

_LOGGER = logging.getLogger("aegis.auth")
_MAX_FORM_BYTES = 4096
_MAX_FORM_FIELDS = 16


@dataclass(frozen=True)
class ServiceAccount:
    """A service allowed to obtain tokens: its name, id, hashed secret and what it may ask for.

    Attributes:
        name: the service name; its tokens have ``sub=service:<name>``.
        client_id: the public identifier it authenticates with.
        secret_hash: argon2id hash of its secret (never the secret itself).
        scopes: the scopes it may request.
        audiences: the services it may request tokens for.
    """

    name: str
    client_id: str
    secret_hash: str
    scopes: frozenset[str] = frozenset()
    audiences: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        text_collection(self.scopes, "scopes")
        text_collection(self.audiences, "audiences")

    @classmethod
    def create(
        cls,
        name: str,
        *,
        scopes: Iterable[str] = (),
        audiences: Iterable[str] = (),
        client_id: str | None = None,
    ) -> tuple[ServiceAccount, str]:
        """Return a new account and its secret, a 256-bit random string shown only once.

        Store the account (its hash), hand the secret to the service's secret store.
        """
        secret = token_urlsafe(32)
        account = cls(
            name=name,
            client_id=client_id or f"{name}-{token_urlsafe(16)}",
            secret_hash=hash_password(secret),
            scopes=frozenset(text_collection(scopes, "scopes")),
            audiences=frozenset(text_collection(audiences, "audiences")),
        )
        return account, secret


class ServiceAccounts:
    """The service accounts a token service knows, and the client-credentials exchange.

    Args:
        accounts: the accounts.
        tokens: signs the service tokens (``issue_service_token``).
        passwords: verifies secrets; unknown client ids cost the same work as known ones.
        token_ttl: lifetime of issued tokens (short: the client renews them).

    Example:
        >>> accounts = ServiceAccounts([billing], tokens)
        >>> app = Starlette(routes=[accounts.token_route()])
    """

    def __init__(
        self,
        accounts: Iterable[ServiceAccount],
        tokens: TokenService,
        *,
        passwords: PasswordService | None = None,
        token_ttl: timedelta = timedelta(minutes=5),
    ) -> None:
        self._accounts: dict[str, ServiceAccount] = {}
        for account in accounts:
            if account.client_id in self._accounts:
                raise ConfigurationError(f"client id {account.client_id!r} is used twice")
            self._accounts[account.client_id] = account
        self._tokens = tokens
        self._passwords = passwords or PasswordService()
        self._ttl = token_ttl

    async def authenticate(self, client_id: str, client_secret: str) -> ServiceAccount:
        """Return the account whose id and secret these are.

        Raises:
            InvalidCredentialsError: unknown id or wrong secret (the same answer for both).
        """
        account = self._accounts.get(client_id)
        check = await self._passwords.verify(
            client_secret, account.secret_hash if account is not None else None
        )
        if account is None or not check.valid:
            _LOGGER.info("client credentials refused for client id %r", client_id[:64])
            raise InvalidCredentialsError
        return account

    async def issue_token(
        self,
        client_id: str,
        client_secret: str,
        *,
        audience: str,
        scopes: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """Authenticate the client and return an RFC 6749 token response for ``audience``.

        ``scopes`` default to all the account's scopes; asking for more is refused.

        Raises:
            InvalidCredentialsError: the id or secret is wrong.
            PermissionDeniedError: the audience or a scope is not allowed to this account.
        """
        account = await self.authenticate(client_id, client_secret)
        wanted = account.scopes if scopes is None else frozenset(text_collection(scopes, "scopes"))
        if audience not in account.audiences:
            raise PermissionDeniedError(
                f"{account.name!r} may not request tokens for this audience"
            )
        if not wanted <= account.scopes:
            raise PermissionDeniedError(
                f"{account.name!r} may not request the scopes {sorted(wanted - account.scopes)}"
            )
        token = self._tokens.issue_service_token(
            account.name, audience=audience, scopes=wanted, expires_in=self._ttl
        )
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": int(self._ttl.total_seconds()),
            "scope": " ".join(sorted(wanted)),
        }

    def token_route(self, path: str = "/oauth/token") -> Route:
        """Return the ``POST`` route of the client-credentials exchange.

        Takes a form: ``grant_type=client_credentials``, ``audience``, optional ``scope``, and
        the client id and secret as HTTP Basic credentials or as ``client_id`` /
        ``client_secret`` fields. Errors answer problem+json; answers are ``no-store``.
        """

        async def token(request: Request) -> Response:
            try:
                form = await _form(request)
                if form.get("grant_type") != "client_credentials":
                    raise InvalidInputError(
                        "only client_credentials is supported",
                        field="grant_type",
                        rule="unsupported",
                    )
                client_id, secret = _client_credentials(request, form)
                audience = form.get("audience")
                if not audience:
                    raise InvalidInputError("audience is required", field="audience")
                scope = form.get("scope")
                body = await self.issue_token(
                    client_id, secret, audience=audience, scopes=scope.split() if scope else None
                )
            except AegisError as exc:
                return error_response(exc, request.scope)
            return JSONResponse(body, headers={"Cache-Control": "no-store"})

        return Route(path, token, methods=["POST"], name="token")


async def _form(request: Request) -> dict[str, str]:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise InvalidInputError(
            "send the token request as application/x-www-form-urlencoded",
            field="body",
            rule="content_type",
        )
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            raise InvalidInputError("the token request is too large", field="body", rule="size")
    try:
        fields = parse_qs(body.decode(), max_num_fields=_MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInputError("the token request is not a valid form", field="body") from exc
    repeated = sorted(name for name, values in fields.items() if len(values) > 1)
    if repeated:  # RFC 6749 section 3.2: a parameter must not be sent more than once
        raise InvalidInputError(f"{repeated[0]} is sent more than once", field=repeated[0])
    return {name: values[0] for name, values in fields.items()}


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidCredentialsError from exc
        return client_id, secret
    form_id, form_secret = form.get("client_id"), form.get("client_secret")
    if not form_id or not form_secret:
        raise InvalidCredentialsError
    return form_id, form_secret
