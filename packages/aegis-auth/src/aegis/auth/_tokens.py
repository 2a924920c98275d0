"""Issue and verify access and refresh tokens; rotate refresh tokens with reuse detection."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

import jwt

from aegis.auth._claims import (
    MAX_TOKEN_BYTES,
    REQUIRED_CLAIMS,
    TokenPair,
    TokenType,
    check_times,
    principal_from_claims,
    reason_for,
    text_collection,
)
from aegis.auth._errors import (
    AuthenticationError,
    InvalidTokenError,
    TokenExpiredError,
    TokenRevokedError,
)
from aegis.auth._jws import KeyedJWT, UnknownKeyIdError
from aegis.auth._keys import SUPPORTED_ALGORITHMS, JWTKey, KeySet
from aegis.auth._metrics import AuthMetrics, VerificationSource
from aegis.auth._principal import SERVICE_SUBJECT_PREFIX, Principal
from aegis.auth._store import NowaitRevocationCheck, TokenStore
from aegis.core.errors import ConfigurationError
from aegis.core.utils.security import token_urlsafe

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from aegis.auth._jwks import JWKSClient
    from aegis.auth._rbac import RolePolicy

_RESERVED = frozenset({*REQUIRED_CLAIMS, "nbf", "roles", "permissions", "scope", "tenant", "fam"})
_HEADER_TYPES = {"access": "at+jwt", "refresh": "rt+jwt"}  # RFC 9068 / RFC 8725 section 3.11
_LOGGER = logging.getLogger("aegis.auth")
_LOGGED_TEXT = 200


# The cache is keyed by the end of the token (inside its signature) and an entry only serves the
# very token it holds: hashing 24 characters instead of a whole token per lookup. A token that
# merely ends the same way (or a tampered one) misses and is verified in full.
_CACHE_KEY_LENGTH = 24


@dataclass(frozen=True, slots=True)
class _Verified:
    token: str | bytes
    principal: Principal
    key: JWTKey
    keys_stamp: int
    """``KeySet.stamp`` when ``key`` came from the key set, else -1 (a JWKS key: look it up)."""
    stale_at: float
    """``exp`` plus the leeway: from then on the token is expired."""
    kind: str


class TokenService:
    """Issues and verifies JWT access and refresh tokens for one issuer and audience.

    Verification takes the key by ``kid`` from ``keys`` (then from ``jwks``, for tokens another
    service signed), with that key's algorithm only; requires ``exp``, ``iat``, ``sub``,
    ``jti``, ``iss``, ``aud`` and ``typ``; checks issuer, audience, expiry, not-before and a
    future ``iat`` with ``leeway``; then asks the ``store`` whether the token or its family is
    revoked. Tokens that passed are remembered (at most ``cache_size``), so presenting the same
    token again skips parsing and the signature check but never the expiry, key retirement or
    revocation checks.

    Args:
        keys: the keys to sign with and verify with.
        issuer: the ``iss`` of tokens this service issues and accepts.
        audience: the ``aud`` this service accepts (any of them, if several); the first is
            what tokens are issued for by default.
        access_ttl: lifetime of access tokens.
        refresh_ttl: lifetime of refresh tokens.
        leeway: clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
        store: revocations and used refresh tokens; needed by :meth:`refresh` and
            :meth:`revoke`. Without one, tokens cannot be revoked before they expire. A store
            that answers from memory (``revoked_nowait``) keeps :meth:`verify_nowait` synchronous.
        policy: role hierarchy applied to the roles of verified tokens.
        jwks: another service's published keys, fetched for ``kid`` values not in ``keys``.
        algorithms: algorithms accepted at all; each key accepts only its own.
        cache_size: verified tokens remembered; 0 turns the cache off.
        clock: seconds since the epoch for issuing and for the cache (tests move it).
        metrics_registry: Prometheus registry for the ``aegis_auth_*`` metrics (the default
            registry when ``None``).

    Example:
        >>> tokens = TokenService(
        ...     KeySet([JWTKey.generate("k1")]), issuer="https://auth.example", audience="api"
        ... )
        >>> pair = tokens.issue_pair("user-1", roles=["user"])
        >>> (await tokens.verify(pair.access_token)).subject
        'user-1'
    """

    def __init__(
        self,
        keys: KeySet,
        *,
        issuer: str,
        audience: str | Sequence[str],
        access_ttl: timedelta = timedelta(minutes=15),
        refresh_ttl: timedelta = timedelta(days=14),
        leeway: timedelta = timedelta(seconds=30),
        store: TokenStore | None = None,
        policy: RolePolicy | None = None,
        jwks: JWKSClient | None = None,
        algorithms: Iterable[str] = SUPPORTED_ALGORITHMS,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.time,
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audiences = (
            [audience] if isinstance(audience, str) else list(text_collection(audience, "audience"))
        )
        if not self.audiences:
            raise ConfigurationError("TokenService needs at least one audience")
        allowed = frozenset(text_collection(algorithms, "algorithms"))
        if not allowed or not allowed <= SUPPORTED_ALGORITHMS:
            raise ConfigurationError(
                f"algorithms must be a non-empty subset of {sorted(SUPPORTED_ALGORITHMS)}"
            )
        self.access_ttl = int(access_ttl.total_seconds())
        self.refresh_ttl = int(refresh_ttl.total_seconds())
        self.leeway = leeway.total_seconds()
        self.store = store  # through the property: also finds the store's revoked_nowait
        self.policy = policy
        self.jwks = jwks
        self._jwt = KeyedJWT(allowed, REQUIRED_CLAIMS)
        # PyJWT reads exp/nbf/iat with int(), so "1700000000" or true pass for a NumericDate;
        # check_times does PyJWT's checks on JSON numbers only (RFC 7519 section 2).
        self._jwt.options.update({"verify_exp": False, "verify_nbf": False, "verify_iat": False})
        self._cache: dict[str | bytes, _Verified] = {}
        self._cache_size = cache_size
        self._clock = clock
        self._metrics = AuthMetrics.for_registry(metrics_registry)
        self._verifications = self._metrics.verifications
        self._issued = {kind: self._metrics.issued.labels(kind) for kind in ("access", "refresh")}

    @property
    def store(self) -> TokenStore | None:
        """Revocations and used refresh tokens (``None``: no revocation)."""
        return self._store

    @store.setter
    def store(self, store: TokenStore | None) -> None:
        self._store = store
        # Looked up once: verify_nowait calls it for every cached token.
        check: Callable[[str, str | None], bool | None] | None = None
        if store is not None and isinstance(store, NowaitRevocationCheck):  # mypy: None first
            check = store.revoked_nowait
        self._revoked_nowait = check

    # --- issuing -------------------------------------------------------------------------------

    def issue_access_token(
        self,
        subject: str,
        *,
        roles: Iterable[str] = (),
        permissions: Iterable[str] = (),
        scopes: Iterable[str] = (),
        tenant: str | None = None,
        audience: str | None = None,
        family: str | None = None,
        expires_in: timedelta | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Return a signed access token for ``subject``.

        Args:
            subject: the ``sub``: a user id (``service:<name>`` marks a service).
            roles: role names (``roles`` claim): a collection, never one string.
            permissions: ``resource:action`` grants (``permissions`` claim).
            scopes: OAuth scopes (space-separated ``scope`` claim, RFC 9068).
            tenant: the tenant the token acts for.
            audience: ``aud``; defaults to this service's first audience.
            family: the refresh-token family; revoking it revokes this token too.
            expires_in: lifetime; defaults to ``access_ttl``.
            extra: further claims; they cannot replace the registered ones.

        Raises:
            TypeError: ``roles``, ``permissions`` or ``scopes`` is a single ``str`` or ``bytes``
                (``roles="admin"`` would grant ``a``, ``d``, ``m``, ``i``, ``n``).

        .. versionchanged:: unreleased
            A ``str``/``bytes`` for ``roles``, ``permissions`` or ``scopes`` raises ``TypeError``.
        """
        roles = text_collection(roles, "roles")
        permissions = text_collection(permissions, "permissions")
        scopes = text_collection(scopes, "scopes")
        ttl = self.access_ttl if expires_in is None else int(expires_in.total_seconds())
        claims: dict[str, Any] = {"roles": sorted(set(roles))}
        if permissions:
            claims["permissions"] = sorted(set(permissions))
        if scopes:
            claims["scope"] = " ".join(sorted(set(scopes)))
        if tenant is not None:
            claims["tenant"] = tenant
        if family is not None:
            claims["fam"] = family
        return self._sign(
            subject=subject, kind="access", ttl=ttl, audience=audience, claims=claims, extra=extra
        )

    def issue_refresh_token(
        self,
        subject: str,
        *,
        family: str,
        claims: Mapping[str, Any] | None = None,
        expires_in: timedelta | None = None,
    ) -> str:
        """Return a refresh token of ``family`` carrying the access ``claims`` to renew."""
        ttl = self.refresh_ttl if expires_in is None else int(expires_in.total_seconds())
        carried = {k: v for k, v in (claims or {}).items() if k not in REQUIRED_CLAIMS}
        carried["fam"] = family
        return self._sign(
            subject=subject, kind="refresh", ttl=ttl, audience=None, claims=carried, extra=None
        )

    def issue_pair(
        self,
        subject: str,
        *,
        roles: Iterable[str] = (),
        permissions: Iterable[str] = (),
        scopes: Iterable[str] = (),
        tenant: str | None = None,
        family: str | None = None,
    ) -> TokenPair:
        """Return an access token and a refresh token of a new family (one login).

        Raises:
            TypeError: ``roles``, ``permissions`` or ``scopes`` is a single ``str`` or ``bytes``.
        """
        roles = list(text_collection(roles, "roles"))
        permissions = list(text_collection(permissions, "permissions"))
        scopes = list(text_collection(scopes, "scopes"))
        family = family or token_urlsafe(16)
        access = self.issue_access_token(
            subject,
            roles=roles,
            permissions=permissions,
            scopes=scopes,
            tenant=tenant,
            family=family,
        )
        carried: dict[str, Any] = {"roles": sorted(set(roles))}
        if permissions:
            carried["permissions"] = sorted(set(permissions))
        if scopes:
            carried["scope"] = " ".join(sorted(set(scopes)))
        if tenant is not None:
            carried["tenant"] = tenant
        refresh = self.issue_refresh_token(subject, family=family, claims=carried)
        return TokenPair(access, refresh, self.access_ttl, self.refresh_ttl)

    def issue_service_token(
        self,
        service: str,
        *,
        audience: str,
        scopes: Iterable[str] = (),
        expires_in: timedelta = timedelta(minutes=5),
    ) -> str:
        """Return a short-lived access token for the service ``service`` calling ``audience``.

        Its ``sub`` is ``service:<service>``.

        Raises:
            TypeError: ``scopes`` is a single ``str`` or ``bytes``.
        """
        return self.issue_access_token(
            SERVICE_SUBJECT_PREFIX + service,
            scopes=text_collection(scopes, "scopes"),
            audience=audience,
            expires_in=expires_in,
        )

    def _sign(
        self,
        *,
        subject: str,
        kind: TokenType,
        ttl: int,
        audience: str | None,
        claims: Mapping[str, Any],
        extra: Mapping[str, Any] | None,
    ) -> str:
        if not isinstance(subject, str) or not subject:
            raise ConfigurationError("a token needs a non-empty text subject")
        clashing = sorted(set(extra or {}) & _RESERVED)
        if clashing:
            raise ConfigurationError(f"extra claims may not replace registered claims {clashing}")
        key = self.keys.signing_key
        now = int(self._clock())
        payload = {
            **(extra or {}),
            **claims,
            "iss": self.issuer,
            "sub": subject,
            "aud": audience or self.audiences[0],
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": token_urlsafe(16),
            "typ": kind,
        }
        headers = {"kid": key.kid, "typ": _HEADER_TYPES[kind]}
        token = self._jwt.encode(payload, key.signing_material(), key.algorithm, headers=headers)
        self._issued[kind].inc()
        return token

    # --- verifying -----------------------------------------------------------------------------

    def verify(
        self, token: str | bytes, *, kind: TokenType = "access"
    ) -> Coroutine[Any, Any, Principal]:
        """Verify ``token`` and return who it stands for (await it: ``await tokens.verify(t)``).

        ``token`` is the compact JWT as text, or as the ASCII bytes an HTTP header carries.

        Raises:
            InvalidTokenError: malformed, too large, unknown key, bad signature or algorithm,
                wrong issuer, audience or type, missing or malformed claims, not yet valid
                (``reason`` says which).
            TokenExpiredError: ``exp`` has passed.
            TokenRevokedError: the token or its family was revoked.
            ExternalServiceError: the ``kid`` is unknown and the JWKS could not be fetched.
        """
        return self._verify(token, kind)  # the coroutine itself: no second frame per call

    async def _verify(self, token: str | bytes, kind: TokenType | None) -> Principal:
        # kind=None accepts either type: revoke() takes access and refresh tokens alike.
        source: VerificationSource = "cache"
        try:
            principal = self._from_cache(token, kind)
            if principal is None:
                source = "full"
                verified = await self._verify_fully(token)
                if kind is not None and verified.kind != kind:
                    self._reject_kind(verified.kind, kind)
                principal = verified.principal
            store = self._store
            if store is not None and await store.is_revoked(
                str(principal.token_id), principal.family
            ):
                self._log_rejection("revoked", f"jti {principal.token_id}")
                raise TokenRevokedError("revoked")
        except AuthenticationError as exc:
            self._verifications.add(exc.reason, source)
            raise
        if source == "cache":
            self._verifications.cached_valid += 1
        else:
            self._verifications.add("valid", source)
        return principal

    def verify_nowait(self, token: str | bytes, *, kind: TokenType = "access") -> Principal | None:
        """Verify ``token`` when no I/O is needed, else return ``None`` (then await :meth:`verify`).

        That is the case for a token verified before (its expiry, type and key are checked
        again) when there is no ``store``, or when the store can tell from memory whether the
        token is revoked (:class:`~aegis.auth.NowaitRevocationCheck`: ``MemoryTokenStore``,
        a fresh ``ReplicatedTokenStore``): the common request then costs no coroutine.
        :class:`~aegis.auth.AuthMiddleware` calls it first.

        Raises:
            InvalidTokenError: the cached token is not of ``kind``.
            TokenExpiredError: the cached token has expired.
            TokenRevokedError: the cached token or its family is revoked.

        .. versionchanged:: unreleased
            Answers with a store that offers ``revoked_nowait`` (it returned ``None`` whenever
            a store was set).
        """
        revoked_nowait = self._revoked_nowait
        if revoked_nowait is None and self._store is not None:
            return None
        try:
            principal = self._from_cache(token, kind)
            if principal is not None and revoked_nowait is not None:
                revoked = revoked_nowait(principal.token_id or "", principal.family)
                if revoked is None:  # the store cannot tell without I/O: verify() asks it
                    return None
                if revoked:
                    self._log_rejection("revoked", f"jti {principal.token_id}")
                    raise TokenRevokedError("revoked")
        except AuthenticationError as exc:
            self._verifications.add(exc.reason, "cache")
            raise
        if principal is not None:
            self._verifications.cached_valid += 1
        return principal

    def _from_cache(self, token: str | bytes, kind: TokenType | None) -> Principal | None:
        try:
            verified = self._cache.get(token[-_CACHE_KEY_LENGTH:])
        except TypeError:  # not text: the full verification refuses it
            return None
        if verified is None or verified.token != token:
            return None
        key = verified.key
        # A retired or replaced key drops its tokens: verify again, which refuses them.
        if verified.keys_stamp != self.keys.stamp and self._lookup(key.kid) is not key:
            return None
        if verified.stale_at <= self._clock():
            del self._cache[token[-_CACHE_KEY_LENGTH:]]
            raise TokenExpiredError
        if kind is not None and verified.kind != kind:
            self._reject_kind(verified.kind, kind)
        return verified.principal

    def _reject_kind(self, actual: str, kind: TokenType) -> NoReturn:
        self._log_rejection("token_type", f"a {actual} token used as {kind}")
        raise InvalidTokenError("token_type")

    def _lookup(self, kid: str) -> JWTKey | None:
        key = self.keys.get(kid)
        if key is None and self.jwks is not None:
            return self.jwks.cached(kid)
        return key

    async def _verify_fully(self, token: str | bytes) -> _Verified:
        if not isinstance(token, str | bytes):
            raise InvalidTokenError("malformed")
        if len(token) > MAX_TOKEN_BYTES:
            self._log_rejection("too_large", f"{len(token)} characters")
            raise InvalidTokenError("too_large")
        if not token.isascii():
            self._log_rejection("malformed", "non-ASCII characters")
            raise InvalidTokenError("malformed")
        try:
            header, claims, key = await self._decode_resolving(token)
            check_times(claims, time.time(), self.leeway)
        except jwt.PyJWTError as exc:
            reason = reason_for(exc)
            self._log_rejection(reason, f"{type(exc).__name__}: {exc}")
            raise (
                TokenExpiredError() if reason == "expired" else InvalidTokenError(reason)
            ) from exc
        except AuthenticationError as exc:
            self._log_rejection(exc.reason, exc.message)
            raise
        token_type = claims.get("typ")
        expected_header = _HEADER_TYPES.get(str(token_type))
        # The header typ is optional; when present it must agree (RFC 8725 section 3.11).
        if expected_header is None or header.get("typ", "JWT") not in (expected_header, "JWT"):
            self._log_rejection("token_type", f"typ claim {str(token_type)[:40]!r}")
            raise InvalidTokenError("token_type")
        principal = principal_from_claims(claims, self.policy)
        if principal is None:
            self._log_rejection("claims", "roles, permissions, scope, tenant or fam malformed")
            raise InvalidTokenError("claims")
        stamp = self.keys.stamp if self.keys.get(key.kid) is key else -1
        stale_at = int(claims["exp"]) + self.leeway
        verified = _Verified(token, principal, key, stamp, stale_at, str(token_type))
        if self._cache_size > 0:
            if len(self._cache) >= self._cache_size:
                del self._cache[next(iter(self._cache))]  # oldest first
            self._cache[token[-_CACHE_KEY_LENGTH:]] = verified
        return verified

    async def _decode_resolving(
        self, token: str | bytes
    ) -> tuple[dict[str, Any], dict[str, Any], JWTKey]:
        used: list[JWTKey] = []

        def lookup(kid: str) -> JWTKey | None:
            key = self._lookup(kid)
            if key is not None:
                used.append(key)
            return key

        try:
            header, claims = self._decode(token, lookup)
        except UnknownKeyIdError as unknown:
            fetched = None if self.jwks is None else await self.jwks.get_key(unknown.kid)
            if fetched is None:
                raise InvalidTokenError("unknown_key") from None
            used.append(fetched)
            header, claims = self._decode(token, lambda kid: fetched)
        return header, claims, used[-1]

    def _decode(
        self, token: str | bytes, lookup: Callable[[str], JWTKey | None]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        return self._jwt.decode_with(
            token, lookup, audience=self.audiences, issuer=self.issuer, leeway=self.leeway
        )

    @staticmethod
    def _log_rejection(reason: str, detail: str) -> None:
        # Details stay in the log: the client only learns the reason. Text from the token is
        # repr()-quoted and cut, so it can neither forge log lines nor flood them.
        _LOGGER.info("token rejected: %s (%r)", reason, detail[:_LOGGED_TEXT])

    # --- refresh and revocation ----------------------------------------------------------------

    def _require_store(self) -> TokenStore:
        if self.store is None:
            raise ConfigurationError("refresh and revocation need a TokenService(store=...)")
        return self.store

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Exchange a refresh token for a new pair; the presented one is used up.

        A refresh token presented a second time means it was stolen or replayed: the whole
        family (every token of that login) is revoked and the call fails (RFC 9700 section
        4.14.2).

        Raises:
            InvalidTokenError, TokenExpiredError: as :meth:`verify` (an access token here is
                ``token_type``).
            TokenRevokedError: the family is revoked, now (``reason`` ``reused``) or earlier.
        """
        store = self._require_store()
        principal = await self.verify(refresh_token, kind="refresh")
        family = principal.family
        if family is None:
            raise InvalidTokenError("claims")
        if not await store.consume(str(principal.token_id), expires_at=self._kept_until(principal)):
            await self.revoke_family(family)
            self._metrics.refresh_reuse.inc()
            _LOGGER.warning("refresh token reused: family of %r revoked", principal.subject)
            raise TokenRevokedError("reused")
        claims = principal.claims
        return self.issue_pair(
            principal.subject,
            roles=claims.get("roles", ()),
            permissions=claims.get("permissions", ()),
            scopes=principal.scopes,
            tenant=principal.tenant,
            family=family,
        )

    async def revoke(self, token: str) -> None:
        """Revoke one access or refresh token (by its ``jti``) until it expires.

        Raises:
            InvalidTokenError, TokenExpiredError: the token does not verify.
        """
        store = self._require_store()
        principal = await self._verify(token, None)
        await store.revoke(str(principal.token_id), expires_at=self._kept_until(principal))
        self._metrics.revocations.labels("token").inc()

    def _kept_until(self, principal: Principal) -> int:
        # The token verifies until exp plus the leeway: so long must its entry live.
        return math.ceil((principal.expires_at or 0) + self.leeway)

    async def revoke_family(self, family: str) -> None:
        """Revoke every token of a refresh-token family (one login): logout everywhere."""
        until = int(self._clock() + max(self.refresh_ttl, self.access_ttl) + self.leeway)
        await self._require_store().revoke_family(family, expires_at=until)
        self._metrics.revocations.labels("family").inc()
