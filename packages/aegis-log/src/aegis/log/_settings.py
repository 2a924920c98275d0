"""LogSettings: what configure_logging needs, as data that aegis-config can load and merge."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from aegis.core.models import Environment
from aegis.core.utils.masking import DEFAULT_SENSITIVE_KEYS, PiiKind
from aegis.log._pipeline import canonical_level_name

LevelName = Annotated[
    Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET"],
    BeforeValidator(canonical_level_name),
]
"""A stdlib level name; ``"info"``, ``"warn"`` and ``20`` are accepted too."""


class ConsoleSettings(BaseModel):
    """Lines on standard output or standard error."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stream: Literal["stdout", "stderr"] = "stdout"
    format: Literal["auto", "json", "console"] = "auto"
    """``auto``: the coloured console renderer in development, JSON everywhere else."""
    colors: bool | None = None
    """Colour console lines; ``None`` colours them only when the stream is a terminal."""


class FileSettings(BaseModel):
    """A JSON-lines file that rotates by size and/or time, gzips and prunes rotated files."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path
    max_bytes: int = Field(default=100 * 2**20, ge=0)
    """Rotate before a line would take the file past this size; 0 turns size rotation off."""
    rotate_when: Literal["midnight", "hourly"] | None = None
    """Also rotate at each UTC midnight or each full hour."""
    backup_count: int = Field(default=7, ge=0)
    """How many rotated files to keep; older ones are deleted."""
    compress: bool = True
    """gzip rotated files (in a background thread, never on the logging call)."""


class ElasticsearchSettings(BaseModel):
    """A background shipper that sends lines to Elasticsearch's ``_bulk`` API."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    """Base URL, such as ``http://127.0.0.1:9200``."""
    index_pattern: str = "logs-%Y.%m.%d"
    """``time.strftime`` pattern applied to each line's UTC timestamp: one index per day."""
    api_key: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    batch_size: int = Field(default=500, ge=1, le=10_000)
    flush_interval: float = Field(default=1.0, gt=0, le=60)
    """Seconds between sends when fewer than ``batch_size`` lines are waiting."""
    queue_size: int = Field(default=10_000, ge=1)
    """Lines held while Elasticsearch is slow or down; beyond it the oldest are dropped."""
    max_retries: int = Field(default=3, ge=0, le=20)
    backoff: float = Field(default=0.5, gt=0, le=60)
    """First retry delay in seconds; it doubles with each retry."""
    timeout: float = Field(default=5.0, gt=0, le=120)
    """Connect and read timeout of one ``_bulk`` request."""
    shutdown_timeout: float = Field(default=5.0, ge=0, le=120)
    """How long closing may spend sending what is still queued."""


class LogSettings(BaseModel):
    """Everything :func:`~aegis.log.configure_logging` needs; every field has a safe default.

    Example:
        >>> LogSettings(level="info", levels={"sqlalchemy.engine": "warning"})
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    environment: Environment = Environment.PRODUCTION
    service_name: str | None = None
    """Written as ``service_name`` on every line where the request context has none."""
    level: LevelName = "INFO"
    levels: dict[str, LevelName] = Field(default_factory=dict)
    """Level per logger name (``{"sqlalchemy.engine": "WARNING"}``); children inherit it."""
    console: ConsoleSettings | None = Field(default_factory=ConsoleSettings)
    """``None`` writes nothing to the console."""
    file: FileSettings | None = None
    elasticsearch: ElasticsearchSettings | None = None
    max_line_bytes: int = Field(default=64 * 1024, ge=1024)
    """A longer JSON line is cut to this size, keeps its core fields and says it was cut."""
    sensitive_keys: frozenset[str] = DEFAULT_SENSITIVE_KEYS
    """Keys whose values are masked at any depth (see ``aegis.core`` ``mask_sensitive``)."""
    mask: str = "***"
    mask_pii: frozenset[PiiKind] = frozenset()
    """Personal data also masked in every text: ``"email"`` addresses, ``"phone"`` numbers,
    ``"rrn"`` (Korean resident registration numbers, 주민등록번호). Off by default: these
    patterns also match ordinary data (date-prefixed ids look like an RRN)."""
    trace_ids: bool = True
    """Add ``trace_id``/``span_id`` of the current OpenTelemetry span (``otel`` extra)."""
    capture_uncaught: bool = True
    """Log uncaught exceptions of the main thread and of other threads at CRITICAL."""
    adopt_loggers: tuple[str, ...] = (
        "uvicorn",
        "uvicorn.error",
        "uvicorn.access",
        "gunicorn.error",
        "gunicorn.access",
    )
    """Loggers whose own handlers are removed so that their lines come out as aegis lines."""
