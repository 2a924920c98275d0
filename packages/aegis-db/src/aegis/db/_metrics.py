"""Prometheus metrics of read replicas: lag, rotation and where read-only sessions went.

Label sets are bounded: ``replica`` is a configured replica's ``host:port/database`` (never a
password), ``route`` one of :data:`READ_ROUTES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from aegis.core.utils.weak import OncePerObject

READ_ROUTES: Final = ("replica", "primary_own_write", "primary_no_replica")
"""Where a read-only session went: a replica; the primary because no replica had replayed the
scope's own write in time; the primary because no replica was in rotation."""


@dataclass(frozen=True)
class ReplicaMetrics:
    """The metric families one registry holds for every manager in the process."""

    lag_seconds: Gauge
    lag_bytes: Gauge
    in_rotation: Gauge
    read_sessions: Counter


def _declare(target: CollectorRegistry) -> ReplicaMetrics:
    return ReplicaMetrics(
        lag_seconds=Gauge(
            "aegis_db_replica_lag_seconds",
            "How long ago the primary was at a WAL position the replica has not replayed yet "
            "(a lower bound, measured at each replica check; 0 when caught up).",
            ["replica"],
            registry=target,
        ),
        lag_bytes=Gauge(
            "aegis_db_replica_lag_bytes",
            "Bytes of the primary's WAL the replica has not replayed yet, at the last check.",
            ["replica"],
            registry=target,
        ),
        in_rotation=Gauge(
            "aegis_db_replica_in_rotation",
            "1 while read-only sessions may use the replica; 0 while it is down or lags too far.",
            ["replica"],
            registry=target,
        ),
        read_sessions=Counter(
            "aegis_db_read_only_sessions_total",
            "Read-only sessions by where they read: replica, primary_own_write (no replica "
            "had replayed the scope's write in time) or primary_no_replica.",
            ["route"],
            registry=target,
        ),
    )


_by_registry: OncePerObject[CollectorRegistry, ReplicaMetrics] = OncePerObject(_declare)


def replica_metrics(registry: CollectorRegistry | None) -> ReplicaMetrics:
    """The replica metric families in ``registry`` (the default one when None), made once."""
    return _by_registry(REGISTRY if registry is None else registry)
