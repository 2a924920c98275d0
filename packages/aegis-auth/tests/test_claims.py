"""What a verified token may carry: claim boundaries, time claims, and the Principal made of them.

The limits are the contract with hostile input: one item, one character or one byte past each
is refused, the limit itself is accepted.
"""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError
from typing import Any

import jwt
import pytest

from aegis.auth import (
    MAX_TOKEN_BYTES,
    REQUIRED_CLAIMS,
    InvalidTokenError,
    KeySet,
    RoleDefinition,
    RolePolicy,
    TokenExpiredError,
    TokenPair,
    TokenService,
)
from aegis.auth._claims import (
    check_times,
    is_numeric_date,
    principal_from_claims,
    reason_for,
    text_collection,
)

pytestmark = pytest.mark.anyio

POLICY = RolePolicy(
    [
        RoleDefinition("admin", inherits=("user",), permissions=("*:*",)),
        RoleDefinition("user", permissions=("doc:read",)),
    ]
)


def claims(**changes: Any) -> dict[str, Any]:
    """Verified claims of an access token, with ``changes`` (None removes a claim)."""
    base: dict[str, Any] = {
        "sub": "user-1",
        "jti": "jti-1",
        "exp": 1_700_000_600,
        "iat": 1_700_000_000,
        "iss": "https://users.example",
        "aud": "users-api",
        "typ": "access",
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


class TestConstants:
    def test_the_published_limits(self) -> None:
        assert MAX_TOKEN_BYTES == 8192
        assert REQUIRED_CLAIMS == ("exp", "iat", "sub", "jti", "iss", "aud", "typ")


class TestTextCollection:
    @pytest.mark.parametrize("value", ["admin", b"admin", bytearray(b"admin"), memoryview(b"ad")])
    def test_a_single_string_or_bytes_is_refused(self, value: Any) -> None:
        with pytest.raises(TypeError, match=r"roles must be a collection of strings such as \["):
            text_collection(value, "roles")

    def test_the_message_shows_the_value_cut_to_40_characters(self) -> None:
        with pytest.raises(TypeError) as caught:
            text_collection("a" * 40 + "b" * 10, "scopes")
        assert str(caught.value) == (
            f"scopes must be a collection of strings such as [{'a' * 40!r}], not a single str"
        )

    def test_a_collection_is_returned_as_it_is(self) -> None:
        roles = ("a", "b")
        assert text_collection(roles, "roles") is roles


class TestNumericDate:
    @pytest.mark.parametrize("value", [0, 1, 1.5, -1, 2**53, -(2**53), 1_700_000_000])
    def test_json_numbers_up_to_2_53_are_numeric_dates(self, value: float) -> None:
        assert is_numeric_date(value)

    @pytest.mark.parametrize(
        "value", [True, False, "1", None, 2**53 + 1, -(2**53) - 1, math.nan, math.inf, -math.inf]
    )
    def test_other_values_are_not(self, value: Any) -> None:
        assert not is_numeric_date(value)


class TestCheckTimes:
    NOW = 1_700_000_000.0

    def test_exp_is_expired_at_now_minus_leeway_and_valid_a_second_later(self) -> None:
        with pytest.raises(TokenExpiredError):
            check_times({"exp": self.NOW - 30}, self.NOW, 30)
        with pytest.raises(TokenExpiredError):
            check_times({"exp": self.NOW - 31}, self.NOW, 30)
        check_times({"exp": self.NOW - 29}, self.NOW, 30)
        check_times({"exp": self.NOW + 1}, self.NOW, 0)
        with pytest.raises(TokenExpiredError):
            check_times({"exp": self.NOW}, self.NOW, 0)

    @pytest.mark.parametrize("name", ["nbf", "iat"])
    def test_nbf_and_iat_may_lie_up_to_the_leeway_in_the_future(self, name: str) -> None:
        check_times({name: self.NOW + 30}, self.NOW, 30)
        check_times({name: self.NOW - 1000}, self.NOW, 0)
        with pytest.raises(InvalidTokenError) as caught:
            check_times({name: self.NOW + 31}, self.NOW, 30)
        assert caught.value.reason == "not_yet_valid"

    @pytest.mark.parametrize("name", ["iat", "nbf", "exp"])
    def test_a_time_claim_that_is_not_a_number_is_malformed(self, name: str) -> None:
        with pytest.raises(InvalidTokenError) as caught:
            check_times({name: str(int(self.NOW))}, self.NOW, 0)
        assert caught.value.reason == "claims"
        assert name in caught.value.message

    def test_no_time_claims_pass(self) -> None:
        check_times({"sub": "x"}, self.NOW, 0)


class TestPrincipalFromClaims:
    def test_every_claim_lands_in_the_principal(self) -> None:
        verified = claims(
            roles=["admin"],
            permissions=["report:write"],
            scope="read write",
            tenant="acme",
            fam="family-1",
            exp=1_700_000_600.0,
        )
        principal = principal_from_claims(verified, POLICY)
        assert principal is not None
        assert principal.subject == "user-1"
        assert principal.roles == {"admin", "user"}
        assert principal.permissions == {"report:write", "*:*", "doc:read"}
        assert principal.scopes == {"read", "write"}
        assert (principal.tenant, principal.family, principal.token_id) == (
            "acme",
            "family-1",
            "jti-1",
        )
        assert principal.expires_at == 1_700_000_600
        assert type(principal.expires_at) is int
        assert principal.claims is verified

    def test_without_a_policy_roles_grant_nothing(self) -> None:
        principal = principal_from_claims(claims(roles=["admin"]), None)
        assert principal is not None
        assert principal.roles == {"admin"}
        assert principal.permissions == frozenset()

    def test_absent_optional_claims_are_empty(self) -> None:
        principal = principal_from_claims(claims(), POLICY)
        assert principal is not None
        assert principal.roles == principal.permissions == principal.scopes == frozenset()
        assert (principal.tenant, principal.family) == (None, None)

    def test_scope_may_be_a_list(self) -> None:
        principal = principal_from_claims(claims(scope=["a", "b"]), None)
        assert principal is not None
        assert principal.scopes == {"a", "b"}

    @pytest.mark.parametrize("name", ["roles", "permissions", "scope"])
    def test_256_items_are_accepted_and_257_refused(self, name: str) -> None:
        def items(count: int) -> list[str]:
            return [f"doc{n}:read" for n in range(count)]

        accepted = principal_from_claims(claims(**{name: items(256)}), None)
        assert accepted is not None
        assert principal_from_claims(claims(**{name: items(257)}), None) is None

    @pytest.mark.parametrize("name", ["roles", "scope"])
    def test_items_of_1_to_256_characters_are_accepted(self, name: str) -> None:
        for text in ("r", "r" * 256):
            assert principal_from_claims(claims(**{name: [text]}), None) is not None
        assert principal_from_claims(claims(**{name: ["r" * 257]}), None) is None
        assert principal_from_claims(claims(**{name: [""]}), None) is None
        assert principal_from_claims(claims(**{name: [1]}), None) is None
        assert principal_from_claims(claims(**{name: ("r",)}), None) is None

    @pytest.mark.parametrize("name", ["tenant", "fam"])
    def test_tenant_and_family_are_1_to_256_characters(self, name: str) -> None:
        for text in ("t", "t" * 256):
            principal = principal_from_claims(claims(**{name: text}), None)
            assert principal is not None
            assert (principal.tenant if name == "tenant" else principal.family) == text
        for bad in ("", "t" * 257, ["t"], 7):
            assert principal_from_claims(claims(**{name: bad}), None) is None

    def test_a_malformed_permission_or_an_empty_subject_gives_no_principal(self) -> None:
        assert principal_from_claims(claims(permissions=["Doc:READ"]), None) is None
        assert principal_from_claims(claims(sub=""), None) is None

    def test_a_scope_string_splits_on_any_whitespace(self) -> None:
        principal = principal_from_claims(claims(scope=" a\tb  c "), None)
        assert principal is not None
        assert principal.scopes == {"a", "b", "c"}


class TestTokenPair:
    def test_the_oauth_token_response(self) -> None:
        pair = TokenPair("at", "rt", 900, 86_400)
        assert pair.to_response() == {
            "access_token": "at",
            "token_type": "Bearer",
            "expires_in": 900,
            "refresh_token": "rt",
        }
        with pytest.raises(FrozenInstanceError):
            pair.access_token = "other"  # type: ignore[misc]


class TestReasonFor:
    @pytest.mark.parametrize(
        ("error", "reason"),
        [
            (jwt.ExpiredSignatureError(), "expired"),
            (jwt.ImmatureSignatureError(), "not_yet_valid"),
            (jwt.InvalidAudienceError(), "audience"),
            (jwt.InvalidIssuerError(), "issuer"),
            (jwt.InvalidAlgorithmError(), "algorithm"),
            (jwt.MissingRequiredClaimError("exp"), "claims"),
            (jwt.DecodeError("Not enough segments"), "malformed"),
            (jwt.InvalidSignatureError("Signature verification failed"), "malformed"),
            (jwt.DecodeError("Expiration Time claim (exp) must be an integer."), "claims"),
            (jwt.InvalidTokenError("anything"), "malformed"),
            (jwt.InvalidIssuedAtError("iat"), "claims"),
            (jwt.InvalidKeyError("key"), "claims"),
        ],
    )
    def test_each_pyjwt_error_has_its_reason(self, error: jwt.PyJWTError, reason: str) -> None:
        assert reason_for(error) == reason


class TestTokenSize:
    async def test_a_token_of_8192_bytes_is_verified_and_one_of_8193_refused(
        self, keys: KeySet
    ) -> None:
        service = TokenService(keys, issuer="https://users.example", audience="users-api")
        sized: dict[int, str] = {}
        # base64 never makes every length: vary two claims until both sizes turn up.
        for pad in range(5820, 5880):
            for tenant in ("t", "tt", "ttt"):
                token = service.issue_access_token("u", tenant=tenant, extra={"pad": "x" * pad})
                sized.setdefault(len(token), token)
            if 8192 in sized and 8193 in sized:
                break
        principal = await service.verify(sized[8192])
        assert principal.subject == "u"
        with pytest.raises(InvalidTokenError) as caught:
            await service.verify(sized[8193])
        assert caught.value.reason == "too_large"
