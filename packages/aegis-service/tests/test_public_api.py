"""The public names of aegis.service: an addition or removal shows up here in review."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import aegis.service
from aegis.core.errors import ConfigurationError
from aegis.service import AuthSettings, ServiceSettings


def test_public_names_are_exactly_these() -> None:
    assert aegis.service.__all__ == [
        "DEFAULT_QUIET_PATHS",
        "AuthSettings",
        "PagesSettings",
        "RateLimitSettings",
        "Service",
        "ServiceSettings",
        "__version__",
        "adopt_uvicorn_logging",
        "bootstrap",
    ]
    assert all(hasattr(aegis.service, name) for name in aegis.service.__all__)
    assert aegis.service.__version__ == "0.1.0"


def test_every_public_function_and_class_has_a_docstring() -> None:
    objects = {name: getattr(aegis.service, name) for name in aegis.service.__all__}
    undocumented = [
        name
        for name, value in objects.items()
        if (inspect.isfunction(value) or inspect.isclass(value)) and not value.__doc__
    ]
    assert undocumented == []


def test_no_member_imports_aegis_service() -> None:
    """The top layer: every member imports without it, and none of them loads it."""
    members = ["auth", "cache", "config", "core", "db", "log", "msg", "obs", "schema", "testing"]
    code = (
        "import importlib, sys\n"
        f"for name in {members!r}: importlib.import_module('aegis.' + name)\n"
        "print([m for m in sys.modules if m.startswith('aegis.service')])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


HIDE = """
import sys
from importlib.abc import MetaPathFinder

class Hide(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in ("aegis.db", "aegis.cache", "aegis.msg") or name.startswith("aegis.db."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Hide())
"""


def test_without_an_extra_its_settings_are_refused_with_the_extra_to_install() -> None:
    code = HIDE + (
        "from aegis.core.errors import ConfigurationError\n"
        "from aegis.service import ServiceSettings\n"
        "assert ServiceSettings(name='x').database is None\n"
        "try:\n"
        "    ServiceSettings(name='x', database={'url': 'sqlite:///x.db'})\n"
        "except ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "pip install 'aegis-service[db]'" in result.stdout


def test_production_refuses_a_token_issuer_without_a_signing_key() -> None:
    auth = AuthSettings(issuer="users", audience="shop")
    with pytest.raises(ConfigurationError, match="AEGIS_SERVICE_AUTH__SIGNING_KEY"):
        ServiceSettings.load(environment="production", name="users", auth=auth, log=None)
    verifying = AuthSettings(issuer="users", audience="shop", jwks_url="https://users/jwks")
    settings = ServiceSettings.load(environment="production", name="x", auth=verifying, log=None)
    assert settings.auth == verifying
