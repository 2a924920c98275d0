"""`import aegis.core` and its modules without extras pull in only the stdlib and pydantic."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import aegis.core
from aegis.testing import import_error_without

EXTRA_MODULES = {
    "aegis.core.web": "web",
    "aegis.core.utils.security": "crypto",
    "aegis.core.utils.files": "files",
    "aegis.core.utils.validation": "validation",
    "aegis.core.metrics": "metrics",
    "aegis.core.redis_clients": "redis",
}
PYDANTIC = {
    "pydantic",
    "pydantic_core",
    "typing_extensions",
    "annotated_types",
    "typing_inspection",
}


def _public_modules() -> list[str]:
    names = [
        info.name
        for info in pkgutil.walk_packages(aegis.core.__path__, prefix="aegis.core.")
        if not any(part.startswith("_") for part in info.name.split("."))
    ]
    return ["aegis.core", *names]


def _third_party_imported_by(modules: list[str]) -> set[str]:
    script = (
        "import importlib, json, sys\n"
        "before = set(sys.modules)\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    loaded = {name for name in json.loads(result.stdout) if not name.startswith("_sysconfigdata")}
    return loaded - set(sys.stdlib_module_names) - {"aegis"}  # _sysconfigdata*: stdlib, unlisted


def test_core_modules_without_extras_import_only_pydantic() -> None:
    core_modules = [m for m in _public_modules() if m not in EXTRA_MODULES]
    assert "aegis.core.errors" in core_modules
    assert _third_party_imported_by(core_modules) <= PYDANTIC


def test_import_aegis_core_alone_does_not_import_the_extras() -> None:
    loaded = _third_party_imported_by(["aegis.core"])
    assert not loaded & {
        "starlette",
        "fastapi",
        "cryptography",
        "argon2",
        "bcrypt",
        "puremagic",
        "redis",
    }
    assert loaded <= PYDANTIC


def test_masking_imports_no_third_party_library() -> None:
    # aegis-log masks every line with it; a service that logs need not load pydantic.
    assert _third_party_imported_by(["aegis.core.utils.masking", "aegis.core.context"]) == set()


EXTRA_LIBRARIES = {
    "web": ["starlette"],
    "crypto": ["argon2", "bcrypt", "cryptography"],
    "files": ["puremagic"],
    "validation": ["email_validator", "phonenumbers"],
    "metrics": ["prometheus_client"],
    "redis": ["redis"],
}


@pytest.mark.parametrize(("module", "extra"), sorted(EXTRA_MODULES.items()))
def test_a_module_whose_extra_is_missing_says_which_extra_to_install(
    module: str, extra: str
) -> None:
    message = import_error_without(EXTRA_LIBRARIES[extra], f"import {module}")
    assert message is not None
    assert message.startswith(f"{module} needs ")
    assert message.endswith(f"pip install 'aegis-core[{extra}]'")
