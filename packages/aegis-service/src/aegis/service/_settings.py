"""ServiceSettings: one aegis-config settings class holding the settings of every member used.

Each member owns its settings model (``DatabaseSettings`` in aegis-db, ``CacheSettings`` in
aegis-cache, ...); this module only gathers them. A member that is not installed (its extra
left out) still has its field: ``None`` is accepted, a value is refused with the extra to
install.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_core import core_schema
from pydantic_settings import SettingsConfigDict

from aegis.config import AegisSettings
from aegis.log import LogSettings
from aegis.obs import TracingSettings

_PAGE_PATH = r"^/[A-Za-z0-9._~/-]*[A-Za-z0-9._~-]$"
DEFAULT_QUIET_PATHS = ("/metrics", "/health*")
"""Paths with no access line, span or request metric: probes and scrapes would drown traffic."""


def _not_installed(module: str, name: str, extra: str) -> Any:
    """``module.name``, or a type that refuses any value and names the extra to install."""
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        pass

    def refuse(value: object) -> object:
        raise ValueError(f"{name} needs {module}: pip install 'aegis-service[{extra}]'")

    class NotInstalled:
        @classmethod
        def __get_pydantic_core_schema__(
            cls, source: object, handler: Callable[[object], object]
        ) -> core_schema.CoreSchema:
            return core_schema.no_info_plain_validator_function(refuse)

    NotInstalled.__name__ = name
    return NotInstalled


if TYPE_CHECKING:
    from aegis.cache import CacheSettings
    from aegis.db import DatabaseSettings
    from aegis.msg import KafkaSettings
else:
    DatabaseSettings = _not_installed("aegis.db", "DatabaseSettings", "db")
    CacheSettings = _not_installed("aegis.cache", "CacheSettings", "cache")
    KafkaSettings = _not_installed("aegis.msg", "KafkaSettings", "msg")


class AuthSettings(BaseModel):
    """Bearer-token authentication (aegis-auth): who issues tokens and with which key.

    A service that issues tokens names a signing key (``signing_key``: a PEM private key for
    EdDSA/ES*/RS*/PS*, a secret for HS*); without one a key is generated at start-up, which
    suits development and tests only (tokens die with the process, and each replica has its
    own). A service that only verifies tokens issued elsewhere sets ``jwks_url`` instead.
    Every service that verifies the issuer's tokens sets the same ``revocation_redis_url`` (and
    prefix) so a revocation made by any of them is honoured by all (needs
    ``aegis-auth[redis]``).

    Example:
        >>> AuthSettings(issuer="users", audience="aegis", public_paths=["POST /users"])
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str = Field(description="The `iss` of the tokens this service issues and accepts.")
    audience: str = Field(description="The `aud` of the tokens this service accepts.")
    algorithm: str = Field(default="EdDSA", description="The signing algorithm.")
    signing_key: SecretStr | None = Field(
        default=None, description="PEM private key or HMAC secret; None: generated at start."
    )
    key_id: str = Field(default="key-1", description="The `kid` of the signing key.")
    jwks_url: str | None = Field(
        default=None, description="Verify with the keys published here instead (no issuing)."
    )
    access_ttl_seconds: float = Field(default=900, gt=0, description="Access token lifetime.")
    refresh_ttl_seconds: float = Field(
        default=14 * 86400, gt=0, description="Refresh token lifetime."
    )
    public_paths: tuple[str, ...] = Field(
        default=(),
        description="Paths that need no token (aegis.core.paths patterns: /x, /x*, POST /x); "
        "health, metrics, JWKS and the FastAPI docs are added.",
    )
    publish_jwks: bool = Field(
        default=True, description="Serve the public keys at /.well-known/jwks.json."
    )
    revocation_redis_url: SecretStr | None = Field(
        default=None,
        description="Redis shared by every service that verifies this issuer's tokens: "
        "revocations (logout, reused refresh tokens) are written there and each service "
        "keeps a replica in memory, fed by pub/sub (aegis-auth's ReplicatedTokenStore). "
        "None: no revocation store unless bootstrap() is given a token_store.",
    )
    revocation_prefix: str | None = Field(
        default=None,
        description="Prefix of the revocation keys and channel; the same in every service "
        'sharing them. None: "<issuer>:".',
    )
    revocation_max_staleness_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How long the replica answers after its channel went quiet; the bound on "
        "how late a revocation is honoured while Redis is unreachable.",
    )
    revocation_when_stale: Literal["closed", "open"] = Field(
        default="closed",
        description="Replica stale and Redis unreachable: refuse requests (503, and the "
        "revocations readiness check is critical) or let tokens through (logged, counted).",
    )

    @property
    def revocation_key_prefix(self) -> str:
        """``revocation_prefix``, or ``"<issuer>:"`` when it is not set."""
        return self.revocation_prefix if self.revocation_prefix is not None else f"{self.issuer}:"


class RateLimitSettings(BaseModel):
    """A rate limit for every request (aegis-cache), keyed by user, client or route.

    Example:
        >>> RateLimitSettings(limit=100, period_seconds=60, key="user")
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    limit: int = Field(gt=0, description="Requests allowed per period and key.")
    period_seconds: float = Field(gt=0, description="The period, in seconds.")
    key: Literal["user", "client", "route"] = Field(
        default="user", description="What is limited: the caller (else its address), ..."
    )
    fail_open: bool = Field(
        default=True, description="Let requests through while Redis is unavailable."
    )


class PagesSettings(BaseModel):
    """The pages that show what a service speaks: its events and its tables, rendered.

    ``/asyncapi`` (with ``/asyncapi.json`` and ``/asyncapi.yaml``) draws the service's AsyncAPI
    document (``Service.asyncapi``, aegis-msg) when the service has an event transport;
    ``/schema`` draws its tables in the aegis-schema registry (``schema_registry``) with the
    references to and from other services, and the migrations the database still lacks when
    the coordinator's history is given. Both work offline: their scripts ship in the packages.

    Example:
        >>> PagesSettings(schema_registry=Path("schemas"), schema_service="users", public=False)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    public: bool = Field(
        default=True,
        description="Serve the pages without a token; False: they need one like any route "
        "(their scripts and stylesheets stay public: files of the packages, no data).",
    )
    asyncapi_path: str = Field(default="/asyncapi", pattern=_PAGE_PATH)
    schema_path: str = Field(default="/schema", pattern=_PAGE_PATH)
    schema_registry: Path | None = Field(
        default=None,
        description="The aegis-schema registry directory (needs aegis-service[schema]); None: "
        "no /schema page.",
    )
    schema_service: str | None = Field(
        default=None, description="This service's name in the registry; None: its own name."
    )
    schema_history_url: SecretStr | None = Field(
        default=None,
        description="The migration coordinator's history database: /schema then shows the "
        "migrations the registry has and the database lacks, with their impact report.",
    )


class ServiceSettings(AegisSettings):
    """The settings of a service built with :func:`~aegis.service.bootstrap`.

    Loaded like any :class:`~aegis.config.AegisSettings` (environment variables with ``__``
    between nested names, ``.env``, per-environment files, Vault, encrypted values).
    Subclass it to add the service's own fields and an ``env_prefix``. Every optional
    component is ``None`` (not configured) until set: ``database``, ``cache``, ``kafka``,
    ``auth``, ``rate_limit`` (which needs ``cache``).

    Example:
        >>> class Settings(ServiceSettings):
        ...     model_config = SettingsConfigDict(env_prefix="USERS_")
        >>> settings = Settings.load(name="users", database=DatabaseSettings(url=...))
    """

    model_config = SettingsConfigDict(
        env_prefix="AEGIS_SERVICE_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$",
        description="The service name: logs, metrics, spans, the token issuer by default.",
    )
    version: str | None = Field(default=None, description="Reported by /health.")
    log: LogSettings | None = Field(
        default_factory=LogSettings,
        description="Logging, configured by bootstrap(); None leaves logging to the caller.",
    )
    sentry_dsn: SecretStr | None = Field(
        default=None,
        description="Report errors to Sentry (needs aegis-service[sentry]); masked as the logs.",
    )
    tracing: TracingSettings | None = Field(
        default=None,
        description="Export spans over OTLP/HTTP (needs aegis-service[otlp]); None: spans go "
        "to whatever global OpenTelemetry provider the process has (none: no spans).",
    )
    database: DatabaseSettings | None = None
    cache: CacheSettings | None = None
    kafka: KafkaSettings | None = None
    auth: AuthSettings | None = None
    rate_limit: RateLimitSettings | None = None
    health_interval_seconds: float = Field(
        default=1.0,
        ge=0,
        description="How long a health result is reused: a stopped component shows in /health "
        "within this interval.",
    )
    health_timeout_seconds: float = Field(
        default=2.0, gt=0, description="A health check slower than this is DOWN."
    )
    outbox_max_backlog: int = Field(
        default=10_000,
        ge=0,
        description="Unpublished outbox events above which the outbox check fails (degraded).",
    )
    outbox_max_pending_age_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Seconds the oldest unpublished outbox event may wait before the critical "
        "outbox_age check fails (not ready); it passes again once the backlog drains.",
    )
    quiet_paths: tuple[str, ...] = Field(
        default=DEFAULT_QUIET_PATHS,
        description="No access line, span or request metric for these (aegis.core.paths).",
    )
    metrics_path: str = Field(default="/metrics", pattern=r"^/")
    health_path: str = Field(default="/health", pattern=r"^/")
    pages: PagesSettings | None = Field(
        default_factory=PagesSettings,
        description="The /asyncapi and /schema pages; None: neither is served.",
    )
    problem_type_base: str | None = Field(
        default=None, description="Prefix of the problem `type` URIs; aegis's default if None."
    )

    def production_problems(self) -> list[str]:
        """The base rules, and: a service that issues tokens names its signing key.

        A generated key differs in every process and dies with it: tokens issued by one
        replica fail on the next, and every restart logs everyone out.
        """
        problems = super().production_problems()
        auth = self.auth
        if auth is not None and auth.jwks_url is None and auth.signing_key is None:
            prefix = str(self.model_config.get("env_prefix", "")).upper()
            problems.append(
                f"{prefix}AUTH__SIGNING_KEY: not set, so each process would sign with a key of "
                "its own; set a PEM private key (or an HMAC secret), or AUTH__JWKS_URL"
            )
        return problems
