"""Roles with inheritance, wildcard permissions, scopes and ownership; 403 through real apps."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from aegis.auth import (
    AuthMiddleware,
    CurrentUser,
    PermissionDeniedError,
    Principal,
    RoleDefinition,
    RolePolicy,
    TokenMissingError,
    TokenService,
    ensure_permissions,
    ensure_roles,
    ensure_scopes,
    permissions_required,
    require_owner,
    roles_required,
    scopes_required,
)
from aegis.auth._principal import PRINCIPAL
from aegis.core.errors import ConfigurationError, InvalidInputError
from aegis.core.web import install_error_handlers

pytestmark = pytest.mark.anyio


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_admin_inherits_manager_and_user_through_the_apps(
    client: httpx.AsyncClient, tokens: TokenService
) -> None:
    admin = tokens.issue_access_token("boss", roles=["admin"])
    response = await client.get("/me", headers=bearer(admin))
    assert response.json()["roles"] == ["admin", "manager", "user"]
    assert (await client.get("/admin", headers=bearer(admin))).json() == {"ok": "boss"}
    assert (await client.get("/policies", headers=bearer(admin))).status_code == 200


async def test_role_denial_is_a_403_problem(
    client: httpx.AsyncClient, tokens: TokenService
) -> None:
    manager = tokens.issue_access_token("m", roles=["manager"])
    response = await client.get("/admin", headers=bearer(manager))
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "AUTH_PERMISSION_DENIED"
    assert response.json()["detail"] == "This needs the role 'admin'."


async def test_permissions_come_from_roles_and_from_the_token(
    client: httpx.AsyncClient, tokens: TokenService
) -> None:
    user = tokens.issue_access_token("u", roles=["user"])  # *:read covers policy:read
    assert (await client.get("/policies", headers=bearer(user))).status_code == 200
    nobody = tokens.issue_access_token("n", roles=["guest"])
    assert (await client.get("/policies", headers=bearer(nobody))).status_code == 403
    granted = tokens.issue_access_token("g", permissions=["policy:*"])
    assert (await client.get("/policies", headers=bearer(granted))).status_code == 200


async def test_missing_scope_is_a_403_with_an_insufficient_scope_challenge(
    client: httpx.AsyncClient, tokens: TokenService
) -> None:
    without = tokens.issue_access_token("u", scopes=["profile"])
    response = await client.get("/reports", headers=bearer(without))
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="reports:read"'
    )
    with_scope = tokens.issue_access_token("u", scopes=["reports:read"])
    assert (await client.get("/reports", headers=bearer(with_scope))).status_code == 200


async def test_request_user_and_context_are_set_for_the_request(
    client: httpx.AsyncClient, tokens: TokenService
) -> None:
    token = tokens.issue_access_token("u-7", tenant="acme")
    assert (await client.get("/me", headers=bearer(token))).json() == {
        "subject": "u-7",
        "roles": [],
        "scopes": [],
        "tenant": "acme",
        "is_service": False,
        "context_user_id": "u-7",
        "context_tenant_id": "acme",
        "same_as_context": True,
    }


async def test_public_paths_pass_without_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "pass"}
    assert (await client.get("/.well-known/jwks.json")).status_code == 200


def test_any_of_and_all_of_checks() -> None:
    user = Principal("u", roles=frozenset({"a"}), permissions=frozenset({"user:read"}))
    assert ensure_roles(user, ["a", "b"]) is user
    with pytest.raises(PermissionDeniedError, match="'a' and 'b'"):
        ensure_roles(user, ["a", "b"], match="all")
    assert ensure_permissions(user, ["user:read", "policy:read"], match="any") is user
    with pytest.raises(PermissionDeniedError):
        ensure_permissions(user, ["user:read", "policy:read"])
    assert ensure_scopes(user, []) is user
    with pytest.raises(TokenMissingError):
        ensure_roles(None, ["a"])
    with pytest.raises(InvalidInputError):
        user.has_permission("not a permission")


def test_wildcard_grants() -> None:
    reader = Principal("r", permissions=frozenset({"*:read"}))
    assert reader.has_permission("user:read")
    assert not reader.has_permission("user:write")
    root = Principal("root", permissions=frozenset({"*:*"}))
    assert root.has_permission("policy:delete")


def test_ownership_check() -> None:
    owner = Principal("u-1")
    admin = Principal("u-2", roles=frozenset({"admin"}))
    stranger = Principal("u-3")
    assert require_owner(owner, "u-1") is owner
    assert require_owner(admin, "u-1") is admin
    with pytest.raises(PermissionDeniedError, match="owner"):
        require_owner(stranger, "u-1")
    with pytest.raises(PermissionDeniedError):
        require_owner(stranger, None, roles=["support"])
    assert (owner.identity, owner.display_name, owner.is_authenticated) == ("u-1", "u-1", True)


async def test_decorators_guard_service_functions() -> None:
    @roles_required("admin")
    async def delete_everything() -> str:
        return "deleted"

    @permissions_required("report:export")
    def export() -> str:
        return "exported"

    with pytest.raises(TokenMissingError):
        await delete_everything()
    token = PRINCIPAL.set(Principal("u", permissions=frozenset({"report:*"})))
    try:
        assert export() == "exported"
        with pytest.raises(PermissionDeniedError):
            await delete_everything()
    finally:
        PRINCIPAL.reset(token)


@pytest.mark.parametrize(
    ("decorator", "meant"),
    [
        (roles_required("admin"), "Depends(require_roles('admin'))"),
        (roles_required("a", "b", match="all"), "Depends(require_roles('a', 'b', match='all'))"),
        (permissions_required("policy:read"), "Depends(require_permissions('policy:read'))"),
        (scopes_required("read"), "Depends(require_scopes('read'))"),
    ],
)
def test_a_decorator_used_as_a_fastapi_dependency_fails_when_the_route_is_defined(
    decorator: Callable[..., Any], meant: str
) -> None:
    # Accepted before: FastAPI read the decorator's parameter as a query parameter, so every
    # caller got 422 query.function.
    app = FastAPI()
    with pytest.raises(TypeError, match=r"not a FastAPI dependency; use " + re.escape(meant)):

        @app.get("/in-list", dependencies=[Depends(decorator)])
        async def in_list() -> None: ...

    with pytest.raises(TypeError, match=re.escape(meant)):

        @app.get("/as-parameter")
        async def as_parameter(user: object = Depends(decorator)) -> None: ...

    assert app.openapi()["paths"] == {}


async def test_a_decorated_fastapi_endpoint_keeps_its_own_parameters(
    tokens: TokenService,
) -> None:
    app = FastAPI()
    app.add_middleware(AuthMiddleware, tokens=tokens)
    install_error_handlers(app)

    @app.get("/reports/{report_id}")
    @roles_required("admin")
    async def report(report_id: int, page: int = 1) -> dict[str, int]:
        return {"report_id": report_id, "page": page}

    admin = tokens.issue_access_token("u-1", roles=["admin"])
    user = tokens.issue_access_token("u-2", roles=["user"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        allowed = await client.get(
            "/reports/7?page=2", headers={"Authorization": f"Bearer {admin}"}
        )
        denied = await client.get("/reports/7", headers={"Authorization": f"Bearer {user}"})
    assert (allowed.status_code, allowed.json()) == (200, {"report_id": 7, "page": 2})
    assert denied.status_code == 403


def test_policy_loads_from_yaml_file_and_text(tmp_path: Path) -> None:
    text = """
roles:
  admin: {inherits: [manager], permissions: ["*:*"]}
  manager: {inherits: [user], permissions: ["policy:*"]}
  user: {permissions: ["*:read"]}
  auditor:
"""
    path = tmp_path / "policies.yaml"
    path.write_text(text)
    for policy in (RolePolicy.from_yaml(path), RolePolicy.from_yaml(text)):
        assert policy.expand_roles(["admin"]) == {"admin", "manager", "user"}
        assert policy.permissions_for(["manager"]) == {"policy:*", "*:read"}
        assert policy.expand_roles(["stranger"]) == {"stranger"}
        assert policy.permissions_for(["auditor"]) == frozenset()
        assert policy.roles == ["admin", "manager", "user", "auditor"]


@pytest.mark.parametrize(
    ("roles", "message"),
    [
        ({"a": {"inherits": ["b"]}, "b": {"inherits": ["a"]}}, r"cycle: a -> b -> a"),
        ({"a": {"inherits": ["a"]}}, r"cycle: a -> a"),
        (
            {"a": {"inherits": ["b"]}, "b": {"inherits": ["c"]}, "c": {"inherits": ["b"]}},
            "b -> c -> b",
        ),
        ({"a": {"inherits": ["ghost"]}}, "undefined role"),
        ({"a": {"permissions": ["Policy:Read"]}}, "role 'a'"),
        ({"a": {"permissions": "policy:read"}}, "list of text"),
        ({"a": {"grants": []}}, "only 'inherits' and 'permissions'"),
        ({"bad name": {}}, "role name"),
    ],
)
def test_policy_mistakes_are_clear_errors_at_load_time(
    roles: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RolePolicy.from_dict({"roles": roles})


def test_policy_document_shape_errors() -> None:
    with pytest.raises(ConfigurationError, match="'roles' mapping"):
        RolePolicy.from_dict({"role": {}})
    with pytest.raises(ConfigurationError, match="'roles' mapping"):
        RolePolicy.from_yaml("- just a list")
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        RolePolicy.from_yaml("roles: [unclosed")
    with pytest.raises(ConfigurationError, match="twice"):
        RolePolicy([RoleDefinition("a"), RoleDefinition("a")])


def test_diamond_inheritance_is_not_a_cycle() -> None:
    policy = RolePolicy(
        [
            RoleDefinition("lead", inherits=("writer", "reviewer")),
            RoleDefinition("writer", inherits=("reader",), permissions=("doc:write",)),
            RoleDefinition("reviewer", inherits=("reader",), permissions=("doc:review",)),
            RoleDefinition("reader", permissions=("doc:read",)),
        ]
    )
    assert policy.expand_roles(["lead"]) == {"lead", "writer", "reviewer", "reader"}
    assert policy.permissions_for(["lead"]) == {"doc:write", "doc:review", "doc:read"}


async def test_current_user_on_a_public_path_is_a_401(tokens: TokenService) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/open")
    async def open_route(user: CurrentUser) -> str:
        return user.subject

    app.add_middleware(AuthMiddleware, tokens=tokens, public_paths=["/open"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        response = await http.get("/open")
    assert (response.status_code, response.json()["code"]) == (401, "AUTH_TOKEN_MISSING")


def test_a_role_definition_is_immutable() -> None:
    """A policy checks its definitions once, on load: they must not change afterwards."""
    role = RoleDefinition("user", permissions=("doc:read",))
    with pytest.raises(FrozenInstanceError):
        role.permissions = ("*:*",)  # type: ignore[misc]


def test_a_long_malformed_role_name_is_shown_cut_to_64_characters() -> None:
    name = "a" * 64 + "b" * 36
    with pytest.raises(ConfigurationError) as caught:
        RolePolicy([RoleDefinition(name)])
    assert f"role name {'a' * 64!r} must be 1-64 of" in caught.value.message
    assert RolePolicy([RoleDefinition("a" * 64)]).roles == ["a" * 64]


def test_resolved_role_sets_are_remembered_up_to_1024_combinations() -> None:
    """A token naming roles at random must not grow the policy's memory without bound."""
    policy = RolePolicy(
        [RoleDefinition("user", permissions=("doc:read",)), RoleDefinition("admin", ("user",))]
    )
    assert policy.permissions_for(["admin"]) == {"doc:read"}
    assert len(policy._cache) == 1
    for number in range(1100):
        assert policy.expand_roles(["admin", f"r{number}"]) == {"admin", "user", f"r{number}"}
    assert len(policy._cache) == 1024
    # past the limit, answers are computed each time and still right
    assert policy.permissions_for(["r1099", "admin"]) == {"doc:read"}
    assert frozenset({"r1099", "admin"}) not in policy._cache
