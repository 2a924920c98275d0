"""The settings sources in priority order, each traced so a value can say where it came from.

Highest priority first: init arguments, environment variables, Vault, secret files, the
environment's files (``.env.<env>``, then ``<toml>.<env>.toml``, ``<yaml>.<env>.yaml``),
the base files (``.env``, the TOML file, the YAML file), and last the field defaults.
Every source is pydantic-settings' own except Vault; aegis adds the tracing, the decryption
of ``enc:v1:`` values and the choice of per-environment files.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsError,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from aegis.config._encryption import decrypt_value, is_encrypted, master_key_ring
from aegis.config._fields import FieldPath, field_keys, model_class, variable_name
from aegis.config._vault import VaultClient, collect_vault_secrets, read_vault_secret
from aegis.core.errors import ConfigurationError
from aegis.core.models import Environment

if TYPE_CHECKING:
    from aegis.core.utils.security import Encryptor

OriginKind = Literal["init", "env", "vault", "secrets", "file"]
RawPath = tuple[str | int, ...]  # keys as a source wrote them, list indexes included
_Source = TypeVar("_Source", bound=PydanticBaseSettingsSource)


@dataclass(frozen=True)
class Origin:
    """One place settings come from: a kind and, for files, Vault and secrets, where."""

    kind: OriginKind
    where: str = ""

    @property
    def label(self) -> str:
        """Name the source: ``environment variables``, ``file .env.production``."""
        names = {"init": "init arguments", "env": "environment variables", "secrets": "secrets dir"}
        return f"{names.get(self.kind, self.kind)} {self.where}".rstrip()

    def describe(self, settings_cls: type[BaseSettings], path: FieldPath) -> str:
        """Say where the value at ``path`` came from: ``env var USERS_PORT``, ``file .env``."""
        if self.kind == "init":
            return "init argument"
        if self.kind == "env":
            return f"env var {variable_name(settings_cls, path)}"
        return self.label


@dataclass
class Record:
    """What one source answered (after decryption) and which of its keys were encrypted."""

    origin: Origin
    data: dict[str, Any]
    decrypted: set[RawPath]


@dataclass
class Build:
    """The state of one settings load: its environment, Vault client and what each source gave."""

    settings_cls: type[BaseSettings]
    environment: Environment
    vault: VaultClient | None
    records: list[Record] = field(default_factory=list)
    _key_ring: Encryptor | None = None

    def record(self, origin: Origin, read: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run one source, decrypt its ``enc:`` values, remember what it gave and return that."""
        try:
            answer = read()
        except SettingsError as exc:
            # pydantic-settings names the field and source; the cause is a JSON position.
            raise ConfigurationError(f"cannot read {origin.label}: {exc}") from exc
        decrypted: set[RawPath] = set()
        data = {
            key: self._decrypt(origin, value, (key,), decrypted) for key, value in answer.items()
        }
        self.records.append(Record(origin, data, decrypted))
        return data

    def source_of(self, path: FieldPath) -> str | None:
        """Describe the highest-priority source that gave a value at ``path``, if any did."""
        for record in self.records:
            raw = _find(record.data, self.settings_cls, path)
            if raw is not None:
                label = record.origin.describe(self.settings_cls, path)
                decrypted = any(found[: len(raw)] == raw for found in record.decrypted)
                return f"{label}, decrypted" if decrypted else label
        return None

    def _decrypt(self, origin: Origin, value: Any, raw: RawPath, found: set[RawPath]) -> Any:
        if isinstance(value, dict):
            return {k: self._decrypt(origin, v, (*raw, k), found) for k, v in value.items()}
        if isinstance(value, list):
            return [self._decrypt(origin, v, (*raw, i), found) for i, v in enumerate(value)]
        if not is_encrypted(value):
            return value
        found.add(raw)
        names = tuple(str(key) for key in raw if isinstance(key, str))
        variable = variable_name(self.settings_cls, names)
        try:
            if self._key_ring is None:
                self._key_ring = master_key_ring()
            return decrypt_value(value, key_ring=self._key_ring)
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"{variable} (from {origin.describe(self.settings_cls, names)}): {exc.message}",
                details={**exc.details, "variable": variable},
            ) from exc


class TracedSource(PydanticBaseSettingsSource):
    """A source made of a callable (init arguments, env vars, one Vault secret), traced."""

    def __init__(self, build: Build, origin: Origin, read: Callable[[], dict[str, Any]]) -> None:
        super().__init__(build.settings_cls)
        self._build = build
        self._origin = origin
        self._read = read

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Not used: this source answers whole, from :meth:`__call__`."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        """Return the wrapped source's values with every ``enc:v1:`` value decrypted."""
        return self._build.record(self._origin, self._read)


class _Traced(PydanticBaseSettingsSource):
    """Mixin for pydantic-settings' file sources: trace them while they stay what they are.

    They are subclassed, not wrapped, because pydantic-settings checks the source types to
    warn about ``toml_file``, ``yaml_file`` and ``secrets_*`` keys no source would read.
    """

    trace: tuple[Build, Origin]

    def __call__(self) -> dict[str, Any]:
        """Return the file source's values with every ``enc:v1:`` value decrypted."""
        build, origin = self.trace
        # Safe: every class this is mixed into is a concrete pydantic-settings source.
        return build.record(origin, super().__call__)  # type: ignore[safe-super]


_TracedT = TypeVar("_TracedT", bound=_Traced)


class _DotEnvFile(_Traced, DotEnvSettingsSource):
    pass


class _TomlFile(_Traced, TomlConfigSettingsSource):
    pass


class _YamlFile(_Traced, YamlConfigSettingsSource):
    pass


class _SecretFiles(_Traced, NestedSecretsSettingsSource):
    pass


def build_sources(
    build: Build,
    init_settings: PydanticBaseSettingsSource,
    env_settings: PydanticBaseSettingsSource,
    dotenv_settings: PydanticBaseSettingsSource,
    file_secret_settings: PydanticBaseSettingsSource,
) -> tuple[PydanticBaseSettingsSource, ...]:
    """Return every source of a load in priority order, highest first, each traced."""
    settings_cls = build.settings_cls
    sources: list[PydanticBaseSettingsSource] = [
        TracedSource(build, Origin("init"), init_settings),
        TracedSource(build, Origin("env"), env_settings),
    ]
    if build.vault is not None:
        for path, secret in collect_vault_secrets(settings_cls).items():
            mount = secret.mount or build.vault.kv_mount
            where = f"{mount}/{secret.path}#{secret.key or path[-1]}"
            variable = variable_name(settings_cls, path)
            read = partial(read_vault_secret, build.vault, path, secret, variable)
            sources.append(TracedSource(build, Origin("vault", where), read))
    secrets = _opened(partial(_SecretFiles, file_secret_settings), "secrets_dir")
    where = ", ".join(str(path) for path in secrets.secrets_paths)
    sources.append(_traced(secrets, build, Origin("secrets", where)))
    env_files = _paths(getattr(dotenv_settings, "env_file", None))
    for environment in (build.environment, None):
        sources.extend(_file_sources(build, env_files, environment))
    return tuple(sources)


def _file_sources(
    build: Build, env_files: list[Path], environment: Environment | None
) -> Iterator[PydanticBaseSettingsSource]:
    settings_cls = build.settings_cls
    config = settings_cls.model_config
    # pydantic-settings lets the last of several files win; here the first source wins.
    for env_file in reversed(env_files):
        path = env_file.with_name(f"{env_file.name}.{environment}") if environment else env_file
        source = _DotEnvFile(settings_cls, env_file=path)
        yield _traced(source, build, Origin("file", str(path)))
    for base in reversed(_paths(config.get("toml_file"))):
        path = _for_environment(base, environment)
        toml = _opened(partial(_TomlFile, settings_cls, toml_file=path), str(path))
        yield _traced(toml, build, Origin("file", str(path)))
    for base in reversed(_paths(config.get("yaml_file"))):
        path = _for_environment(base, environment)
        yaml = _opened(partial(_YamlFile, settings_cls, yaml_file=path), str(path))
        yield _traced(yaml, build, Origin("file", str(path)))


def _for_environment(path: Path, environment: Environment | None) -> Path:
    return path.with_name(f"{path.stem}.{environment}{path.suffix}") if environment else path


def _traced(source: _TracedT, build: Build, origin: Origin) -> _TracedT:
    source.trace = (build, origin)
    return source


def _opened(open_source: Callable[[], _Source], what: str) -> _Source:
    """Create a file source (it reads its files at once), turning its errors into ours."""
    try:
        return open_source()
    except SettingsError as exc:
        raise ConfigurationError(f"{what}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(
            f"{what} is not valid TOML: {exc}", details={"file": what}
        ) from exc
    except ImportError as exc:
        raise ConfigurationError(f"{what} needs PyYAML: pip install 'aegis-config[yaml]'") from exc
    except Exception as exc:  # PyYAML's errors (an optional import) and odd content alike
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            # Not chained: PyYAML's message quotes the offending line, which may hold a secret.
            raise ConfigurationError(
                f"{what} is not valid YAML (line {mark.line + 1})", details={"file": what}
            ) from None
        raise ConfigurationError(
            f"{what} cannot be read ({type(exc).__name__}: {exc}); it must hold a mapping"
            " of settings",
            details={"file": what},
        ) from exc


def _paths(files: Any) -> list[Path]:
    if files is None:
        return []
    if isinstance(files, str | os.PathLike):
        return [Path(files)]
    return [Path(f) for f in files]


def _find(
    data: Mapping[str, Any], settings_cls: type[BaseModel], path: FieldPath
) -> RawPath | None:
    """Return the keys under which ``data`` holds the value at ``path``, or None."""
    node: Any = data
    model: type[BaseModel] | None = settings_cls
    raw: list[str | int] = []
    for name in path:
        if not isinstance(node, Mapping):
            return tuple(raw)  # a whole object given at a parent (a model instance)
        info = model.model_fields.get(name) if model is not None else None
        wanted = {key.lower() for key in (field_keys(name, info) if info is not None else [name])}
        key = next((k for k in node if isinstance(k, str) and k.lower() in wanted), None)
        if key is None:
            return None
        raw.append(key)
        node = node[key]
        model = model_class(info.annotation) if info is not None else None
    return tuple(raw)
