"""Service accounts: client credentials for a token, and an httpx client that renews it."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette

from aegis.auth import (
    AuthMiddleware,
    CurrentUser,
    JWTKey,
    KeySet,
    PasswordService,
    ServiceAccount,
    ServiceAccounts,
    ServiceTokenAuth,
    TokenService,
    require_scopes,
)
from aegis.core.errors import ConfigurationError, ExternalServiceError
from aegis.core.utils.security import PasswordHasher
from aegis.core.web import install_error_handlers

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def auth_tokens() -> TokenService:
    return TokenService(KeySet([JWTKey.generate("auth-1")]), issuer="auth", audience="auth")


@pytest.fixture
def billing() -> tuple[ServiceAccount, str]:
    return ServiceAccount.create(
        "billing", scopes=["users:read", "users:write"], audiences=["users"], client_id="billing-1"
    )


@pytest.fixture
def auth_app(auth_tokens: TokenService, billing: tuple[ServiceAccount, str]) -> Starlette:
    passwords = PasswordService(PasswordHasher(memory_cost=1024, time_cost=1))
    accounts = ServiceAccounts([billing[0]], auth_tokens, passwords=passwords)
    return Starlette(routes=[accounts.token_route()])


@pytest.fixture
def users_app(auth_tokens: TokenService) -> FastAPI:
    verifier = TokenService(auth_tokens.keys, issuer="auth", audience="users")
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/users/7")
    async def read_user(caller: CurrentUser) -> dict[str, Any]:
        return {"caller": caller.subject, "service": caller.is_service}

    @app.delete("/users/7", dependencies=[Depends(require_scopes("users:delete"))])
    async def delete_user() -> dict[str, Any]:
        return {}

    app.add_middleware(AuthMiddleware, tokens=verifier)
    return app


@pytest.fixture
async def auth_http(auth_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=auth_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://auth") as client:
        yield client


def basic(client_id: str, secret: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


async def test_client_credentials_give_a_service_token(
    auth_http: httpx.AsyncClient, billing: tuple[ServiceAccount, str], auth_tokens: TokenService
) -> None:
    account, secret = billing
    assert secret not in account.secret_hash
    response = await auth_http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "audience": "users", "scope": "users:read"},
        headers=basic("billing-1", secret),
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 300, "users:read")
    verifier = TokenService(auth_tokens.keys, issuer="auth", audience="users")
    principal = await verifier.verify(body["access_token"])
    assert (principal.subject, principal.scopes) == ("service:billing", frozenset({"users:read"}))


@pytest.mark.parametrize(
    ("form", "headers", "expected"),
    [
        ({"grant_type": "password", "audience": "users"}, "good", (422, "VALIDATION_ERROR")),
        ({"grant_type": "client_credentials"}, "good", (422, "VALIDATION_ERROR")),
        (
            {"grant_type": "client_credentials", "audience": "users"},
            "wrong",
            (401, "AUTH_CREDENTIALS_INVALID"),
        ),
        (
            {"grant_type": "client_credentials", "audience": "users"},
            "unknown",
            (401, "AUTH_CREDENTIALS_INVALID"),
        ),
        (
            {"grant_type": "client_credentials", "audience": "users"},
            "garbled",
            (401, "AUTH_CREDENTIALS_INVALID"),
        ),
        (
            {"grant_type": "client_credentials", "audience": "users"},
            None,
            (401, "AUTH_CREDENTIALS_INVALID"),
        ),
        (
            {"grant_type": "client_credentials", "audience": "payroll"},
            "good",
            (403, "AUTH_PERMISSION_DENIED"),
        ),
        (
            {"grant_type": "client_credentials", "audience": "users", "scope": "users:delete"},
            "good",
            (403, "AUTH_PERMISSION_DENIED"),
        ),
    ],
)
async def test_bad_token_requests_answer_problems(
    auth_http: httpx.AsyncClient,
    billing: tuple[ServiceAccount, str],
    form: dict[str, str],
    headers: str | None,
    expected: tuple[int, str],
) -> None:
    secret = billing[1]
    sent = {
        "good": basic("billing-1", secret),
        "wrong": basic("billing-1", secret[:-1] + "x"),
        "unknown": basic("payroll-1", secret),
        "garbled": {"Authorization": "Basic !!!"},
        None: {},
    }[headers]
    response = await auth_http.post("/oauth/token", data=form, headers=sent)
    assert (response.status_code, response.json()["code"]) == expected
    assert secret not in response.text


async def test_form_credentials_work_and_malformed_forms_are_refused(
    auth_http: httpx.AsyncClient, billing: tuple[ServiceAccount, str]
) -> None:
    good = {
        "grant_type": "client_credentials",
        "audience": "users",
        "client_id": "billing-1",
        "client_secret": billing[1],
    }
    assert (await auth_http.post("/oauth/token", data=good)).status_code == 200
    as_json = await auth_http.post("/oauth/token", json=good)
    assert as_json.json()["errors"][0]["type"] == "content_type"
    form = {"content-type": "application/x-www-form-urlencoded"}
    repeated = await auth_http.post(
        "/oauth/token", content=b"grant_type=a&grant_type=b", headers=form
    )
    assert repeated.json()["errors"][0]["field"] == "grant_type"
    huge = await auth_http.post("/oauth/token", content=b"a=" + b"x" * 5000, headers=form)
    assert huge.json()["errors"][0]["type"] == "size"
    not_utf8 = await auth_http.post("/oauth/token", content=b"a=\xff\xfe", headers=form)
    assert not_utf8.status_code == 422
    many = await auth_http.post(
        "/oauth/token", content="&".join(f"f{i}=1" for i in range(40)).encode(), headers=form
    )
    assert many.status_code == 422


async def test_httpx_client_obtains_caches_and_renews_the_token(
    auth_http: httpx.AsyncClient, billing: tuple[ServiceAccount, str], users_app: FastAPI
) -> None:
    clock = Clock()
    auth = ServiceTokenAuth.client_credentials(
        "http://auth/oauth/token",
        "billing-1",
        billing[1],
        audience="users",
        scopes=["users:read"],
        client=auth_http,
    )
    auth._clock = clock
    transport = httpx.ASGITransport(app=users_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://users", auth=auth) as users:
        for _ in range(3):
            response = await users.get("/users/7")
            assert response.json() == {"caller": "service:billing", "service": True}
        assert auth.fetches == 1
        clock.now += 300 - 30  # renewed 30 s before expiry
        assert (await users.get("/users/7")).status_code == 200
        assert auth.fetches == 2
        denied = await users.delete("/users/7")
        assert denied.status_code == 403
        assert auth.fetches == 2


async def test_a_401_renews_the_token_once_and_retries(
    auth_tokens: TokenService, users_app: FastAPI
) -> None:
    issued: list[str] = []

    async def fetch() -> tuple[str, float]:
        audience = "users" if issued else "somebody-else"  # the first token is refused
        issued.append(auth_tokens.issue_service_token("billing", audience=audience))
        return issued[-1], 300.0

    auth = ServiceTokenAuth(fetch)
    transport = httpx.ASGITransport(app=users_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://users", auth=auth) as users:
        assert (await users.get("/users/7")).status_code == 200
    assert len(issued) == 2


async def test_self_signed_service_tokens(auth_tokens: TokenService, users_app: FastAPI) -> None:
    auth = ServiceTokenAuth.self_signed(
        auth_tokens, "reports", audience="users", expires_in=timedelta(minutes=2)
    )
    transport = httpx.ASGITransport(app=users_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://users", auth=auth) as users:
        assert (await users.get("/users/7")).json()["caller"] == "service:reports"


async def test_token_route_failure_is_an_external_service_error(
    auth_http: httpx.AsyncClient,
) -> None:
    auth = ServiceTokenAuth.client_credentials(
        "http://auth/oauth/token", "nobody", "secret", audience="users", client=auth_http
    )
    with pytest.raises(ExternalServiceError, match="401"):
        await auth.token()


def test_duplicate_client_ids_are_refused(
    billing: tuple[ServiceAccount, str], auth_tokens: TokenService
) -> None:
    with pytest.raises(ConfigurationError, match="twice"):
        ServiceAccounts([billing[0], billing[0]], auth_tokens)
    account, _ = ServiceAccount.create("reports")
    assert account.client_id.startswith("reports-")
