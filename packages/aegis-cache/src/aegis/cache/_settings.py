"""``CacheSettings``: where Redis is, how long to wait for it and how the cache behaves."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class CacheSettings(BaseModel):
    """Configuration of a :class:`~aegis.cache.Cache`.

    ``url`` picks the backend: ``None`` or ``memory://`` is the in-process backend (development
    and unit tests); ``redis://``, ``rediss://`` and ``unix://`` a Redis server;
    ``redis+sentinel://host:26379,host2:26379/mymaster/0`` a Sentinel-managed primary;
    ``redis+cluster://host:7000[,host2:7000...]`` a Redis Cluster (each host a seed).

    Example:
        >>> settings = CacheSettings(url="redis://127.0.0.1:6379/0", namespace="users")
        >>> settings.timeout
        0.25
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: SecretStr | None = Field(
        default=None, description="Redis URL; None or memory:// for the in-process backend."
    )
    namespace: str = Field(
        default="", description="Prefix of every key this cache writes (one per service)."
    )
    default_ttl: float = Field(default=300.0, gt=0, description="Seconds, when set() gets none.")
    ttl_jitter: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description="Each TTL is shortened by up to this fraction, at random, so entries "
        "written together do not expire together.",
    )
    max_value_bytes: int = Field(
        default=1_000_000, gt=0, description="Serialized values above this size are refused."
    )
    version: str = Field(
        default="1",
        pattern=r"^[A-Za-z0-9._-]{1,32}$",
        description="Part of every @cached key: change it to invalidate every decorated entry.",
    )
    timeout: float = Field(
        default=0.25, gt=0, description="Seconds to wait for one Redis reply (socket timeout)."
    )
    connect_timeout: float = Field(default=0.25, gt=0, description="Seconds to connect.")
    max_connections: int = Field(
        default=50,
        gt=0,
        description="Connection pool size: commands in flight wait up to timeout beyond it "
        "(on a Cluster, also the pool size per node).",
    )
    circuit_failure_threshold: int = Field(
        default=5, gt=0, description="Consecutive failures that open the circuit breaker."
    )
    circuit_reset_timeout: float = Field(
        default=5.0, gt=0, description="Seconds the breaker stays open before one probe call."
    )
    warning_interval: float = Field(
        default=30.0, ge=0, description="At most one 'Redis is failing' warning per interval."
    )
    lock_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a stampede lock lives if its holder dies."
    )
    lock_wait: float = Field(
        default=5.0, ge=0, description="Seconds a waiter polls for another process's result."
    )
    scan_batch: int = Field(default=1000, gt=0, description="SCAN COUNT and UNLINK batch size.")
    near_cache: bool = Field(
        default=False, description="Keep hot entries in process, kept coherent by Redis."
    )
    near_cache_size: int = Field(default=10_000, gt=0, description="Entries in the near cache.")
    near_cache_ttl: float = Field(
        default=60.0, gt=0, description="Longest time a near-cache entry is served."
    )

    @property
    def key_prefix(self) -> str:
        """The namespace as a key prefix: ``"users"`` gives ``"users:"``, ``""`` gives ``""``."""
        if not self.namespace or self.namespace.endswith(":"):
            return self.namespace
        return self.namespace + ":"
