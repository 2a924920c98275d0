"""SafeStr and Int64: client values every database, hash and token can take, or a 422."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

from aegis.core.models import Int64, SafeStr
from aegis.core.web import install_error_handlers


class Body(BaseModel):
    name: SafeStr = Field(min_length=1, max_length=20)
    note: SafeStr | None = None
    version: Int64 = 0


def error_types(body: object) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        Body.model_validate(body)
    return {".".join(map(str, e["loc"])): e["type"] for e in caught.value.errors()}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"name": "\ud800"}, {"name": "unicode"}),
        ({"name": "ok", "note": "tail \udfff"}, {"note": "unicode"}),
        ({"name": "a\x00b"}, {"name": "nul"}),
        ({"name": "ok", "version": 2**63}, {"version": "less_than_equal"}),
        ({"name": "ok", "version": -(2**63) - 1}, {"version": "greater_than_equal"}),
        ({"name": "x" * 21}, {"name": "string_too_long"}),  # the usual constraints still apply
        ({"name": 5}, {"name": "string_type"}),
    ],
    ids=["surrogate", "optional-surrogate", "nul", "above-int64", "below-int64", "long", "type"],
)
def test_unstorable_values_are_refused_naming_the_field(
    body: dict[str, object], expected: dict[str, str]
) -> None:
    assert error_types(body) == expected


def test_the_extremes_that_fit_are_kept() -> None:
    body = Body(name="\U0010ffff\u202e\u0301", version=2**63 - 1)
    assert (body.name, body.version) == ("\U0010ffff\u202e\u0301", 2**63 - 1)
    assert Body(name="x", version=-(2**63)).version == -(2**63)


@given(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=20))
def test_any_valid_text_without_nul_passes_unchanged(text: str) -> None:
    assert Body(name=text).name == text


@given(st.text(max_size=10), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF))
def test_any_text_with_a_lone_surrogate_is_refused(text: str, surrogate: str) -> None:
    assert error_types({"name": text[:5] + surrogate + text[5:]}) == {"name": "unicode"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_request_body_gets_a_problem_naming_the_field() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/things")
    async def create(body: Body) -> dict[str, str]:
        return {"name": body.name}

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        response = await client.post(
            "/things",
            content=b'{"name": "\\ud800", "version": 9223372036854775808}',
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    named = {error["field"]: error["type"] for error in response.json()["errors"]}
    assert named == {"name": "unicode", "version": "less_than_equal"}
