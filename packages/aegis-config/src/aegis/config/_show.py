"""A table of effective settings: every value, secrets masked, and where it came from."""

from __future__ import annotations

import json
import re

from pydantic_core import to_jsonable_python

from aegis.config._fields import iter_values
from aegis.config._settings import AegisSettings

MASK = "**********"
"""What a secret shows as (pydantic's own mask for SecretStr)."""

# scheme://user:password@host -> scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@/\s]+@")


def describe_settings(settings: AegisSettings) -> str:
    """Return the effective settings as a table of setting, value and source.

    ``SecretStr``/``SecretBytes`` values show as ``**********`` and passwords inside URLs
    as ``***``; the table is safe to print or log.

    Example output::

        UserServiceSettings (environment: production)
        setting       value                       source
        database.url  postgresql://app:***@db/u   env var USERS_DATABASE__URL
        jwt_secret    **********                  vault secret/user-service#jwt_secret
    """
    sources = settings.value_sources()
    rows = [("setting", "value", "source")]
    for path, _, value in iter_values(settings):
        dotted = ".".join(path)
        rows.append((dotted, display_value(value), sources.get(dotted, "default")))
    name_width = max(len(row[0]) for row in rows)
    value_width = max(len(row[1]) for row in rows)
    lines = [f"{type(settings).__name__} (environment: {settings.environment})"]
    lines.extend(
        f"{name:<{name_width}}  {value:<{value_width}}  {source}".rstrip()
        for name, value, source in rows
    )
    return "\n".join(lines)


def display_value(value: object) -> str:
    """Render one value for :func:`describe_settings`, with secrets masked."""
    plain = to_jsonable_python(value)  # pydantic masks SecretStr/SecretBytes here
    text = plain if isinstance(plain, str) else json.dumps(plain)
    return _URL_PASSWORD.sub(r"\g<head>***@", text)
