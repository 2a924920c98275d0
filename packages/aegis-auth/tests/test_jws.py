"""The guard of PyJWT's hooks: which path verifies tokens, and the fallback when it must be."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from jwt import PyJWS, PyJWT

from aegis.auth import InvalidTokenError, JWTKey, KeySet, TokenService
from aegis.auth._jws import KeyedJWT, fast_path_available, missing_internals

pytestmark = pytest.mark.anyio


def _service() -> TokenService:
    return TokenService(KeySet([JWTKey.generate("k", "ES256")]), issuer="iss", audience="aud")


async def test_the_installed_pyjwt_takes_the_fast_path() -> None:
    assert missing_internals() == []
    assert fast_path_available()
    decoder = KeyedJWT(["ES256"], ["exp"])
    assert decoder.fast
    tokens = _service()
    assert (await tokens.verify(tokens.issue_access_token("u"))).subject == "u"


@pytest.mark.usefixtures("pyjwt_public_path")
async def test_a_pyjwt_without_the_hooks_gets_the_public_path_and_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="aegis.auth"):
        services = [_service() for _ in range(3)]
    warnings = [r for r in caplog.records if r.name == "aegis.auth"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    message = warnings[0].getMessage()
    assert "PyJWS._verify_signature(signing_input, header, signature" in message
    assert "public API" in message
    assert not KeyedJWT(["ES256"], ["exp"]).fast
    for tokens in services:
        assert (await tokens.verify(tokens.issue_access_token("u"))).subject == "u"


def _without(owner: type, name: str) -> Callable[[pytest.MonkeyPatch], None]:
    return lambda patch: patch.delattr(owner, name)


def _replace(owner: type, name: str, value: object) -> Callable[[pytest.MonkeyPatch], None]:
    return lambda patch: patch.setattr(owner, name, value)


def _segment_with_other_names(data: bytes, label: str) -> bytes:
    return data


def _jwt_without_jws(self: PyJWT, options: Any = None) -> None:
    self.options = PyJWT._get_default_options()


def _decode_without_the_hook(self: PyJWS, jwt: str | bytes, *args: Any, **kwargs: Any) -> Any:
    """A release that verifies somewhere else: the hook is there but never called."""
    payload, _, header, signature = self._load(jwt)
    return {"payload": payload, "header": header, "signature": signature}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (_without(PyJWS, "_verify_signature"), "PyJWS._verify_signature("),
        (
            _replace(PyJWS, "_decode_base64url_segment", staticmethod(_segment_with_other_names)),
            "PyJWS._decode_base64url_segment(",
        ),
        (
            _replace(PyJWS, "_decode_base64url_segment", _segment_with_other_names),
            "PyJWS._decode_base64url_segment(",
        ),
        (_replace(PyJWT, "__init__", _jwt_without_jws), "PyJWT()._jws"),
        (
            _replace(PyJWS, "decode_complete", _decode_without_the_hook),
            "PyJWS.decode_complete calling PyJWS._verify_signature",
        ),
    ],
    ids=["verify_gone", "segment_renamed", "segment_not_static", "no_jws", "hook_not_called"],
)
def test_the_guard_names_each_hook_a_release_could_change(
    change: Callable[[pytest.MonkeyPatch], None], named: str
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        change(patch)
        missing = missing_internals()
    assert len(missing) == 1
    assert missing[0].startswith(named)
    assert missing_internals() == []  # and nothing else was disturbed


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.usefixtures("jwt_path")
@pytest.mark.parametrize(
    "header",
    [
        {"alg": "HS512", "kid": "k", "b64": False, "crit": ["b64"]},  # not the key's algorithm
        {"alg": "ES256", "kid": "nobody", "b64": False, "crit": ["b64"]},  # an unknown kid
        {"alg": "ES256", "kid": "k", "b64": False},  # b64 without crit
    ],
    ids=["algorithm", "kid", "no_crit"],
)
async def test_an_unencoded_payload_is_malformed_before_any_key_is_chosen(
    header: dict[str, Any],
) -> None:
    tokens = _service()
    token = f"{_b64url(json.dumps(header).encode())}..{_b64url(b'signature')}"
    with pytest.raises(InvalidTokenError) as caught:
        await tokens.verify(token)
    assert caught.value.reason == "malformed"
