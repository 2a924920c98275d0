"""TokenService: issuing and verifying with every algorithm, keys, rotation and the cache."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from itertools import product

import jwt
import pytest
from jwt import PyJWS
from pydantic import SecretStr

from aegis.auth import (
    InvalidTokenError,
    JWTKey,
    KeySet,
    MemoryTokenStore,
    RedisTokenStore,
    TokenExpiredError,
    TokenRevokedError,
    TokenService,
)
from aegis.auth._jws import decode_segment
from aegis.core.errors import ConfigurationError

# Every test twice: tokens verified through PyJWT's hooks and through its public API.
pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("jwt_path")]


def service(key: JWTKey, **options: object) -> TokenService:
    return TokenService(KeySet([key]), issuer="iss", audience="aud", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", ["HS256", "HS512", "ES256", "ES384", "EdDSA", "PS256"])
async def test_every_algorithm_round_trips(algorithm: str) -> None:
    tokens = service(JWTKey.generate("k", algorithm))
    token = tokens.issue_access_token(
        "user-1", roles=["user"], permissions=["policy:read"], scopes=["a", "b"], tenant="t-1"
    )
    principal = await tokens.verify(token)
    assert principal.subject == "user-1"
    assert principal.roles == {"user"}
    assert principal.permissions == {"policy:read"}
    assert principal.scopes == {"a", "b"}
    assert principal.tenant == "t-1"
    assert not principal.is_service
    assert jwt.get_unverified_header(token) == {"alg": algorithm, "kid": "k", "typ": "at+jwt"}


async def test_rs256_round_trips(rsa_key: JWTKey) -> None:
    tokens = service(rsa_key)
    assert (await tokens.verify(tokens.issue_access_token("u"))).subject == "u"


async def test_issued_claims_are_complete() -> None:
    tokens = service(JWTKey.generate("k"))
    claims = jwt.decode(tokens.issue_access_token("u"), options={"verify_signature": False})
    assert set(claims) == {"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "typ", "roles"}
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert claims["typ"] == "access"


async def test_extra_claims_are_kept_but_cannot_replace_registered_ones() -> None:
    tokens = service(JWTKey.generate("k"))
    principal = await tokens.verify(tokens.issue_access_token("u", extra={"locale": "ko"}))
    assert principal.claims["locale"] == "ko"
    with pytest.raises(ConfigurationError, match=r"\['roles', 'sub'\]"):
        tokens.issue_access_token("u", extra={"sub": "admin", "roles": ["admin"]})
    with pytest.raises(ConfigurationError, match="subject"):
        tokens.issue_access_token("")


async def test_service_tokens_name_the_service_and_its_audience() -> None:
    caller = service(JWTKey.generate("k"))
    callee = TokenService(caller.keys, issuer="iss", audience="billing")
    principal = await callee.verify(
        caller.issue_service_token("orders", audience="billing", scopes=["charge"])
    )
    assert principal.subject == "service:orders"
    assert principal.is_service
    assert principal.scopes == {"charge"}
    with pytest.raises(InvalidTokenError) as raised:
        await caller.verify(caller.issue_service_token("orders", audience="billing"))
    assert raised.value.reason == "audience"


async def test_rotation_new_key_signs_old_key_verifies_until_retired() -> None:
    keys = KeySet([JWTKey.generate("2025")])
    tokens = TokenService(keys, issuer="iss", audience="aud")
    old = tokens.issue_access_token("u")
    keys.add(JWTKey.generate("2026"), sign=True)
    new = tokens.issue_access_token("u")
    assert jwt.get_unverified_header(new)["kid"] == "2026"
    assert (await tokens.verify(old)).subject == "u"
    with pytest.raises(ConfigurationError, match="signs new tokens"):
        keys.retire("2026")
    keys.retire("2025")
    with pytest.raises(InvalidTokenError):
        await tokens.verify(old)
    assert (await tokens.verify(new)).subject == "u"
    assert keys.kids == ["2026"]


async def test_cached_token_still_expires() -> None:
    now = [time.time()]
    tokens = service(JWTKey.generate("k"), clock=lambda: now[0])
    token = tokens.issue_access_token("u", expires_in=timedelta(minutes=1))
    assert (await tokens.verify(token)).subject == "u"
    assert (await tokens.verify(token)).subject == "u"  # served from the cache
    now[0] += 3600
    with pytest.raises(TokenExpiredError):
        await tokens.verify(token)


async def test_cached_token_still_honours_revocation() -> None:
    tokens = service(JWTKey.generate("k"), store=MemoryTokenStore())
    token = tokens.issue_access_token("u")
    await tokens.verify(token)
    await tokens.revoke(token)
    with pytest.raises(TokenRevokedError):
        await tokens.verify(token)


async def test_cache_is_bounded_and_can_be_turned_off() -> None:
    tokens = service(JWTKey.generate("k"), cache_size=2)
    issued = [tokens.issue_access_token(f"u{i}") for i in range(5)]
    for token in issued:
        await tokens.verify(token)
    assert len(tokens._cache) == 2
    uncached = service(JWTKey.generate("k"), cache_size=0)
    await uncached.verify(uncached.issue_access_token("u"))
    assert uncached._cache == {}


async def test_access_token_is_not_a_refresh_token() -> None:
    tokens = service(JWTKey.generate("k"), store=MemoryTokenStore())
    with pytest.raises(InvalidTokenError) as raised:
        await tokens.refresh(tokens.issue_access_token("u"))
    assert raised.value.reason == "token_type"


async def test_non_text_and_oversized_input_is_refused() -> None:
    tokens = service(JWTKey.generate("k"))
    with pytest.raises(InvalidTokenError) as raised:
        await tokens.verify("x" * 9000)
    assert raised.value.reason == "too_large"
    with pytest.raises(InvalidTokenError) as raised:
        await tokens.verify("é.e30.e30")
    assert raised.value.reason == "malformed"


def test_keys_are_checked_when_they_are_made(rsa_key: JWTKey) -> None:
    with pytest.raises(ConfigurationError, match="below"):
        JWTKey.hmac("short", b"x" * 16)
    with pytest.raises(ConfigurationError, match="not a valid HS256 key"):
        JWTKey.hmac("pem", b"-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ConfigurationError, match="not an HMAC algorithm"):
        JWTKey.hmac("k", b"x" * 64, "RS256")
    with pytest.raises(ConfigurationError, match="not a public-key algorithm"):
        JWTKey.from_pem("k", "pem", "HS256")
    with pytest.raises(ConfigurationError, match="not one of"):
        JWTKey("k", "none", b"")
    with pytest.raises(ConfigurationError, match="key id"):
        JWTKey.generate("../etc/passwd", "HS256")
    with pytest.raises(ConfigurationError, match="cannot generate"):
        JWTKey.generate("k", "XS256")
    ec_key = JWTKey.generate("ec", "ES256")
    with pytest.raises(ConfigurationError, match="not a valid ES384 key"):
        JWTKey("wrong-curve", "ES384", ec_key.signing_material())
    with pytest.raises(ConfigurationError, match="not a valid EdDSA key"):
        JWTKey("wrong-type", "EdDSA", rsa_key.signing_material())


def test_pem_and_secret_inputs_load() -> None:
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    private = JWTKey.generate("ed", "EdDSA").signing_material()
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    key = JWTKey.from_pem("ed", SecretStr(pem), "EdDSA")
    assert key.can_sign
    public = key.public_key()
    assert not public.can_sign
    assert public.public_key() is public
    assert "public" in repr(public)
    assert "secret" in repr(JWTKey.hmac("h", SecretStr("y" * 40)))
    with pytest.raises(ConfigurationError, match="cannot sign"):
        public.signing_material()


def test_key_set_rules() -> None:
    hs = JWTKey.hmac("hs", b"x" * 64)
    ed = JWTKey.generate("ed")
    keys = KeySet([hs, ed], signing_kid="hs")
    assert keys.signing_key is hs
    assert "ed" in keys
    assert len(keys) == 2
    assert keys.jwks()["keys"][0]["kid"] == "ed"  # the HMAC secret is never published
    with pytest.raises(ConfigurationError, match="already"):
        keys.add(JWTKey.generate("ed"))
    with pytest.raises(ConfigurationError, match="never published"):
        hs.public_jwk()
    with pytest.raises(ConfigurationError, match="no private"):
        _ = KeySet([ed.public_key()]).signing_key
    with pytest.raises(ConfigurationError, match="not a private"):
        KeySet([ed.public_key()], signing_kid="ed")


def test_service_configuration_is_checked() -> None:
    keys = KeySet([JWTKey.generate("k")])
    with pytest.raises(ConfigurationError, match="audience"):
        TokenService(keys, issuer="i", audience=[])
    with pytest.raises(ConfigurationError, match="subset"):
        TokenService(keys, issuer="i", audience="a", algorithms=["none"])


async def test_algorithm_allow_list_limits_what_keys_verify() -> None:
    keys = KeySet([JWTKey.hmac("hs", b"x" * 64)])
    issuer = TokenService(keys, issuer="i", audience="a")
    strict = TokenService(keys, issuer="i", audience="a", algorithms=["EdDSA"])
    with pytest.raises(InvalidTokenError) as raised:
        await strict.verify(issuer.issue_access_token("u"))
    assert raised.value.reason == "algorithm"


async def test_revocation_and_refresh_need_a_store() -> None:
    tokens = service(JWTKey.generate("k"))
    with pytest.raises(ConfigurationError, match="store"):
        await tokens.revoke(tokens.issue_access_token("u"))


async def test_refresh_keeps_roles_permissions_scopes_and_tenant() -> None:
    tokens = service(JWTKey.generate("k"), store=MemoryTokenStore())
    pair = tokens.issue_pair(
        "u", roles=["user"], permissions=["policy:read"], scopes=["profile"], tenant="acme"
    )
    renewed = await tokens.refresh(pair.refresh_token)
    principal = await tokens.verify(renewed.access_token)
    assert principal.roles == {"user"}
    assert principal.permissions == {"policy:read"}
    assert principal.scopes == {"profile"}
    assert principal.tenant == "acme"
    assert principal.family == (await tokens.verify(pair.access_token)).family


async def test_refresh_token_without_a_family_is_refused() -> None:
    tokens = service(JWTKey.generate("k"), store=MemoryTokenStore())
    key = tokens.keys.signing_key
    now = int(time.time())
    claims = {"iss": "iss", "aud": "aud", "sub": "u", "iat": now, "exp": now + 60}
    orphan = jwt.encode(
        {**claims, "jti": "j", "typ": "refresh"},
        key.signing_material(),
        algorithm=key.algorithm,
        headers={"kid": key.kid},
    )
    with pytest.raises(InvalidTokenError) as raised:
        await tokens.refresh(orphan)
    assert raised.value.reason == "claims"


async def test_revoking_an_invalid_token_fails() -> None:
    tokens = service(JWTKey.generate("k"), store=MemoryTokenStore())
    with pytest.raises(InvalidTokenError):
        await tokens.revoke("not.a.token")


async def test_memory_store_sweeps_expired_entries() -> None:
    store = MemoryTokenStore()
    for number in range(1023):
        await store.revoke(f"old-{number}", expires_at=0)
    await store.revoke("live", expires_at=2**31)
    assert await store.is_revoked("live", None)
    assert not await store.is_revoked("old-1", None)
    assert store._revoked == {"live": 2**31}


async def test_tokens_verify_as_text_or_header_bytes() -> None:
    tokens = service(JWTKey.generate("k"))
    token = tokens.issue_access_token("u")
    assert (await tokens.verify(token.encode())).subject == "u"
    assert (await tokens.verify(token.encode())).subject == "u"  # served from the cache
    assert (await tokens.verify(token)).subject == "u"
    with pytest.raises(InvalidTokenError) as raised:
        await tokens.verify(b"\xff" + token.encode())
    assert raised.value.reason == "malformed"
    with pytest.raises(InvalidTokenError) as raised:
        await tokens.verify(None)  # type: ignore[arg-type]
    assert raised.value.reason == "malformed"


async def test_verify_nowait_answers_known_tokens_without_a_store() -> None:
    now = [time.time()]
    tokens = service(JWTKey.generate("k"), clock=lambda: now[0])
    token = tokens.issue_access_token("u", expires_in=timedelta(minutes=1))
    assert tokens.verify_nowait(token) is None  # never seen: await verify()
    principal = await tokens.verify(token)
    assert tokens.verify_nowait(token) is principal
    with pytest.raises(InvalidTokenError) as raised:
        tokens.verify_nowait(token, kind="refresh")
    assert raised.value.reason == "token_type"
    now[0] += 3600
    with pytest.raises(TokenExpiredError):
        tokens.verify_nowait(token)


async def test_verify_nowait_asks_a_store_that_knows_from_memory() -> None:
    store = MemoryTokenStore()
    revocable = service(JWTKey.generate("k"), store=store)
    known = revocable.issue_access_token("u", family="login-1")
    other = revocable.issue_access_token("v", family="login-2")
    principal = await revocable.verify(known)
    await revocable.verify(other)
    assert revocable.verify_nowait(known) is principal
    await revocable.revoke_family("login-1")
    with pytest.raises(TokenRevokedError):
        revocable.verify_nowait(known)
    assert revocable.verify_nowait(other) is not None
    await revocable.revoke(other)
    with pytest.raises(TokenRevokedError):
        revocable.verify_nowait(other)


async def test_verify_nowait_leaves_a_store_that_needs_io_to_verify(
    redis_store: RedisTokenStore,
) -> None:
    revocable = service(JWTKey.generate("k"), store=redis_store)
    known = revocable.issue_access_token("u")
    await revocable.verify(known)
    assert revocable.verify_nowait(known) is None  # the revocation check is a round trip
    revocable.store = MemoryTokenStore()  # replacing the store replaces the check
    assert revocable.verify_nowait(known) is not None


async def test_a_revoked_token_stays_refused_through_the_leeway_after_it_expires() -> None:
    """A token verifies until exp plus the leeway, so its revocation must live as long."""
    keys, store = KeySet([JWTKey.generate("k")]), MemoryTokenStore()
    past = time.time() - 20
    issuer = TokenService(keys, issuer="iss", audience="aud", store=store, clock=lambda: past)
    verifier = TokenService(keys, issuer="iss", audience="aud", store=store)
    token = issuer.issue_access_token("u", expires_in=timedelta(seconds=10))  # exp 10 s ago
    await verifier.verify(token)  # within the 30 s leeway
    await verifier.revoke(token)
    with pytest.raises(TokenRevokedError):
        await verifier.verify(token)


async def test_a_cached_token_of_a_replaced_key_set_is_verified_again() -> None:
    tokens = service(JWTKey.generate("k"))
    token = tokens.issue_access_token("u")
    await tokens.verify(token)
    tokens.keys = KeySet([JWTKey.generate("k")])  # same kid, another key
    with pytest.raises(InvalidTokenError) as raised:
        await tokens.verify(token)
    assert raised.value.reason == "signature"


def test_base64url_segments_follow_pyjwt_rules() -> None:
    def outcome(decode: Callable[[bytes, str], bytes], segment: bytes) -> object:
        try:
            return decode(segment, "payload")
        except jwt.DecodeError as exc:
            return str(exc)

    token = service(JWTKey.generate("k")).issue_access_token("u").encode()
    segments = [*token.split(b"."), b"e30=", b"e30==", b"e3==", b"e3=", b"e31", b"e3\n0"]
    segments += [bytes(chars) for n in range(6) for chars in product(b"AQw-_=+!", repeat=n)]
    for segment in segments:
        ours = outcome(decode_segment, segment)
        assert ours == outcome(PyJWS._decode_base64url_segment, segment), segment


class TestOneStringIsNotACollection:
    """A str or bytes where a collection of names is expected raises TypeError, never iterates."""

    @pytest.mark.parametrize("parameter", ["roles", "permissions", "scopes"])
    @pytest.mark.parametrize("value", ["admin", b"admin", bytearray(b"admin")])
    def test_issuing_refuses_a_string_for_a_collection(
        self, parameter: str, value: str | bytes
    ) -> None:
        """``roles="admin"`` would otherwise issue the roles a, d, m, i, n."""
        tokens = service(JWTKey.generate("k"))
        with pytest.raises(TypeError, match=f"{parameter} must be a collection"):
            tokens.issue_access_token("u", **{parameter: value})  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=f"{parameter} must be a collection"):
            tokens.issue_pair("u", **{parameter: value})  # type: ignore[arg-type]

    def test_service_tokens_and_service_configuration_refuse_a_string(self) -> None:
        """Scopes of a service token, the accepted audiences and algorithms, likewise."""
        keys = KeySet([JWTKey.generate("k")])
        tokens = TokenService(keys, issuer="i", audience="a")
        with pytest.raises(TypeError, match="scopes must be a collection"):
            tokens.issue_service_token("svc", audience="a", scopes="user:read")
        with pytest.raises(TypeError, match="audience must be a collection"):
            TokenService(keys, issuer="i", audience=b"api")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="algorithms must be a collection"):
            TokenService(keys, issuer="i", audience="a", algorithms="EdDSA")

    async def test_collections_of_any_kind_still_work(self) -> None:
        """Lists, sets, tuples and one-shot generators are all fine (each read once)."""
        tokens = service(JWTKey.generate("k"))
        pair = tokens.issue_pair(
            "u", roles=(r for r in ["admin", "user"]), scopes={"a:read"}, permissions=("x:y",)
        )
        access = await tokens.verify(pair.access_token)
        assert (set(access.roles), set(access.scopes)) == ({"admin", "user"}, {"a:read"})
        refresh = await tokens.verify(pair.refresh_token, kind="refresh")
        assert set(refresh.roles) == {"admin", "user"}  # the generator was not used up by the first


class TestNumericDates:
    """exp, nbf and iat must be JSON numbers (RFC 7519 section 2 NumericDate)."""

    def token(self, key: JWTKey, **times: object) -> str:
        now = int(time.time())
        claims: dict[str, object] = {"iss": "iss", "aud": "aud", "sub": "u", "jti": "j"}
        claims |= {"typ": "access", "iat": now, "nbf": now, "exp": now + 600} | times
        material = key.signing_material()
        return jwt.encode(claims, material, algorithm=key.algorithm, headers={"kid": key.kid})

    @pytest.mark.parametrize(
        "times",
        [
            {"exp": str(int(time.time()) + 86_400)},
            {"exp": str(int(time.time()) - 86_400)},  # a string, before it is an expired one
            {"nbf": str(int(time.time()))},
            {"iat": str(int(time.time()))},
            {"exp": True},
            {"iat": False},
            {"exp": float("nan")},
            {"exp": float("inf")},
            {"exp": 2**64},
            {"nbf": [1]},
        ],
        ids=[
            "exp-future-string",
            "exp-past-string",
            "nbf-string",
            "iat-string",
            "exp-true",
            "iat-false",
            "exp-nan",
            "exp-infinity",
            "exp-beyond-2**53",
            "nbf-list",
        ],
    )
    async def test_a_time_claim_that_is_not_a_number_is_a_malformed_claim(
        self, times: dict[str, object]
    ) -> None:
        """A numeric string was accepted before: PyJWT reads the claims with int()."""
        key = JWTKey.hmac("hs", b"x" * 64)
        with pytest.raises(InvalidTokenError) as raised:
            await service(key).verify(self.token(key, **times))
        assert raised.value.reason == "claims"

    async def test_integer_and_fractional_numeric_dates_are_checked_as_before(self) -> None:
        """Numbers pass; an expired, not-yet-valid or future-issued one is refused."""
        key = JWTKey.hmac("hs", b"x" * 64)
        tokens = service(key)
        now = time.time()
        assert (await tokens.verify(self.token(key, exp=now + 600.5, iat=now - 0.5))).subject == "u"
        with pytest.raises(TokenExpiredError):
            await tokens.verify(self.token(key, exp=int(now) - 3600))
        for claim in ("nbf", "iat"):
            with pytest.raises(InvalidTokenError) as raised:
                await tokens.verify(self.token(key, **{claim: int(now) + 3600}))
            assert raised.value.reason == "not_yet_valid"
        # within the leeway (30 s) on either side
        assert await tokens.verify(self.token(key, exp=int(now) - 5, nbf=int(now) + 5))


def test_checks_policies_and_service_accounts_refuse_a_string_for_a_collection() -> None:
    """Everywhere aegis-auth takes names: the checks, the role policy, service accounts."""
    from aegis.auth import (  # only this test needs them
        Principal,
        RolePolicy,
        ServiceAccount,
        ServiceTokenAuth,
        ensure_permissions,
        ensure_roles,
        ensure_scopes,
        require_owner,
    )

    user = Principal(subject="u", roles=frozenset({"a"}))  # holds the role "a" of "admin"
    for check, parameter in [
        (ensure_roles, "roles"),
        (ensure_permissions, "permissions"),
        (ensure_scopes, "scopes"),
    ]:
        with pytest.raises(TypeError, match=f"{parameter} must be a collection"):
            check(user, "admin")
    with pytest.raises(TypeError, match="roles must be a collection"):
        require_owner(user, "someone-else", roles="admin")
    policy = RolePolicy.from_dict({"roles": {"admin": {"permissions": ["*:*"]}}})
    with pytest.raises(TypeError, match="roles must be a collection"):
        policy.permissions_for("admin")
    with pytest.raises(TypeError, match="roles must be a collection"):
        policy.expand_roles("admin")
    with pytest.raises(TypeError, match="scopes must be a collection"):
        ServiceAccount.create("svc", scopes="user:read")
    with pytest.raises(TypeError, match="audiences must be a collection"):
        ServiceAccount(name="svc", client_id="c", secret_hash="h", audiences="api")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="scopes must be a collection"):
        ServiceTokenAuth.client_credentials(
            "http://t/oauth/token", "c", "s", audience="a", scopes="user:read"
        )


class _RecordingStore(MemoryTokenStore):
    """A memory store that also records how long each entry is asked to live."""

    def __init__(self) -> None:
        super().__init__()
        self.kept_until: dict[str, int] = {}

    async def revoke(self, jti: str, *, expires_at: int) -> None:
        self.kept_until[jti] = expires_at
        await super().revoke(jti, expires_at=expires_at)

    async def consume(self, jti: str, *, expires_at: int) -> bool:
        self.kept_until[jti] = expires_at
        return await super().consume(jti, expires_at=expires_at)


class TestStoreEntryLifetimes:
    """A revocation or used refresh token is kept exactly until the token stops verifying."""

    async def test_a_revocation_lives_until_exp_plus_the_default_30_second_leeway(self) -> None:
        """Shorter, and a revoked token verifies again; far longer, and the store only grows."""
        store = _RecordingStore()
        tokens = service(JWTKey.generate("k"), store=store)
        token = tokens.issue_access_token("u")
        principal = await tokens.verify(token)
        await tokens.revoke(token)
        assert principal.expires_at is not None
        assert principal.token_id is not None
        assert store.kept_until == {principal.token_id: principal.expires_at + 30}

    async def test_a_used_refresh_token_lives_until_exp_plus_the_leeway(self) -> None:
        store = _RecordingStore()
        tokens = service(JWTKey.generate("k"), store=store, leeway=timedelta(seconds=2.5))
        refresh = tokens.issue_pair("u").refresh_token
        principal = await tokens.verify(refresh, kind="refresh")
        await tokens.refresh(refresh)
        assert principal.expires_at is not None
        assert principal.token_id is not None
        assert store.kept_until == {principal.token_id: principal.expires_at + 3}  # rounded up

    async def test_the_default_leeway_is_30_seconds_on_expiry(self) -> None:
        """A token expired 29 s ago still verifies, one expired 31 s ago does not."""
        key = JWTKey.generate("k")
        keys = KeySet([key])
        verifier = TokenService(keys, issuer="iss", audience="aud", cache_size=0)

        def expired_ago(seconds: int) -> str:
            issued_at = time.time() - 60
            issuer = TokenService(keys, issuer="iss", audience="aud", clock=lambda: issued_at)
            return issuer.issue_access_token("u", expires_in=timedelta(seconds=60 - seconds))

        assert (await verifier.verify(expired_ago(29))).subject == "u"
        with pytest.raises(TokenExpiredError):
            await verifier.verify(expired_ago(31))


def test_rejection_log_lines_cut_token_text_at_200_characters(
    caplog_auth: pytest.LogCaptureFixture,
) -> None:
    """Text taken from a token can never flood the log."""
    TokenService._log_rejection("malformed", "x" * 500)
    (record,) = caplog_auth.records
    assert f"'{'x' * 200}'" in record.getMessage()
    assert "x" * 201 not in record.getMessage()


class TestKeyDetails:
    """Key generation, default signer, implied JWK algorithms and how errors quote a kid."""

    def test_a_generated_hmac_secret_is_64_random_bytes(self) -> None:
        secrets = {JWTKey.generate("k", "HS256").signing_material() for _ in range(2)}
        assert [len(secret) for secret in secrets] == [64, 64]

    def test_the_last_key_able_to_sign_signs_by_default(self) -> None:
        """Rotation appends the new key: it must be the one that signs new tokens."""
        old, new = JWTKey.generate("2025"), JWTKey.generate("2026")
        public = JWTKey.generate("other").public_key()
        assert KeySet([old, new, public]).signing_key is new
        assert KeySet([new, old]).signing_key is old

    @pytest.mark.parametrize(
        ("algorithm", "without_alg"), [("EdDSA", "EdDSA"), ("ES384", "ES384"), ("RS256", "RS256")]
    )
    def test_a_jwk_without_alg_gets_the_algorithm_its_key_type_implies(
        self, algorithm: str, without_alg: str
    ) -> None:
        jwk = JWTKey.generate("k", algorithm).public_jwk()
        del jwk["alg"]
        key = JWTKey.from_jwk(jwk)
        assert (key.algorithm, key.can_sign) == (without_alg, False)

    def test_an_okp_jwk_of_another_curve_is_refused(self) -> None:
        jwk = {"kty": "OKP", "crv": "X25519", "kid": "k", "x": "AAAA"}
        with pytest.raises(ConfigurationError, match="algorithm None is not accepted"):
            JWTKey.from_jwk(jwk)

    def test_errors_quote_at_most_40_characters_of_a_hostile_kid(self) -> None:
        """A kid is attacker-chosen in a JWKS: messages (and logs) carry only its start."""
        kid = "".join(chr(ord("a") + i % 26) for i in range(300))
        quoted = repr(kid[:40])
        with pytest.raises(ConfigurationError) as raised:
            JWTKey.generate(kid + "/", "HS256")
        assert quoted in str(raised.value)
        assert kid[:41] not in str(raised.value)
        jwks = [
            {"kty": "oct", "kid": kid, "k": "AAAA"},  # not a public key type
            {"kty": "EC", "crv": "P-999", "kid": kid},  # no algorithm implied
            {"kty": "RSA", "kid": kid, "alg": "RS256", "n": "!", "e": "AQAB"},  # invalid key
        ]
        for jwk in jwks:
            with pytest.raises(ConfigurationError) as raised:
                JWTKey.from_jwk(jwk)
            assert quoted in str(raised.value), jwk
            assert kid[:41] not in str(raised.value), jwk
