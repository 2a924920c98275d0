"""Hostile input, each case through a real FastAPI app and a real Starlette app.

Every case answers 401 (403 for RBAC) problem+json with a stable code and reason, an RFC 6750
challenge, never a 500 and never the token in the answer. RFC 8725 and the OWASP JWT cheat
sheet are the checklist.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import RSAAlgorithm

from aegis.auth import JWTKey, KeySet, TokenService

# Every test twice: tokens verified through PyJWT's hooks and through its public API.
pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("jwt_path")]
HS_SECRET = b"s" * 64  # the secret of key hs-1 in conftest's key set
ISSUER = "https://users.example"
AUDIENCE = "users-api"


class Forger:
    """Builds tokens by hand, signed (or not) however a test needs."""

    def encode(self, header: dict[str, Any], payload: dict[str, Any], signature: bytes) -> str:
        return ".".join([self.b64(header), self.b64(payload), self.b64url(signature)])

    def hs256(self, header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
        signing_input = f"{self.b64(header)}.{self.b64(payload)}".encode()
        signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
        return f"{signing_input.decode()}.{self.b64url(signature)}"

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "user-1",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "jti": "jti-" + str(now),
            "typ": "access",
            "roles": ["user"],
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    @staticmethod
    def b64(value: dict[str, Any]) -> str:
        return Forger.b64url(json.dumps(value).encode())

    @staticmethod
    def b64url(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @staticmethod
    def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
        header, payload, signature = token.split(".")

        def decode(part: str) -> dict[str, Any]:
            value: dict[str, Any] = json.loads(
                base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
            )
            return value

        return decode(header), decode(payload), signature


@pytest.fixture
def forge(hs_secret: bytes) -> Forger:
    assert hs_secret == HS_SECRET
    return Forger()


async def refused(
    client: httpx.AsyncClient,
    token: str | bytes | None,
    *,
    code: str,
    reason: str,
    headers: list[tuple[str, str | bytes]] | None = None,
) -> httpx.Response:
    sent = [
        (name.encode(), value if isinstance(value, bytes) else value.encode())
        for name, value in headers or []
    ]
    if token is not None:
        sent.append(
            (b"Authorization", b"Bearer " + (token.encode() if isinstance(token, str) else token))
        )
    response = await client.get("/me", headers=sent)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    assert body["reason"] in reason.split("|")  # "a|b": the base64 may or may not still decode
    assert body["status"] == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer")
    if code != "AUTH_TOKEN_MISSING":
        assert 'error="invalid_token"' in challenge
    if isinstance(token, str) and len(token) > 8:
        assert token not in response.text
        assert token[-8:] not in response.text  # not even the signature
    return response


def signed(forge: Forger, **claims: Any) -> str:
    """A correctly HS256-signed token (key hs-1) with the given claim changes."""
    return forge.hs256(
        {"alg": "HS256", "kid": "hs-1", "typ": "at+jwt"}, forge.claims(**claims), HS_SECRET
    )


async def test_a_correctly_signed_forged_token_is_accepted_so_the_cases_below_mean_something(
    client: httpx.AsyncClient, forge: Forger
) -> None:
    response = await client.get("/me", headers={"Authorization": f"Bearer {signed(forge)}"})
    assert response.status_code == 200
    assert response.json()["subject"] == "user-1"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
async def test_alg_none_is_rejected(client: httpx.AsyncClient, forge: Forger, alg: str) -> None:
    token = forge.encode({"alg": alg, "kid": "hs-1"}, forge.claims(), b"")
    await refused(client, token, code="AUTH_TOKEN_INVALID", reason="algorithm")


async def test_hs256_token_keyed_with_the_rsa_public_key_is_rejected(
    client: httpx.AsyncClient, forge: Forger, rsa_key: JWTKey
) -> None:
    public = RSAAlgorithm.from_jwk(rsa_key.public_jwk())
    assert isinstance(public, RSAPublicKey)
    public_pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    token = forge.hs256({"alg": "HS256", "kid": rsa_key.kid}, forge.claims(), public_pem)
    await refused(client, token, code="AUTH_TOKEN_INVALID", reason="algorithm")


async def test_token_signed_by_an_unknown_key_is_rejected(
    client: httpx.AsyncClient, forge: Forger
) -> None:
    stranger = TokenService(
        KeySet([JWTKey.generate("ed-9", "EdDSA")]),
        issuer="https://users.example",
        audience="users-api",
    )
    await refused(
        client,
        stranger.issue_access_token("user-1"),
        code="AUTH_TOKEN_INVALID",
        reason="unknown_key",
    )


async def test_token_with_a_known_kid_but_another_key_is_rejected(
    client: httpx.AsyncClient,
) -> None:
    impostor = TokenService(
        KeySet([JWTKey.generate("ed-1", "EdDSA")]),
        issuer="https://users.example",
        audience="users-api",
    )
    await refused(
        client, impostor.issue_access_token("user-1"), code="AUTH_TOKEN_INVALID", reason="signature"
    )


async def test_token_of_a_retired_key_is_rejected_even_after_it_was_accepted(
    client: httpx.AsyncClient, tokens: TokenService
) -> None:
    tokens.keys.add(JWTKey.generate("ed-2", "EdDSA"), sign=True)
    old = TokenService(tokens.keys, issuer=tokens.issuer, audience=tokens.audiences)
    tokens.keys.use_for_signing("ed-1")
    token = tokens.issue_access_token("user-1")
    tokens.keys.use_for_signing("ed-2")
    assert (
        await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 200
    new_token = tokens.issue_access_token("user-1")
    tokens.keys.retire("ed-1")
    await refused(client, token, code="AUTH_TOKEN_INVALID", reason="unknown_key")
    assert (
        await client.get("/me", headers={"Authorization": f"Bearer {new_token}"})
    ).status_code == 200
    assert old.keys is tokens.keys


@pytest.mark.parametrize(
    "kid",
    [
        "../../../../etc/passwd",
        "/dev/null",
        "https://evil.example/jwks.json",
        "file:///etc/shadow",
        "' OR '1'='1",
        "hs-1'; DROP TABLE keys;--",
        "hs-1\x00",
        "x" * 129,
        "",
        17,
        ["hs-1"],
        None,
    ],
)
async def test_hostile_kid_values_are_rejected(
    client: httpx.AsyncClient, forge: Forger, kid: object
) -> None:
    token = forge.hs256({"alg": "HS256", "kid": kid}, forge.claims(), HS_SECRET)
    response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["reason"] in {"unknown_key", "malformed"}


async def test_expired_token_is_rejected_with_its_own_code(
    client: httpx.AsyncClient, forge: Forger
) -> None:
    now = int(time.time())
    token = signed(forge, iat=now - 7200, nbf=now - 7200, exp=now - 3600)
    response = await refused(client, token, code="AUTH_TOKEN_EXPIRED", reason="expired")
    assert (
        'error_description="The bearer token has expired."' in response.headers["www-authenticate"]
    )


async def test_expiry_within_the_leeway_is_still_accepted(
    client: httpx.AsyncClient, forge: Forger
) -> None:
    token = signed(forge, exp=int(time.time()) - 5)  # default leeway: 30 s
    assert (
        await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 200


async def test_not_yet_valid_token_is_rejected(client: httpx.AsyncClient, forge: Forger) -> None:
    token = signed(forge, nbf=int(time.time()) + 600)
    await refused(client, token, code="AUTH_TOKEN_INVALID", reason="not_yet_valid")


async def test_far_future_iat_is_rejected(client: httpx.AsyncClient, forge: Forger) -> None:
    token = signed(forge, iat=int(time.time()) + 10 * 365 * 86400, nbf=None)
    await refused(client, token, code="AUTH_TOKEN_INVALID", reason="not_yet_valid")


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "jti", "iss", "aud", "typ"])
async def test_token_missing_a_required_claim_is_rejected(
    client: httpx.AsyncClient, forge: Forger, claim: str
) -> None:
    claims = forge.claims()
    del claims[claim]
    token = forge.hs256({"alg": "HS256", "kid": "hs-1"}, claims, HS_SECRET)
    response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["reason"] in {"claims", "token_type"}


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"iss": "https://evil.example"}, "issuer"),
        ({"iss": ["https://users.example"]}, "issuer"),
        ({"aud": "another-api"}, "audience"),
        ({"aud": ["another-api", "third-api"]}, "audience"),
        ({"aud": [17]}, "audience"),
        ({"exp": "soon"}, "claims"),
        ({"exp": 1e400}, "claims"),
        # RFC 7519 NumericDate is a JSON number: PyJWT's int() took these (and true as 1).
        ({"exp": str(int(time.time()) + 86_400)}, "claims"),
        ({"exp": str(int(time.time()) - 86_400)}, "claims"),
        ({"nbf": str(int(time.time()))}, "claims"),
        ({"iat": str(int(time.time()))}, "claims"),
        ({"exp": True}, "claims"),
        ({"sub": 42}, "claims"),
        ({"sub": ""}, "claims"),
        ({"jti": 7}, "claims"),
        ({"roles": "admin"}, "claims"),
        ({"roles": [{"name": "admin"}]}, "claims"),
        ({"roles": ["r"] * 257}, "claims"),
        ({"permissions": ["Policy:READ"]}, "claims"),
        ({"scope": 5}, "claims"),
        ({"tenant": ["a", "b"]}, "claims"),
        ({"typ": "refresh"}, "token_type"),
        ({"typ": "id"}, "token_type"),
    ],
)
async def test_wrong_or_malformed_claims_are_rejected(
    client: httpx.AsyncClient, forge: Forger, claims: dict[str, Any], reason: str
) -> None:
    await refused(client, signed(forge, **claims), code="AUTH_TOKEN_INVALID", reason=reason)


async def test_refresh_token_is_not_an_access_token(
    client: httpx.AsyncClient, tokens: TokenService
) -> None:
    pair = tokens.issue_pair("user-1")
    await refused(client, pair.refresh_token, code="AUTH_TOKEN_INVALID", reason="token_type")


async def test_access_token_header_type_must_match_the_typ_claim(
    client: httpx.AsyncClient, forge: Forger
) -> None:
    token = forge.hs256({"alg": "HS256", "kid": "hs-1", "typ": "rt+jwt"}, forge.claims(), HS_SECRET)
    await refused(client, token, code="AUTH_TOKEN_INVALID", reason="token_type")


async def test_tampered_payload_with_the_original_signature_is_rejected(
    client: httpx.AsyncClient, tokens: TokenService, forge: Forger
) -> None:
    original = tokens.issue_access_token("user-1", roles=["user"])
    header, claims, signature = forge.parts(original)
    claims["roles"] = ["admin"]
    tampered = f"{forge.b64(header)}.{forge.b64(claims)}.{signature}"
    await refused(client, tampered, code="AUTH_TOKEN_INVALID", reason="signature")
    # Once the original is cached (the cache is keyed by the end of the signature), the
    # tampered token, which ends the same way, is still verified in full and refused.
    assert (await client.get("/me", headers={"Authorization": f"Bearer {original}"})).is_success
    await refused(client, tampered, code="AUTH_TOKEN_INVALID", reason="signature")


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda t: t[: len(t) // 2], "malformed"),
        (lambda t: t.rsplit(".", 1)[0], "malformed"),
        (lambda t: t[:-3], "malformed|signature"),
        (lambda t: t + "A", "malformed|signature"),
        (lambda t: "a!b.c$d.e%f", "malformed"),
        (lambda t: "....", "malformed"),
        (lambda t: "e30.e30.", "algorithm"),
        (lambda t: t.replace(".", "..", 1), "malformed"),
    ],
)
async def test_truncated_and_non_base64_tokens_are_rejected(
    client: httpx.AsyncClient, tokens: TokenService, mangle: Any, reason: str
) -> None:
    await refused(
        client,
        mangle(tokens.issue_access_token("user-1")),
        code="AUTH_TOKEN_INVALID",
        reason=reason,
    )


async def test_oversized_token_is_rejected_unparsed(
    client: httpx.AsyncClient, forge: Forger
) -> None:
    token = signed(forge, padding="x" * 9000)
    await refused(client, token, code="AUTH_TOKEN_INVALID", reason="too_large")


async def test_deeply_nested_json_header_is_rejected(
    client: httpx.AsyncClient, forge: Forger
) -> None:
    header = forge.b64url(b"[" * 3000 + b"]" * 3000)
    await refused(client, f"{header}.e30.", code="AUTH_TOKEN_INVALID", reason="malformed")


@pytest.mark.parametrize(
    "raw", [b"\xff\xfe\xfd.e30.e30", "ünïcode.e30.e30".encode(), b"a\x00b.c.d"]
)
async def test_non_ascii_and_non_utf8_tokens_are_rejected(
    client: httpx.AsyncClient, raw: bytes
) -> None:
    await refused(client, raw, code="AUTH_TOKEN_INVALID", reason="malformed")


async def test_duplicate_authorization_headers_are_rejected(
    client: httpx.AsyncClient, tokens: TokenService
) -> None:
    token = tokens.issue_access_token("user-1")
    headers: list[tuple[str, str | bytes]] = [
        ("Authorization", f"Bearer {token}"),
        ("AUTHORIZATION", f"Bearer {token}"),
    ]
    await refused(client, None, code="AUTH_TOKEN_INVALID", reason="malformed", headers=headers)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_bearer_scheme_is_case_insensitive(
    client: httpx.AsyncClient, tokens: TokenService, scheme: str
) -> None:
    token = tokens.issue_access_token("user-1")
    response = await client.get("/me", headers={"authorization": f"{scheme} {token}"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("value", "code", "reason"),
    [
        ("Basic dXNlcjpwYXNz", "AUTH_TOKEN_MISSING", "missing"),
        ("Bearer", "AUTH_TOKEN_INVALID", "malformed"),
        ("Bearer ", "AUTH_TOKEN_INVALID", "malformed"),
        ("Bearer a b c", "AUTH_TOKEN_INVALID", "malformed"),
    ],
)
async def test_other_schemes_and_empty_bearer_are_rejected(
    client: httpx.AsyncClient, value: str, code: str, reason: str
) -> None:
    await refused(client, None, code=code, reason=reason, headers=[("Authorization", value)])


async def test_no_token_answers_a_challenge_without_error(client: httpx.AsyncClient) -> None:
    response = await refused(client, None, code="AUTH_TOKEN_MISSING", reason="missing")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_roles_injected_through_unsigned_fields_are_ignored(
    client: httpx.AsyncClient, tokens: TokenService
) -> None:
    key = tokens.keys.signing_key
    claims = {
        "iss": tokens.issuer,
        "aud": tokens.audiences[0],
        "sub": "user-1",
        "iat": int(time.time()),
        "exp": int(time.time()) + 60,
        "jti": "j-1",
        "typ": "access",
        "roles": ["user"],
    }
    header_roles = jwt.encode(
        claims,
        key.signing_material(),
        algorithm=key.algorithm,
        headers={"kid": key.kid, "roles": ["admin"], "permissions": ["*:*"]},
    )
    for token in (header_roles, tokens.issue_access_token("user-1", roles=["user"])):
        response = await client.get(
            "/admin?roles=admin",
            headers={
                "Authorization": f"Bearer {token}",
                "X-Roles": "admin",
                "X-User-Roles": "admin",
                "Cookie": "roles=admin",
            },
        )
        assert response.status_code == 403
        assert response.json()["code"] == "AUTH_PERMISSION_DENIED"


async def test_embedded_jwk_and_jku_headers_are_never_trusted(
    client: httpx.AsyncClient, forge: Forger
) -> None:
    attacker = JWTKey.generate("hs-1", "EdDSA")
    own = TokenService(KeySet([attacker]), issuer="https://users.example", audience="users-api")
    header, claims, signature = forge.parts(own.issue_access_token("user-1", roles=["admin"]))
    header.update(
        jwk=attacker.public_jwk(),
        jku="https://evil.example/jwks.json",
        x5u="https://evil.example/c",
    )
    token = f"{forge.b64(header)}.{forge.b64(claims)}.{signature}"
    await refused(client, token, code="AUTH_TOKEN_INVALID", reason="algorithm")


async def test_unknown_critical_header_is_rejected(
    client: httpx.AsyncClient, forge: Forger
) -> None:
    token = forge.hs256(
        {"alg": "HS256", "kid": "hs-1", "crit": ["exp-policy"], "exp-policy": 1},
        forge.claims(),
        HS_SECRET,
    )
    await refused(client, token, code="AUTH_TOKEN_INVALID", reason="malformed")


async def test_rejection_details_go_to_the_log_not_the_answer(
    client: httpx.AsyncClient, forge: Forger, caplog_auth: pytest.LogCaptureFixture
) -> None:
    token = signed(forge, aud="another-api")
    response = await refused(client, token, code="AUTH_TOKEN_INVALID", reason="audience")
    assert "users-api" not in response.text  # the expected audience is not disclosed
    assert "InvalidAudienceError" in caplog_auth.text
    assert token not in caplog_auth.text
