"""The OpenAPI document of a bootstrapped FastAPI service validates and says what it answers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from openapi_spec_validator import validate
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from aegis.auth import CurrentUser
from aegis.cache import CacheSettings
from aegis.service import AuthSettings, RateLimitSettings, ServiceSettings, bootstrap

PROBLEM = "application/problem+json"


class Item(BaseModel):
    name: str


def document(**settings: Any) -> dict[str, Any]:
    app = FastAPI()

    @app.post("/items", status_code=201)
    async def create_item(item: Item, principal: CurrentUser) -> dict[str, str]:
        return {"name": item.name}

    @app.post("/signup")
    async def signup(item: Item) -> dict[str, str]:
        return {"name": item.name}

    bootstrap(app, ServiceSettings(name="docs", log=None, **settings), registry=CollectorRegistry())
    return app.openapi()


def schema_of(operation: dict[str, Any], status: str) -> Any:
    return operation["responses"][status]["content"][PROBLEM]["schema"]


def test_the_document_validates_and_declares_bearer_auth_and_problem_answers() -> None:
    spec = document(
        auth=AuthSettings(issuer="docs", audience="docs", public_paths=("POST /signup",)),
        cache=CacheSettings(),
        rate_limit=RateLimitSettings(limit=10, period_seconds=1),
    )
    validate(spec)  # raises on an invalid OpenAPI 3.1 document
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    protected = spec["paths"]["/items"]["post"]
    assert protected["security"] == [{"bearerAuth": []}]
    for status in ["401", "403", "429", "500"]:
        assert schema_of(protected, status) == {"$ref": "#/components/schemas/Problem"}
    assert schema_of(protected, "422") == {"$ref": "#/components/schemas/ValidationProblem"}
    public = spec["paths"]["/signup"]["post"]
    assert "security" not in public
    assert "401" not in public["responses"]
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's 422 body is never sent
    assert {"Problem", "ValidationProblem", "FieldError"} <= schemas.keys()


def test_without_auth_or_rate_limit_no_scheme_401_or_429_is_declared() -> None:
    spec = document()
    validate(spec)
    operation = spec["paths"]["/items"]["post"]
    assert "securitySchemes" not in spec["components"]
    assert sorted(operation["responses"]) == ["201", "422", "500"]
