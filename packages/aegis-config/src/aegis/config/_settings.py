"""AegisSettings: pydantic-settings with environments, Vault, encrypted values and clear errors."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from pydantic import PrivateAttr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from aegis.config._environment import detect_environment, parse_environment
from aegis.config._errors import validation_error
from aegis.config._fields import iter_values
from aegis.config._safety import unsafe_values
from aegis.config._sources import Build, build_sources
from aegis.config._vault import VaultClient, VaultSecret, collect_vault_secrets
from aegis.core.errors import ConfigurationError
from aegis.core.models import Environment


@dataclass(frozen=True)
class _LoadRequest:
    environment: Environment | None
    vault: VaultClient | None


# settings_customise_sources is a classmethod that pydantic-settings calls from __init__:
# these carry the environment and the Vault client of the load in progress to it.
_REQUEST: ContextVar[_LoadRequest | None] = ContextVar("aegis_config_request", default=None)
_BUILD: ContextVar[Build | None] = ContextVar("aegis_config_build", default=None)


class AegisSettings(BaseSettings):
    """Base class for a service's settings: subclass it, declare fields, call :meth:`load`.

    Values are merged from these sources, the first that has a value winning (nested models
    merge field by field):

    1. arguments to :meth:`load` (init arguments);
    2. environment variables: ``env_prefix`` + field name, ``__`` between nested names
       (``USERS_DATABASE__URL``);
    3. Vault KV v2, for fields marked with :class:`VaultSecret` (when ``VAULT_ADDR`` is set);
    4. secret files in ``secrets_dir`` (Docker/Kubernetes), named like the variables;
    5. the environment's files: ``.env.<environment>``, then ``<toml_file>`` and
       ``<yaml_file>`` with ``.<environment>`` before the suffix (``settings.production.toml``);
    6. the base files: ``env_file`` (``.env``), ``toml_file``, ``yaml_file``;
    7. field defaults.

    A value written ``enc:v1:<token>`` in any source is decrypted with ``AEGIS_MASTER_KEY``.
    Problems raise one :class:`~aegis.core.errors.ConfigurationError` naming every missing
    or invalid variable; in production, unsafe values (see :meth:`production_problems`)
    refuse to load. No message, ``repr`` or log line holds a secret value.

    Example:
        >>> class Settings(AegisSettings):
        ...     model_config = SettingsConfigDict(env_prefix="USERS_")
        ...     jwt_secret: SecretStr
        ...     database: DatabaseSettings
        >>> settings = Settings.load()
    """

    model_config = SettingsConfigDict(env_nested_delimiter="__", env_file=".env", extra="ignore")

    vault_secrets: ClassVar[Mapping[str, VaultSecret]] = {}
    """Vault locations by dotted field path, for nested fields the service does not own:
    ``{"database.password": VaultSecret("user-service/db", "password")}``."""

    _environment: Environment = PrivateAttr(default=Environment.DEVELOPMENT)
    _value_sources: dict[str, str] = PrivateAttr(default_factory=dict)
    _overrides: dict[str, Any] = PrivateAttr(default_factory=dict)
    _vault: VaultClient | None = PrivateAttr(default=None)

    def __init__(self, **values: Any) -> None:
        settings_cls = type(self)
        request = _REQUEST.get() or _LoadRequest(None, None)
        environment = request.environment or detect_environment()
        vault = request.vault
        if vault is None and collect_vault_secrets(settings_cls):
            vault = VaultClient.from_environment()
        build = Build(settings_cls, environment, vault)
        token = _BUILD.set(build)
        try:
            super().__init__(**values)
        except ValidationError as exc:
            # Not chained: pydantic's error quotes the raw input values, secrets included.
            raise validation_error(
                settings_cls, exc, environment=environment, source_of=build.source_of
            ) from None
        finally:
            _BUILD.reset(token)
        self._environment = environment
        self._vault = vault
        self._overrides = dict(values)
        self._value_sources = {
            ".".join(path): build.source_of(path) or "default" for path, _, _ in iter_values(self)
        }
        if environment is Environment.PRODUCTION:
            problems = self.production_problems()
            if problems:
                lines = "\n".join(f"  - {problem}" for problem in problems)
                raise ConfigurationError(
                    f"{settings_cls.__name__} refuses to start in production with"
                    f" {len(problems)} unsafe setting(s):\n{lines}",
                    details={"settings": settings_cls.__name__, "unsafe": problems},
                )

    @classmethod
    def load(
        cls,
        *,
        environment: Environment | str | None = None,
        vault: VaultClient | None = None,
        **overrides: Any,
    ) -> Self:
        """Load and validate the settings from every source.

        Args:
            environment: the environment whose files to read and rules to apply; defaults
                to ``AEGIS_ENV`` / ``APP_ENV`` / ``ENVIRONMENT`` (development when unset).
            vault: the Vault client for :class:`VaultSecret` fields; defaults to one made
                from the ``VAULT_*`` variables.
            **overrides: field values that win over every source (pydantic-settings'
                ``_env_file``, ``_secrets_dir``, ... are accepted too).

        Raises:
            ConfigurationError: a missing, invalid or (in production) unsafe value, an
                unknown environment, Vault unreachable, or an undecryptable value.
        """
        chosen = parse_environment(environment) if environment is not None else None
        token = _REQUEST.set(_LoadRequest(chosen, vault))
        try:
            return cls(**overrides)
        finally:
            _REQUEST.reset(token)

    def reload(self) -> Self:
        """Load the settings again, in the same environment and with the same overrides.

        Returns a new object; this one is never modified, so when the new values are
        invalid the error is raised and the running service keeps its current settings.
        Vault secrets come from the client's cache while it is fresh.

        Raises:
            ConfigurationError: as :meth:`load`.
        """
        return type(self).load(environment=self._environment, vault=self._vault, **self._overrides)

    @property
    def environment(self) -> Environment:
        """The environment these settings were loaded for."""
        return self._environment

    def value_sources(self) -> dict[str, str]:
        """Map each dotted field path to where its value came from.

        Sources read ``init argument``, ``env var USERS_PORT``, ``file .env.production``,
        ``secrets dir /run/secrets``, ``vault secret/user-service#jwt_secret`` or
        ``default``; ``, decrypted`` is added to a value that was ``enc:v1:``.
        """
        return dict(self._value_sources)

    def production_problems(self) -> list[str]:
        """List the values that must not run in production, one ``VARIABLE: why`` each.

        The defaults: ``debug`` on, an empty, default or placeholder secret, and a ``*``
        origin in a CORS or origins field. Override it to add the service's own rules::

            def production_problems(self) -> list[str]:
                problems = super().production_problems()
                if self.workers < 2:
                    problems.append("USERS_WORKERS: run at least 2 workers")
                return problems
        """
        return unsafe_values(self)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Return the sources in aegis' priority order (see the class docstring)."""
        build = _BUILD.get()
        if build is None:
            raise AssertionError("AegisSettings sources are only built by AegisSettings()")
        return build_sources(
            build, init_settings, env_settings, dotenv_settings, file_secret_settings
        )
