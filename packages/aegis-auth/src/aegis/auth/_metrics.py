"""Prometheus metrics of aegis.auth (``aegis_auth_*``), one set per registry; labels are bounded."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Final, Literal, Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from aegis.core.utils.weak import OncePerObject

VerificationSource = Literal["cache", "full"]
"""How a verification was answered: from the cache of verified tokens, or by a full check."""

_VERIFICATIONS: Final = "aegis_auth_token_verifications"
_VERIFICATIONS_HELP: Final = (
    "Token verifications by result (valid, or the rejection reason) and source "
    "(cache: a token verified before; full: parsed and signature checked)."
)


class VerificationCounter(Collector):
    """``aegis_auth_token_verifications_total{result,source}``, counted in plain integers.

    A prometheus ``Counter`` takes a lock per increment, which would cost a tenth of a
    hello-world request on the path that serves a known token; these counts are integers
    turned into a counter family when the registry is scraped. Increments happen on the
    event loop (verification is async), so none is lost.
    """

    def __init__(self) -> None:
        self.cached_valid = 0
        """Valid tokens answered from the cache: the hot path, a bare attribute."""
        self._counts: dict[tuple[str, VerificationSource], int] = {}

    def add(self, result: str, source: VerificationSource) -> None:
        """Count one verification that ended in ``result`` (``valid`` or a reason)."""
        key = (result, source)
        self._counts[key] = self._counts.get(key, 0) + 1

    def describe(self) -> Iterator[CounterMetricFamily]:
        """Name the family without reading the counts (the registry checks for clashes)."""
        yield CounterMetricFamily(_VERIFICATIONS, _VERIFICATIONS_HELP, labels=["result", "source"])

    def collect(self) -> Iterator[CounterMetricFamily]:
        """Return the counts as one counter family."""
        family = CounterMetricFamily(
            _VERIFICATIONS, _VERIFICATIONS_HELP, labels=["result", "source"]
        )
        counts = dict(self._counts)
        counts[("valid", "cache")] = counts.get(("valid", "cache"), 0) + self.cached_valid
        for (result, source), value in sorted(counts.items()):
            family.add_metric([result, source], value)
        yield family


class _Replica(Protocol):
    def staleness(self) -> float: ...


_STALENESS: Final = "aegis_auth_revocation_staleness_seconds"
_STALENESS_HELP: Final = (
    "Seconds since the in-process replica of the revocations was last known complete "
    "(the largest of the running replicas; 0 when none runs)."
)


class StalenessGauge(Collector):
    """``aegis_auth_revocation_staleness_seconds``, read from the running replicas at scrape time.

    Computed when scraped, so it keeps growing while the replica's task is stuck reconnecting.
    """

    def __init__(self) -> None:
        self.replicas: weakref.WeakSet[_Replica] = weakref.WeakSet()
        """The started replicas (a replica that is closed or dropped leaves)."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """Name the family without reading the replicas."""
        yield GaugeMetricFamily(_STALENESS, _STALENESS_HELP)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The largest staleness among the running replicas."""
        values = [replica.staleness() for replica in list(self.replicas)]
        yield GaugeMetricFamily(_STALENESS, _STALENESS_HELP, value=max(values, default=0.0))


class AuthMetrics:
    """The metrics aegis.auth records. Get the set of a registry with :meth:`for_registry`.

    - ``aegis_auth_token_verifications_total{result,source}``: ``result`` is ``valid`` or the
      rejection reason (``expired``, ``signature``, ``revoked``...), ``source`` is ``cache`` or
      ``full``.
    - ``aegis_auth_tokens_issued_total{type}``: ``access`` or ``refresh``.
    - ``aegis_auth_refresh_reuse_total``: used refresh tokens presented again (each revoked
      its family).
    - ``aegis_auth_revocations_total{scope}``: ``token`` (one ``jti``) or ``family`` (a login).
    - ``aegis_auth_password_checks_total{result}``: logins and client-secret checks: ``valid``,
      ``invalid``, ``unknown_user`` or ``bad_hash`` (a stored hash refused as malformed or
      too costly).
    - ``aegis_auth_password_rehashes_total``: hashes replaced after a login because their
      parameters were outdated.
    - ``aegis_auth_jwks_fetches_total{result}``: fetches of another service's JWKS, ``ok`` or
      ``error``.
    - ``aegis_auth_revocation_staleness_seconds``: how old the in-process replica of the
      revocations (:class:`~aegis.auth.ReplicatedTokenStore`) may be.
    - ``aegis_auth_revocation_sync_errors_total{reason}``: the replica lost its channel
      (``connection``), got no answer to its heartbeat (``heartbeat``) or a message it could
      not read (``message``).
    - ``aegis_auth_revocation_fail_open_total``: tokens accepted unchecked because the replica
      was stale and Redis did not answer (``when_stale="open"``).
    - ``aegis_auth_revocation_fail_closed_total``: requests refused with 503 for the same
      reason (``when_stale="closed"``).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.verifications = VerificationCounter()
        registry.register(self.verifications)
        self.issued = Counter(
            "aegis_auth_tokens_issued_total",
            "Tokens signed, by type.",
            ["type"],
            registry=registry,
        )
        self.refresh_reuse = Counter(
            "aegis_auth_refresh_reuse_total",
            "Used refresh tokens presented again; each revoked its token family.",
            registry=registry,
        )
        self.revocations = Counter(
            "aegis_auth_revocations_total",
            "Revocations, of one token or of a whole token family.",
            ["scope"],
            registry=registry,
        )
        self.password_checks = Counter(
            "aegis_auth_password_checks_total",
            "Password and client-secret checks, by result.",
            ["result"],
            registry=registry,
        )
        self.password_rehashes = Counter(
            "aegis_auth_password_rehashes_total",
            "Stored hashes replaced after a login because their parameters were outdated.",
            registry=registry,
        )
        self.jwks_fetches = Counter(
            "aegis_auth_jwks_fetches_total",
            "Fetches of another service's JWKS, by result.",
            ["result"],
            registry=registry,
        )
        self.revocation_staleness = StalenessGauge()
        registry.register(self.revocation_staleness)
        self.revocation_sync_errors = Counter(
            "aegis_auth_revocation_sync_errors_total",
            "Failures of the revocation replica's channel: connection, heartbeat or message.",
            ["reason"],
            registry=registry,
        )
        self.revocation_fail_open = Counter(
            "aegis_auth_revocation_fail_open_total",
            "Tokens accepted without a revocation check: replica stale and Redis unreachable.",
            registry=registry,
        )
        self.revocation_fail_closed = Counter(
            "aegis_auth_revocation_fail_closed_total",
            "Requests refused (503): replica stale and Redis unreachable.",
            registry=registry,
        )

    @classmethod
    def for_registry(cls, registry: CollectorRegistry | None = None) -> AuthMetrics:
        """Return the metrics registered in ``registry`` (the default one when ``None``)."""
        return _by_registry(registry if registry is not None else REGISTRY)


_by_registry: OncePerObject[CollectorRegistry, AuthMetrics] = OncePerObject(AuthMetrics)
