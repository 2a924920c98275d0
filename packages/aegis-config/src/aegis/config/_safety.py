"""Settings that must never reach production: debug on, empty or placeholder secrets, CORS ``*``."""

from __future__ import annotations

from typing import Any

from pydantic import SecretBytes, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from aegis.config._fields import iter_values, variable_name

# Values people type while developing; a production secret is none of them.
_PLACEHOLDERS = frozenset(
    {
        "admin",
        "change-me",
        "change_me",
        "changeit",
        "changeme",
        "default",
        "dev",
        "development",
        "example",
        "insecure",
        "password",
        "secret",
        "test",
        "todo",
    }
)


def unsafe_values(settings: BaseSettings) -> list[str]:
    """Return one line per unsafe value: the variable to change and why.

    Looked for anywhere in the settings, including nested models:

    - a ``debug`` field that is true;
    - a ``SecretStr`` / ``SecretBytes`` that is empty, equals its field's default, or is a
      well-known placeholder (``changeme``, ``secret``, ...);
    - a field whose name contains ``cors`` or ``origins`` and allows ``*``.

    The lines never hold a secret's value.
    """
    problems: list[str] = []
    settings_cls = type(settings)
    for path, field, value in iter_values(settings):
        name = path[-1].lower()
        why = None
        if name == "debug" and value is True:
            why = "debug is on; turn it off in production"
        elif isinstance(value, SecretStr | SecretBytes):
            why = _weak_secret(field, value)
        elif ("cors" in name or "origins" in name) and _allows_any_origin(value):
            why = "'*' allows every origin; list the origins that may call the service"
        if why is not None:
            problems.append(f"{variable_name(settings_cls, path)}: {why}")
    return problems


def _weak_secret(field: FieldInfo, value: SecretStr | SecretBytes) -> str | None:
    secret = _text(value)
    if not secret.strip():
        return "the secret is empty"
    default = field.default
    if isinstance(default, SecretStr | SecretBytes | str | bytes) and secret == _text(default):
        return "the secret is the default written in the code"
    if secret.strip().lower() in _PLACEHOLDERS:
        return "the secret is a well-known placeholder"
    return None


def _text(value: SecretStr | SecretBytes | str | bytes) -> str:
    if isinstance(value, SecretStr | SecretBytes):
        value = value.get_secret_value()
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _allows_any_origin(value: Any) -> bool:
    if isinstance(value, str):
        return "*" in (part.strip() for part in value.split(","))
    if isinstance(value, list | tuple | set | frozenset):
        return any(isinstance(item, str) and item.strip() == "*" for item in value)
    return False
