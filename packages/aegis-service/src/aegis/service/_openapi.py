"""The OpenAPI document of a FastAPI service says what aegis answers: bearer auth and problems.

FastAPI documents 422 as its ``HTTPValidationError`` and nothing for 401/403/429/500, while an
aegis service answers each with ``application/problem+json``; and without a security scheme
the docs page has no Authorize button.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from aegis.core.errors import PROBLEM_CONTENT_TYPE
from aegis.service._pages import document_pages

if TYPE_CHECKING:
    from fastapi import FastAPI

    from aegis.service._service import Service

SECURITY_SCHEME: Final = "bearerAuth"
_METHODS: Final = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_FASTAPI_VALIDATION: Final = ("HTTPValidationError", "ValidationError")
_PROBLEM: Final = {
    "title": "Problem",
    "description": "An RFC 9457 problem document.",
    "type": "object",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string", "description": "A URI naming the kind of problem."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The request path."},
        "code": {"type": "string", "description": "A stable error code."},
        "request_id": {"type": "string", "description": "The X-Request-ID of the request."},
    },
}
_FIELD_ERROR: Final = {
    "title": "FieldError",
    "type": "object",
    "required": ["field", "message", "type"],
    "properties": {
        "field": {"type": "string", "description": "Dotted field name: address.zip, query.page"},
        "message": {"type": "string"},
        "type": {"type": "string"},
    },
}
_VALIDATION_PROBLEM: Final = {
    "title": "ValidationProblem",
    "allOf": [
        {"$ref": "#/components/schemas/Problem"},
        {
            "type": "object",
            "properties": {
                "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}}
            },
        },
    ],
}


def _answer(description: str, schema: str = "Problem") -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"description": description, "content": {PROBLEM_CONTENT_TYPE: {"schema": ref}}}


def document_openapi(app: FastAPI, service: Service) -> None:
    """Make ``app.openapi()`` declare bearer auth and the problem+json answers of every route.

    Every operation gets 500 (and 422 as a ``ValidationProblem`` where FastAPI documented its
    own); with authentication, every operation not in the public paths gets the
    ``bearerAuth`` requirement and 401/403; with a rate limit, 429.
    """
    build = app.openapi
    documented: list[int] = []

    def openapi() -> dict[str, Any]:
        schema = build()  # FastAPI's document, cached by FastAPI while the routes stay
        if id(schema) not in documented:
            _document(schema, service)
            documented[:] = [id(schema)]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point


def _document(schema: dict[str, Any], service: Service) -> None:
    document_pages(schema, service)  # first: a page that is not public needs a token too
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(
        {"Problem": _PROBLEM, "FieldError": _FIELD_ERROR, "ValidationProblem": _VALIDATION_PROBLEM}
    )
    secured = service.tokens is not None
    if secured:
        components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
        }
    limited = service.rate_limiter is not None
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = _answer("The request is invalid", "ValidationProblem")
            if secured and not service.public_paths.matches(method.upper(), path):
                operation.setdefault("security", [{SECURITY_SCHEME: []}])
                responses.setdefault("401", _answer("No valid bearer token"))
                responses.setdefault("403", _answer("The caller may not do this"))
            if limited:
                responses.setdefault("429", _answer("Too many requests; see Retry-After"))
            responses.setdefault("500", _answer("The server failed; the error was logged"))
    text = json.dumps(schema)
    for name in _FASTAPI_VALIDATION:
        if f'"#/components/schemas/{name}"' not in text:
            schemas.pop(name, None)
            text = json.dumps(schema)
