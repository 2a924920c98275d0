"""HashiCorp Vault KV v2 as a settings source: token or AppRole auth, timeouts, a TTL cache."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from aegis.config._errors import validation_error
from aegis.config._fields import FieldPath, field_paths
from aegis.core.errors import ConfigurationError

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True)
class VaultSecret:
    """Where in Vault KV v2 a setting lives: mark a field with it, or list it in ``vault_secrets``.

    Args:
        path: the secret's path inside the KV mount (``user-service/db``).
        key: the key inside the secret; defaults to the field's name.
        mount: the KV v2 mount; defaults to ``VAULT_KV_MOUNT`` (``secret``).

    Example:
        >>> class Settings(AegisSettings):
        ...     jwt_secret: Annotated[SecretStr, VaultSecret("user-service")]
    """

    path: str
    key: str | None = None
    mount: str | None = None


class VaultSettings(BaseSettings):
    """How to reach Vault, from ``VAULT_*`` variables; ``VAULT_ADDR`` unset means no Vault.

    Authentication uses ``VAULT_TOKEN`` when set, otherwise AppRole with ``VAULT_ROLE_ID``
    and ``VAULT_SECRET_ID``. ``VAULT_TIMEOUT`` bounds every request (seconds) and secrets are
    kept in memory for ``VAULT_CACHE_TTL`` seconds (0 turns the cache off).
    """

    model_config = SettingsConfigDict(env_prefix="VAULT_", extra="ignore")

    addr: str | None = None
    token: SecretStr | None = None
    role_id: str | None = None
    secret_id: SecretStr | None = None
    namespace: str | None = None
    kv_mount: str = "secret"
    approle_mount: str = "approle"
    timeout: float = Field(default=5.0, gt=0)
    cache_ttl: float = Field(default=300.0, ge=0)


def _require_httpx() -> None:
    try:
        import httpx  # noqa: F401 - the vault extra is optional
    except ImportError as exc:
        raise ConfigurationError(
            "settings read from Vault need httpx: pip install 'aegis-config[vault]'"
        ) from exc


class VaultClient:
    """Read KV v2 secrets from Vault, with a bounded timeout and an in-memory TTL cache.

    Every request (login or read) gives up after ``settings.timeout`` seconds, so a Vault
    that is down or hangs fails start-up with a clear :class:`ConfigurationError` instead
    of blocking it. The client is thread-safe; one instance serves a settings object and all
    of its reloads.

    Args:
        settings: address, authentication, timeout and cache TTL.
        clock: monotonic seconds, for the cache and token expiry (tests pass a fake one).

    Raises:
        ConfigurationError: no address, no way to authenticate, or httpx is not installed.
    """

    def __init__(
        self, settings: VaultSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not settings.addr:
            raise ConfigurationError("Vault is not configured: set VAULT_ADDR")
        if settings.token is None and not (settings.role_id and settings.secret_id):
            raise ConfigurationError(
                f"Vault at {settings.addr} needs credentials: set VAULT_TOKEN,"
                " or VAULT_ROLE_ID and VAULT_SECRET_ID for AppRole"
            )
        _require_httpx()
        self._settings = settings
        self._addr = settings.addr.rstrip("/")
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._token = settings.token.get_secret_value() if settings.token is not None else None
        self._token_expires = math.inf

    @classmethod
    def from_environment(cls) -> VaultClient | None:
        """Return a client configured by the ``VAULT_*`` variables, or None without ``VAULT_ADDR``.

        Raises:
            ConfigurationError: a ``VAULT_*`` variable is invalid, or credentials are missing.
        """
        try:
            settings = VaultSettings()
        except ValidationError as exc:
            # Not chained: pydantic's error quotes the raw input values.
            raise validation_error(VaultSettings, exc) from None
        return cls(settings) if settings.addr else None

    @property
    def address(self) -> str:
        """The Vault address requests go to."""
        return self._addr

    @property
    def kv_mount(self) -> str:
        """The KV v2 mount used for secrets that name none."""
        return self._settings.kv_mount.strip("/")

    def read(self, path: str, *, mount: str | None = None) -> dict[str, Any]:
        """Return the data of the latest version of a KV v2 secret, from the cache when fresh.

        Raises:
            ConfigurationError: Vault is unreachable or too slow, denies access, or has no
                such secret.
        """
        mount = mount.strip("/") if mount else self.kv_mount
        path = path.strip("/")
        with self._lock:
            now = self._clock()
            cached = self._cache.get((mount, path))
            if cached is not None and cached[0] > now:
                return dict(cached[1])
            with self._connect() as http:
                token = self._current_token(http, now)
                body = self._request(
                    http,
                    "GET",
                    f"/v1/{mount}/data/{path}",
                    token=token,
                    what=f"secret {mount}/{path}",
                )
            data = body.get("data", {}).get("data") if isinstance(body.get("data"), dict) else None
            if not isinstance(data, dict):
                raise ConfigurationError(
                    f"Vault answered for {mount}/{path} without KV v2 data;"
                    f" is {mount!r} a KV version 2 mount (VAULT_KV_MOUNT)?"
                )
            if self._settings.cache_ttl > 0:
                self._cache[(mount, path)] = (now + self._settings.cache_ttl, data)
            return dict(data)

    def clear_cache(self) -> None:
        """Forget every cached secret, so the next read asks Vault again."""
        with self._lock:
            self._cache.clear()

    def _connect(self) -> httpx.Client:
        headers = (
            {"X-Vault-Namespace": self._settings.namespace} if self._settings.namespace else {}
        )
        import httpx  # the optional vault extra, checked in __init__

        # A client per read: start-up reads are few, and no pooled socket outlives the read.
        return httpx.Client(base_url=self._addr, timeout=self._settings.timeout, headers=headers)

    def _current_token(self, http: httpx.Client, now: float) -> str:
        if self._token is not None and now < self._token_expires:
            return self._token
        settings = self._settings
        secret_id = settings.secret_id.get_secret_value() if settings.secret_id else ""
        body = self._request(
            http,
            "POST",
            f"/v1/auth/{settings.approle_mount.strip('/')}/login",
            json={"role_id": settings.role_id, "secret_id": secret_id},
            what="AppRole login",
            hint="check VAULT_ROLE_ID and VAULT_SECRET_ID",
        )
        auth = body.get("auth")
        auth = auth if isinstance(auth, dict) else {}
        token = auth.get("client_token")
        if not isinstance(token, str) or not token:
            raise ConfigurationError(
                f"Vault at {self._addr} answered AppRole login without a token"
            )
        lease = float(auth.get("lease_duration") or 0)
        self._token = token
        self._token_expires = now + lease if lease > 0 else math.inf
        return token

    def _request(
        self,
        http: httpx.Client,
        method: str,
        url: str,
        *,
        what: str,
        token: str | None = None,
        json: dict[str, Any] | None = None,
        hint: str | None = None,
    ) -> dict[str, Any]:
        import httpx  # the optional vault extra, checked in __init__

        headers = {"X-Vault-Token": token} if token else {}
        details = {"vault_addr": self._addr, "request": what}
        try:
            response = http.request(method, url, headers=headers, json=json)
        except httpx.TimeoutException as exc:
            raise ConfigurationError(
                f"Vault at {self._addr} did not answer within {self._settings.timeout:g} s"
                f" ({what}); check VAULT_ADDR and that Vault is up, or raise VAULT_TIMEOUT",
                details=details,
            ) from exc
        except httpx.HTTPError as exc:
            raise ConfigurationError(
                f"Vault at {self._addr} is unreachable ({what}): {exc}; check VAULT_ADDR",
                details=details,
            ) from exc
        if response.is_success:
            try:
                body = response.json()
            except ValueError:
                body = None
            if isinstance(body, dict):
                return body
            raise ConfigurationError(
                f"Vault at {self._addr} answered {what} with something other than a JSON object",
                details=details,
            )
        reasons = "; ".join(_vault_errors(response)) or response.reason_phrase
        if response.status_code == 403:
            hint = hint or "check the token's policies (VAULT_TOKEN or the AppRole's)"
        elif response.status_code == 404:
            hint = hint or "check the path and VAULT_KV_MOUNT"
        suffix = f"; {hint}" if hint else ""
        raise ConfigurationError(
            f"Vault at {self._addr} refused {what}"
            f" (HTTP {response.status_code}: {reasons}){suffix}",
            details={**details, "status": response.status_code},
        )


def _vault_errors(response: httpx.Response) -> list[str]:
    try:
        body = response.json()
    except ValueError:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    return [str(error) for error in errors] if isinstance(errors, list) else []


def collect_vault_secrets(settings_cls: type[BaseModel]) -> dict[FieldPath, VaultSecret]:
    """Collect the Vault location of every field: ``Annotated`` markers and ``vault_secrets``.

    ``vault_secrets`` maps dotted paths (``"database.password"``) to :class:`VaultSecret`,
    which reaches into nested models the service does not own.

    Raises:
        ConfigurationError: ``vault_secrets`` names a path that is not a field.
    """
    found: dict[FieldPath, VaultSecret] = {}
    fields = dict(field_paths(settings_cls))
    for path, field in fields.items():
        for marker in field.metadata:
            if isinstance(marker, VaultSecret):
                found[path] = marker
    declared: Mapping[str, VaultSecret] = getattr(settings_cls, "vault_secrets", {})
    for dotted, secret in declared.items():
        path = tuple(dotted.split("."))
        if path not in fields:
            raise ConfigurationError(
                f"{settings_cls.__name__}.vault_secrets names {dotted!r}, which is not a field"
            )
        found[path] = secret
    return found


def read_vault_secret(
    client: VaultClient, path: FieldPath, secret: VaultSecret, variable: str
) -> dict[str, Any]:
    """Read one field's value from Vault, as the nested mapping a settings source returns.

    Raises:
        ConfigurationError: Vault fails, or the secret has no such key.
    """
    values = client.read(secret.path, mount=secret.mount)
    key = secret.key or path[-1]
    if key not in values:
        mount = secret.mount or client.kv_mount
        raise ConfigurationError(
            f"Vault secret {mount}/{secret.path} has no key {key!r}, needed for {variable}",
            details={"vault_path": f"{mount}/{secret.path}", "key": key},
        )
    value: Any = values[key]
    for name in reversed(path):
        value = {name: value}
    result: dict[str, Any] = value
    return result
