"""Which environment the process runs in: development, staging, production or test.

The names are aegis.core's :class:`~aegis.core.models.Environment`; this module reads them from
the process environment and turns a wrong name into a :class:`ConfigurationError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from aegis.core.errors import ConfigurationError
from aegis.core.models import ENVIRONMENT_ALIASES, Environment

ENVIRONMENT_VARIABLES = ("AEGIS_ENV", "APP_ENV", "ENVIRONMENT")
"""The variables that name the environment, first set one wins."""


def parse_environment(value: str | Environment, *, source: str = "environment") -> Environment:
    """Normalise an environment name (``prod``, ``Production``, ``production``) to an Environment.

    Args:
        value: the name; case and surrounding blanks do not matter.
        source: where the value came from (a variable name), for the error message.

    Raises:
        ConfigurationError: the name is not one of the environments or their aliases.

    Example:
        >>> parse_environment("Prod")
        <Environment.PRODUCTION: 'production'>
    """
    try:
        return Environment(value)
    except ValueError:
        known = ", ".join(e.value for e in Environment)
        aliases = ", ".join(sorted(ENVIRONMENT_ALIASES))
        raise ConfigurationError(
            f"{source}={value!r} is not a known environment; use one of {known}"
            f" (aliases: {aliases})",
            details={"variable": source, "allowed": [e.value for e in Environment]},
        ) from None


def detect_environment(environ: Mapping[str, str] | None = None) -> Environment:
    """Return the environment named by ``AEGIS_ENV``, ``APP_ENV`` or ``ENVIRONMENT``.

    The first of those variables that is set and not empty decides; with none set the
    environment is development. ``.env`` files cannot choose it: the environment decides
    which files are read.

    Args:
        environ: the variables to look in; defaults to ``os.environ``.

    Raises:
        ConfigurationError: the variable names no known environment.
    """
    variables = os.environ if environ is None else environ
    for name in ENVIRONMENT_VARIABLES:
        value = variables.get(name, "").strip()
        if value:
            return parse_environment(value, source=name)
    return Environment.DEVELOPMENT


def is_development(environ: Mapping[str, str] | None = None) -> bool:
    """Return whether :func:`detect_environment` answers development."""
    return detect_environment(environ) is Environment.DEVELOPMENT


def is_staging(environ: Mapping[str, str] | None = None) -> bool:
    """Return whether :func:`detect_environment` answers staging."""
    return detect_environment(environ) is Environment.STAGING


def is_production(environ: Mapping[str, str] | None = None) -> bool:
    """Return whether :func:`detect_environment` answers production."""
    return detect_environment(environ) is Environment.PRODUCTION


def is_test(environ: Mapping[str, str] | None = None) -> bool:
    """Return whether :func:`detect_environment` answers test."""
    return detect_environment(environ) is Environment.TEST
